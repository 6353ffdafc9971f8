"""Progress of a step shown while it runs: per-epoch lines and bars, and the library's long loops.

A terminal shows a live `tqdm` bar; the step logger (the Prefect UI's
flow-run log, a log file) gets a line every few seconds.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from kerasflow.progress import note_output
from kerasflow.stopping import raise_lost_interrupt
from kerasflow.tasks.policies import step_logger


def console_loggers() -> list[logging.Logger]:
    """The loggers that print to the terminal (Prefect's run loggers among them), for `logging_redirect_tqdm`."""
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    return [logger for logger in [logging.getLogger(), *loggers] if isinstance(logger, logging.Logger) and any(
        isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
        for h in logger.handlers)]


class EpochProgress:
    """A per-epoch hook that also reports progress.

    Every epoch reaches the wrapped hook. Progress is reported two ways:

    - a line to the step logger, `train: epoch 12/80  loss 0.4123  val_loss 0.4410  ETA 31 s`, which shows in
      the Prefect UI's flow-run log and on a terminal or in a log file; it is written at most every `every`
      seconds (every `every` * 5 on a terminal, where the bar shows each epoch), and always for the first
      and the last epoch;
    - on a terminal, a live `tqdm` bar with the epoch count, rate, ETA and the latest loss values; log
      lines are printed above it while it runs (`tqdm.contrib.logging.logging_redirect_tqdm`).

    When `concurrent` loops run at once (k-fold folds on a pool of worker threads), each shows lines only,
    prefixed by its `what`, no bar: bars drawn from several threads, each redirecting the loggers, garble
    one another. Each writes a line at most every `every` * `concurrent` seconds, so together they print
    about one line every `every` seconds, bar or not.

    The ETA assumes every remaining epoch runs; early stopping may end sooner. Call `close()` (or
    `wait()`) when the fit ends.

    Args:
        hook: The hook to wrap (e.g. the tracker's epoch logger), or None.
        total: The epoch count of the fit.
        what: What is training, e.g. `train` or `fold 2/5`.
        every: Least seconds between two log lines. Default 2.
        bar: Show the live bar. Default: when standard error is a terminal and `concurrent` is 1.
        file: Where the bar is drawn. Default standard error.
        unit: What is counted. Default `epoch` (`image` for `LoopProgress`).
        concurrent: How many such loops run at once in this process. Default 1.
    """

    SHOWN = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae")

    def __init__(self, hook: Any, total: int, what: str, every: float = 2.0, bar: bool | None = None,
                 file: Any = None, unit: str = "epoch", concurrent: int = 1):
        self.hook, self.total, self.what, self.file, self.unit = hook, total, what, file, unit
        self.use_bar = (concurrent <= 1 and sys.stderr.isatty()) if bar is None else bar
        self.every = every * 5 if self.use_bar else every * max(concurrent, 1)
        self.started = self.last = None
        self.first = 1
        self.bar: Any = None
        self.redirect: Any = None

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        raise_lost_interrupt()
        if self.hook is not None:
            self.hook(epoch, logs)
        now = time.monotonic()
        done = epoch + 1
        if self.started is None:  # the clock starts at the end of the first epoch seen
            self.started, self.first = now, done
        shown = {k: v for k, v in logs.items() if k in self.SHOWN}
        if self.use_bar:
            self._advance(done, shown)
        if self.last is not None and now - self.last < self.every and done != self.total:
            return
        self.last = now
        text = "  ".join(f"{k} {v:.4f}" for k, v in shown.items())
        eta = (now - self.started) / max(done - self.first, 1) * (self.total - done)
        timed = self.first < done < self.total  # the first epoch has no duration to go by yet
        line = f"{self.what}: {self.unit} {done}/{self.total}" + (f"  {text}" if text else "")
        step_logger().info(line + (f"  ETA {eta:.0f} s" if timed else ""))

    def _advance(self, done: int, shown: dict[str, float]) -> None:
        """Moves the terminal bar to `done` epochs, opening it (and the log redirection) on first use."""
        if self.bar is None:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.redirect = logging_redirect_tqdm(loggers=console_loggers())
            self.redirect.__enter__()
            self.bar = tqdm(total=self.total, desc=self.what, unit=self.unit, leave=False, dynamic_ncols=True,
                            file=self.file, mininterval=0.2, disable=False)  # TQDM_DISABLE silences libraries only
        note_output()  # the bar moving is output: the command's heartbeat stays quiet
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
        self.bar.update(done - self.bar.n)
        if done >= self.total:
            self.close()

    def close(self) -> None:
        """Closes the terminal bar and restores the log handlers; safe to call more than once."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.redirect is not None:
            self.redirect.__exit__(None, None, None)
            self.redirect = None

    def wait(self) -> None:
        """Closes the bar and waits for the wrapped hook's queued work (see `EpochLogger.wait`)."""
        self.close()
        if hasattr(self.hook, "wait"):
            self.hook.wait()


class LoopProgress:
    """Shows the library's long loops (`kerasflow.progress.report_progress`), such as decoding images.

    A loop is shown, as an `EpochProgress` bar and log lines, once it has
    run for `after` seconds; a loop that ends sooner prints nothing. Use it
    as the reporter of `kerasflow.progress.reporting_progress`.

    Args:
        after: Seconds a loop runs before it is shown. Default 1.
    """

    def __init__(self, after: float = 1.0):
        self.after = after
        self.loops: dict[str, list[Any]] = {}  # what -> [start, EpochProgress or None]

    def __call__(self, what: str, done: int, total: int, unit: str = "item") -> None:
        now = time.monotonic()
        loop = self.loops.setdefault(what, [now, None])
        if loop[1] is None and now - loop[0] >= self.after:
            loop[1] = EpochProgress(None, total, what, unit=unit)
        if loop[1] is not None:
            loop[1](done - 1, {})
        if done >= total:
            self.loops.pop(what)

    def close(self) -> None:
        """Closes every open bar (a loop that raised never reached its last item)."""
        for _, shown in self.loops.values():
            if shown is not None:
                shown.close()
        self.loops.clear()
