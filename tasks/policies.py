"""Retry policy shared by the task decorators, and the logger steps report to."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from kerasflow.errors import BadInputError


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: retry I/O hiccups, never bad input (a retry cannot fix it).

    Args:
        task: The Prefect task.
        task_run: Its run.
        state: The failed state.

    Returns:
        False for a `BadInputError`, true otherwise.
    """
    return not isinstance(state.result(raise_on_failure=False), BadInputError)


def step_logger() -> logging.Logger | logging.LoggerAdapter:
    """The logger a step reports to: the Prefect run logger (terminal and Prefect UI) inside a flow.

    Outside a flow or task run (a step's `.fn` called directly, as in
    tests and notebooks) it is the standard `kerasflow` logger.

    Returns:
        A logger.
    """
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("kerasflow")


class EpochProgress:
    """A per-epoch hook that also reports progress: `train: epoch 12/80  loss 0.4123  val_loss 0.4410  ETA 31 s`.

    The line goes to the step logger, so it shows on the terminal (a pipe or
    a file alike) and in the Prefect UI's flow-run logs. To keep the output
    readable it is written at most every `every` seconds, and always for the
    first and the last epoch. The ETA assumes every remaining epoch runs;
    early stopping may end sooner.

    Args:
        hook: The hook to wrap (e.g. the tracker's epoch logger), or None.
        total: The epoch count of the fit.
        what: What is training, e.g. `train` or `fold 2/5`.
        every: Least seconds between two lines. Default 2.
    """

    def __init__(self, hook: Any, total: int, what: str, every: float = 2.0):
        self.hook, self.total, self.what, self.every = hook, total, what, every
        self.started = self.last = None

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        import time

        if self.hook is not None:
            self.hook(epoch, logs)
        now = time.monotonic()
        if self.started is None:  # the clock starts at the end of the first epoch
            self.started = now
        done = epoch + 1
        if self.last is not None and now - self.last < self.every and done != self.total:
            return
        self.last = now
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "accuracy",
                                                                             "val_accuracy", "mae", "val_mae"))
        eta = (now - self.started) / max(done - 1, 1) * (self.total - done)
        timed = 1 < done < self.total  # the first epoch has no duration to go by yet
        step_logger().info(f"{self.what}: epoch {done}/{self.total}  {shown}" + (f"  ETA {eta:.0f} s" if timed else ""))

    def wait(self) -> None:
        """Waits for the wrapped hook's queued work (see `EpochLogger.wait`)."""
        if hasattr(self.hook, "wait"):
            self.hook.wait()
