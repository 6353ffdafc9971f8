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
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

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
