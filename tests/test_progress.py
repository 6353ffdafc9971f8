"""The heartbeat: a silence prints the innermost status, announced once, then how long it has run."""

from __future__ import annotations

import logging
import time

from kerasflow.progress import Heartbeat, status


def test_a_silence_names_what_is_going_on_and_output_keeps_it_quiet() -> None:
    lines: list[str] = []
    handler = logging.StreamHandler()
    heartbeat = Heartbeat(lines.append, quiet=0.3)
    heartbeat.watch([handler])
    heartbeat.start()
    try:
        with status("importing TensorFlow"):
            deadline = time.monotonic() + 30  # a busy machine may schedule the thread late
            while len(lines) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert lines[0] == "importing TensorFlow ..."
        assert lines[1].startswith("... still importing TensorFlow (")
        heartbeat.quiet = 5.0
        time.sleep(0.5)
        shown = len(lines)
        record = logging.LogRecord("kerasflow", logging.INFO, __file__, 1, "epoch", None, None)
        for _ in range(60):  # a line every 0.1 s is output: nothing more is said
            handler.filter(record)
            time.sleep(0.1)
        assert len(lines) == shown
    finally:
        heartbeat.stop()
    assert heartbeat.handlers == [] and not handler.filters
