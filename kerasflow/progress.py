"""Progress of long loops inside the library, reported to whoever is listening.

Library code (decoding a folder of images, say) calls `report_progress`
per item; it neither prints nor imports Prefect. A step that wants the
progress shown wraps the call in `reporting_progress(reporter)`; the
reporter (`kerasflow.tasks.progress.LoopProgress`) draws the terminal bar
and writes the log lines. Without a reporter the call costs one context
variable lookup.

Example:

```python
with reporting_progress(lambda what, done, total, unit: print(what, done, total, unit)):
    scan_image_folder("photos", "label", [".png"])
```

What a block of code is doing is its `status` (e.g. `importing
TensorFlow`); a command's `Heartbeat` prints it, `importing TensorFlow ...`
then `... still importing TensorFlow (4 s)`, whenever the output has
been silent for a while, so a terminal never goes quiet for long (the
output budget: no silent gap over 3 s).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterable, Iterator

Reporter = Callable[[str, int, int, str], None]
_REPORTER: ContextVar[Reporter | None] = ContextVar("kerasflow_progress", default=None)


def report_progress(what: str, done: int, total: int, unit: str = "item") -> None:
    """Reports that `done` of `total` items of a loop are finished.

    Args:
        what: The loop, e.g. `decode images`.
        done: Items finished so far (1 after the first).
        total: Items in the loop.
        unit: What an item is, e.g. `image`. Default `item`.
    """
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(what, done, total, unit)


@contextmanager
def reporting_progress(reporter: Reporter) -> Iterator[None]:
    """Sends the progress reported inside the block to `reporter(what, done, total, unit)`.

    Args:
        reporter: Called for every reported item.
    """
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)



MIN_WAIT = 0.05  # seconds: the heartbeat's shortest sleep
_status: list[list] = []  # what is going on, innermost last: [text, since, announced]
_output = [time.monotonic()]  # when the command last printed something


@contextmanager
def status(text: str) -> Iterator[None]:
    """Says what the block is doing (`importing TensorFlow`), for the heartbeat's lines.

    Costs two list operations: library code may use it freely, with or without a heartbeat.

    Args:
        text: What happens in the block, as a gerund phrase.
    """
    entry = [text, time.monotonic(), False]
    _status.append(entry)
    try:
        yield
    finally:
        _status.remove(entry)


def note_output() -> None:
    """Records that the command just printed something (a line, a progress bar moving)."""
    _output[0] = time.monotonic()


class Heartbeat:
    """Prints a line whenever the output has been silent for `quiet` seconds: what is going on, and for how long.

    Every record of a watched logging handler (`watch`) and every
    `note_output` counts as output. The line names the innermost `status`:
    `importing TensorFlow ...` the first time, then
    `... still importing TensorFlow (7 s)`.

    Args:
        print_line: Prints one line.
        quiet: Seconds of silence before a line. Default 2.5 (epoch lines come every 2 s).
        close: Called once the thread has stopped (closes the stream `print_line` writes to). Default none.
    """

    def __init__(self, print_line: Callable[[str], None], quiet: float = 2.5,
                 close: Callable[[], None] | None = None):
        self.print_line, self.quiet, self.close = print_line, quiet, close
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Counts a log record as output (the heartbeat is a filter of the watched handlers); passes it on."""
        note_output()
        return True

    def watch(self, handlers: Iterable[logging.Handler]) -> None:
        """Counts the records these handlers print as output."""
        for handler in handlers:
            if handler not in self.handlers:
                handler.addFilter(self)
                self.handlers.append(handler)

    def start(self) -> "Heartbeat":
        """Starts the watching thread (a daemon: it never holds the process up)."""
        note_output()
        self.thread = threading.Thread(target=self._run, name="kerasflow-heartbeat", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stops the thread and unhooks the handlers; safe to call more than once."""
        self.stopped.set()
        for handler in self.handlers:
            handler.removeFilter(self)
        self.handlers.clear()
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
            if self.close is not None:
                self.close()

    def line(self, now: float) -> str:
        """The line for a silence at `now`: the innermost status, announced once, then how long it has run."""
        if not _status:
            return f"... still at work ({now - _output[0]:.0f} s since the last line)"
        entry = _status[-1]
        if not entry[2]:
            for outer in _status:  # an enclosing status announced later would read as just begun
                outer[2] = True
            return f"{entry[0]} ..."
        return f"... still {entry[0]} ({now - entry[1]:.0f} s)"

    def _run(self) -> None:
        # It sleeps until the silence could first reach `quiet` (output meanwhile moves that on), not in
        # short polls: each wake-up takes the GIL from the training or import in the main thread.
        delay = self.quiet
        while not self.stopped.wait(max(delay, MIN_WAIT)):
            now = time.monotonic()
            delay = self.quiet - (now - _output[0])
            if delay > 0:
                continue
            try:
                self.print_line(self.line(now))
            except Exception:  # a closed stream at exit: the heartbeat is only a courtesy
                return
            note_output()
            delay = self.quiet
