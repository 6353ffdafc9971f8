"""`kerasflow.heavy.import_tensorflow` from several threads at once (k-fold folds on a thread pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_two_threads_importing_tensorflow_leave_stderr_working() -> None:
    """Each import mutes fd 2 for its duration; two interleaved swaps used to leave it muted for good.

    That silenced every later log line of a k-fold run on `runner: {kind: local, n_workers: 2}`.
    """
    script = textwrap.dedent("""
        import os, threading
        from kerasflow.heavy import import_tensorflow
        start = threading.Barrier(2)
        def load():
            start.wait()
            import_tensorflow()
        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        os.write(2, b"fd 2 still writes\\n")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fd 2 still writes" in done.stderr
