"""`kerasflow.heavy.import_tensorflow` from several threads at once (k-fold folds on a thread pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


TOGETHER = """
import threading
def together(*targets):
    start = threading.Barrier(len(targets))
    def run(target):
        start.wait()
        target()
    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""  # the scripts' `together(*targets)`: runs the functions in threads that start at once, and waits for them


def _run(script: str) -> subprocess.CompletedProcess:
    """Runs a Python script in a fresh process (TensorFlow not yet imported, `together` defined); it must succeed."""
    done = subprocess.run([sys.executable, "-c", TOGETHER + textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_two_threads_importing_tensorflow_leave_stderr_working() -> None:
    """Each import swaps fd 2 for its duration; two interleaved swaps used to leave it muted for good.

    That silenced every later log line of a k-fold run on `runner: {kind: local, n_workers: 2}`.
    """
    script = textwrap.dedent("""
        import os
        from kerasflow.heavy import import_tensorflow
        together(import_tensorflow, import_tensorflow)
        os.write(2, b"fd 2 still writes\\n")
    """)
    done = _run(script)
    assert "fd 2 still writes" in done.stderr


def test_what_other_threads_write_during_the_import_reaches_stderr_without_the_banners() -> None:
    """A flow's tasks run in threads: the baseline's log lines, written while training imports TensorFlow, must show.

    Muting all of fd 2 for the import lost them (and the heartbeat, which counted them as output, stayed silent:
    a 4.9 s silent gap in CI). Only TensorFlow's own banner lines are dropped.
    """
    script = textwrap.dedent("""
        import sys, threading
        from kerasflow.heavy import import_tensorflow
        started, done = threading.Event(), threading.Event()
        def beside():
            started.set()
            count = 0
            while not done.is_set():
                count += 1
                print(f"beside the import {count}", file=sys.stderr, flush=True)
                done.wait(0.05)
        thread = threading.Thread(target=beside)
        thread.start()
        started.wait()
        import_tensorflow()
        done.set()
        thread.join()
    """)
    done = _run(script)
    lines = done.stderr.splitlines()
    counts = [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("beside the import ")]
    # every line, none lost (the order may differ at the end of the import: lines still in the filter's pipe are
    # copied out while the thread already writes to the restored descriptor)
    assert sorted(counts) == list(range(1, len(counts) + 1)) and len(counts) > 5, done.stderr[-2000:]
    assert not [line for line in lines if not line.startswith("beside the import ")], "TensorFlow's banners"


def test_building_a_pretrained_base_drops_only_tensorflow_banners() -> None:
    """The CNN family builds a Keras application inside `tensorflow_banners_dropped` (it once muted all of fd 2).

    Lines other threads write meanwhile arrive; an absl banner line does not. Two such blocks at once, and a
    TensorFlow import beside them, leave fd 2 writing straight to the terminal afterwards.
    """
    script = textwrap.dedent("""
        import os
        from kerasflow.heavy import import_tensorflow, tensorflow_banners_dropped
        def block(n):
            with tensorflow_banners_dropped():
                os.write(2, f"line from block {n}\\n".encode())
                os.write(2, b"I0000 00:00:1700000000.000000    1 cpu_feature_guard.cc:210] banner\\n")
        together(lambda: block(1), lambda: block(2), import_tensorflow)
        os.write(2, b"after the blocks\\n")
    """)
    done = _run(script)
    assert "line from block 1" in done.stderr and "line from block 2" in done.stderr
    assert "cpu_feature_guard" not in done.stderr and "after the blocks" in done.stderr
