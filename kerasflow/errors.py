"""The one base class for "bad input", and how an interrupt is recognized.

Every domain error that a user fixes by changing their config, data, suite
or model reference subclasses `BadInputError` and names itself with a short
`label`: exit status 2 rather than a crash. The CLI, the retry conditions
and the failure recorder test for this one class, so a new error never
needs to be listed anywhere else.

An interrupt (Ctrl-C, SIGTERM) ends runs KILLED, not FAILED, even when a
library's cleanup error replaced it (`interrupt_behind`) or a finalizer
swallowed it (`lost_interrupt`). This module imports nothing of ours: every
layer may use it.
"""

from __future__ import annotations

import time


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


def interrupt_behind(exc: BaseException | None) -> BaseException | None:
    """Returns the interrupt an exception stands in for, if any.

    A signal's exception (Ctrl-C's `KeyboardInterrupt`, Prefect's
    `TerminationSignal` for SIGTERM) can arrive inside a library's context
    manager, whose exit then fails on the half-unwound state and raises its
    own error, e.g. TensorFlow's "Exiting device scope without proper scope
    nesting". The interrupt then survives only as that error's context.

    Args:
        exc: The exception raised, or None.

    Returns:
        The first exception in `exc`'s chain (`exc` itself, then its cause or
        context) that is a `KeyboardInterrupt` or carries an int `signal`
        attribute; None if there is none.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt) or (
                not isinstance(exc, Exception) and isinstance(getattr(exc, "signal", None), int)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


_stop_signal: tuple[int, float] | None = None  # (signal number, monotonic time) of the first SIGINT/SIGTERM


def note_stop_signal(signum: int) -> None:
    """Records the first SIGINT or SIGTERM this process received (called by the signal watchdog's thread)."""
    global _stop_signal
    if _stop_signal is None:
        _stop_signal = (int(signum), time.monotonic())


def lost_interrupt(after: float = 1.0) -> int | None:
    """Returns the stop signal whose exception went missing, if any.

    A signal handler's exception raised while the interpreter runs a
    finalizer (`__del__`, a weakref callback; TensorFlow has many) is
    reported as "ignored" and lost, and the work goes on. Work still
    running `after` seconds after the signal arrived has lost it; a
    safe point (the end of an epoch) then raises it again.

    Args:
        after: Seconds the signal's own exception had to unwind. Default 1.

    Returns:
        The signal number, or None when no stop signal came (or it came less than `after` s ago).
    """
    if _stop_signal is None or time.monotonic() - _stop_signal[1] < after:
        return None
    return _stop_signal[0]
