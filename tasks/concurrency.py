"""Steps that run beside each other on the flow's task runner, each waited for on every path.

A flow starts a step it does not need yet with `Task.submit` (Prefect's
own concurrency: the flow's `ThreadPoolTaskRunner`), goes on with the
steps that do not depend on it, and asks for its result where it needs it.
`side_by_side` keeps that safe: when the block raises (a failed step, an
interrupt), it waits for every step still running before the error
leaves the block, so no step logs into a run its flow has already closed
as FAILED, holds a cache entry's lock, or outlives the flow's process.
The block's own error is the one raised; a step's result not asked for
inside a block that ended normally is asked for at its end (its error
raised there).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from kerasflow.data.holdout import raw_rows
from kerasflow.data.prepared import Prepared
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import run_step, submit_step
from kerasflow.tasks.infra_validate import LARGE_ROWS
from kerasflow.tracking import PipelineRun


def fits_beside(prepared: Prepared) -> bool:
    """Whether the steps after the data steps may overlap: fewer than `LARGE_ROWS` raw rows (or not a table).

    Measured with `benchmarks/scale.py --suite` at a million rows (the
    peak is the memory goal there, <= 1.3x the bare script's): the
    baseline beside the training raised the run's peak from 1.26x to
    1.32x (its sample, fit and scoring, about 90 MB, on top of the
    training's peak); the evaluation beside infra validation's fresh
    process, from 1.25x to 1.31x; the evaluation beside the registration
    alone saved nothing (0.5 s) and its memory stayed in the worker
    thread's allocator (1.29x); the baseline beside infra validation's
    wait (the flow's process idle but for it, 2026-12-08) from 1.27x to
    1.39x (2,195 MB against the bare script's 1,575: its 200,000 rows
    read, copied as inputs and scored, with the fresh process's
    TensorFlow). So a large table runs them one after the other, as
    before. Below `LARGE_ROWS` the early infra process's TensorFlow
    dominates the peak, and the overlap only saves time.

    Args:
        prepared: Paths from the data steps (the raw rows are counted from the Parquet footer).

    Returns:
        True when the raw rows are fewer than `LARGE_ROWS`, or cannot be counted.
    """
    rows = raw_rows(prepared.raw)
    return rows is None or rows < LARGE_ROWS


class Side:
    """The steps started in one `side_by_side` block.

    Args:
        beside: Whether the block's steps may overlap (`fits_beside`); a
            flow runs them one after the other in its thread when not.
    """

    def __init__(self, beside: bool = True) -> None:
        self.started: list[Any] = []
        self.beside = beside

    def task(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        """Starts a task (`Task.submit`); returns its `PrefectFuture` (`result()` waits and returns or raises).

        When the block's steps may not overlap (`beside` false) the task
        runs now, in the caller's thread, and its value is handed back the
        same way (`result()`).
        """
        if not self.beside:
            return _Ran(task(*args, **kwargs))
        future = task.submit(*args, **kwargs)
        self.started.append(future)
        return future

    def step(self, step: Any, run: PipelineRun, config: PipelineConfig, *args: Any, fresh: bool = False,
             **kwargs: Any) -> Any:
        """Starts a cached step (`kerasflow.tasks.caching.submit_step`); returns its `StepFuture`.

        When the block's steps may not overlap (`beside` false) the step runs
        now (`run_step`), and its value is handed back the same way (`result()`).
        """
        if not self.beside:
            return _Ran(run_step(step, run, config, *args, fresh=fresh, **kwargs))
        future = submit_step(step, run, config, *args, fresh=fresh, **kwargs)
        self.started.append(future)
        return future


class _Ran:
    """The value of a step that ran in the caller's thread, handed back as a started step's is (`result()`)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


@contextmanager
def side_by_side(prepared: Prepared | None = None) -> Iterator[Side]:
    """A block whose started steps are all finished when it ends, however it ends.

    Args:
        prepared: Paths from the data steps: its table's size decides
            `Side.beside` (`fits_beside`), once for the block. Default none
            (the steps may overlap).

    Example:

    ```python
    with side_by_side(prepared) as side:
        evaluated = side.task(evaluate_model, run.tracker, config, prepared, model)
        registered = register_model(run.tracker, config, prepared, model)
        metrics = evaluated.result()
    ```
    """
    side = Side(fits_beside(prepared) if prepared is not None else True)
    try:
        yield side
    except BaseException:
        for future in side.started:  # the block's error wins: each step is only waited for and finished
            _finish_quietly(future)
        raise
    for future in side.started:
        future.result()


def _finish_quietly(future: Any) -> None:
    """Waits for a started step and finishes it (lock, journal), ignoring its own error."""
    try:
        future.result()
    except Exception:  # a second interrupt while waiting does leave: the stop is the user's
        pass
