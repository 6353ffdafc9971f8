"""What stopping a run means: the one owner of the policy of SIGINT and SIGTERM.

A stop signal ends a command, and every run it has open, in one way:

- its exception unwinds the work: Ctrl-C's `KeyboardInterrupt`, SIGTERM's
  `Terminated` outside a flow (inside one, Prefect's `TerminationSignal`);
  an interrupt that a library's cleanup error replaced still counts as one
  (`interrupt_behind`), and one that a finalizer swallowed is raised again
  at the next safe point (`raise_lost_interrupt`);
- the MLflow runs it ends are KILLED, not FAILED, and their Prefect flow runs
  Crashed, not Failed;
- the command exits `exit_status(signum)`, 128 + the signal number (130 for
  SIGINT, 143 for SIGTERM), with one line saying so;
- when the unwinding stalls, the last resort (the signal watchdog in
  `kerasflow.runtime.stopping`) runs the stop hooks that the upper layers
  registered (`on_stop`: mark the open MLflow runs KILLED, set their flow runs
  Crashed) and ends the process.

The mechanisms live with the layers that own them (MLflow in `tracking`,
Prefect in `tasks`, signals and exits in `runtime`); this module holds the
policy they follow and imports nothing of ours, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Callable

_stop_signal: tuple[int, float] | None = None  # (signal number, monotonic time) of the first SIGINT/SIGTERM
_hooks: list[Callable[[int], object]] = []  # the last resort's steps, in the order registered
_termination: Callable[[int], BaseException] | None = None  # SIGTERM's exception inside a flow, once registered


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C (outside a flow; inside one, Prefect raises its `TerminationSignal`)."""

    signal = int(signal.SIGTERM)


def exit_status(signum: int) -> int:
    """The exit status of a command a signal stopped: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


def signal_label(signum: int) -> str:
    """How messages name a stop signal: `SIGTERM`, or `Ctrl-C (SIGINT)`."""
    return "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"


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


def note_stop_signal(signum: int) -> None:
    """Records the first SIGINT or SIGTERM this process received (called by the signal watchdog's thread)."""
    global _stop_signal
    if _stop_signal is None:
        _stop_signal = (int(signum), time.monotonic())


def stop_signal() -> int | None:
    """The first SIGINT or SIGTERM the watchdog saw, or None."""
    return None if _stop_signal is None else _stop_signal[0]


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


def stop_exception(signum: int) -> BaseException:
    """The exception a stop signal unwinds with: `KeyboardInterrupt` for SIGINT, for SIGTERM
    the registered one (`terminate_with`: Prefect's `TerminationSignal`), else `Terminated`."""
    if signum != signal.SIGTERM:
        return KeyboardInterrupt()
    return _termination(int(signum)) if _termination is not None else Terminated()


def raise_lost_interrupt() -> None:
    """Raises again a SIGINT or SIGTERM whose exception a finalizer swallowed (see `lost_interrupt`).

    Raises:
        KeyboardInterrupt: For SIGINT.
        BaseException: For SIGTERM, `stop_exception`'s: Prefect's
            `TerminationSignal` once registered, as Prefect's own handler raises.
    """
    signum = lost_interrupt()
    if signum is not None:
        raise stop_exception(signum)


def terminate_with(factory: Callable[[int], BaseException]) -> None:
    """Registers the exception SIGTERM raises again at a safe point (the runtime registers Prefect's).

    Args:
        factory: Called with the signal number, returns the exception.
    """
    global _termination
    _termination = factory


def on_stop(hook: Callable[[int], object]) -> None:
    """Registers a step of the last resort, run with the signal number when a stop did not unwind.

    Hooks run in the order registered; registering one twice keeps the first.

    Args:
        hook: E.g. marking this process's open MLflow runs KILLED.
    """
    if hook not in _hooks:
        _hooks.append(hook)


def run_stop_hooks(signum: int) -> None:
    """Runs the registered stop hooks in order; one that fails does not keep the next from running.

    Args:
        signum: The signal that stopped the process.
    """
    for hook in list(_hooks):
        with contextlib.suppress(Exception):
            hook(int(signum))
