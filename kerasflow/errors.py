"""The one base class for "bad input".

Every domain error that a user fixes by changing their config, data, suite
or model reference subclasses `BadInputError` and names itself with a short
`label`: exit status 2 rather than a crash. The CLI, the retry conditions
and the failure recorder test for this one class, so a new error never
needs to be listed anywhere else.

How an interrupt (Ctrl-C, SIGTERM) is recognized and what it does to runs
is `kerasflow.stopping`'s. This module imports nothing of ours: every layer
may use it.
"""

from __future__ import annotations

import errno
import os
import shutil

__all__ = ["BadInputError", "describe", "disk_full", "describe_disk_full"]

DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # no space; a file over the size limit; over quota


class BadInputError(ValueError):
    """Input the user must fix; retrying cannot help.

    Subclasses set `label`, the short phrase that `describe` puts first.

    Example:

    ```python
    class SplitError(BadInputError):
        label = "cannot split the data"
    ```
    """

    label = "bad input"


def describe(exc: BaseException) -> str:
    """Returns a readable one-paragraph description of a bad-input error.

    Args:
        exc: Any exception; a `BadInputError` is prefixed with its label.

    Returns:
        `"<label>: <message>"`, or the class name and message otherwise.
    """
    label = exc.label if isinstance(exc, BadInputError) else type(exc).__name__
    return f"{label}: {exc}"


def disk_full(exc: BaseException | None) -> OSError | None:
    """The "disk full" error behind an exception (no space, a file over its size limit, over quota), or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def describe_disk_full(exc: OSError, places: dict[str, str]) -> str:
    """One paragraph naming the path a write failed on, and the free space of the places a run writes to.

    Args:
        exc: The `OSError` (`disk_full`).
        places: `{what: folder}`, e.g. the run's artifacts, the step cache,
            the temporary folder; named when the error has no file name.

    Returns:
        The paragraph.
    """
    target = exc.filename2 or exc.filename  # a copy's destination is its second name (`shutil.copyfile`)
    where = f"writing {os.fsdecode(target)}" if target else "writing a file"
    free = []
    for what, folder in places.items():
        existing = os.path.abspath(folder)
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)  # the folder may not exist yet: its disk is its parent's
        try:
            free.append(f"{what} {folder}: {shutil.disk_usage(existing).free / 2**20:.0f} MB free")
        except OSError:
            continue
    return (f"the disk is full: {where} failed ({exc.strerror or os.strerror(exc.errno)}). "
            + (f"Space where the run writes: {'; '.join(free)}. " if free else "")
            + "Free some space (or raise the size limit), then rerun; completed steps are reused.")
