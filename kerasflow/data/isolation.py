"""Great Expectations validation in a worker process of its own.

Importing Great Expectations, and its first validation, cost about 3 s of
CPU and 270 MB that the training process never needs again. Validation
therefore runs in a one-worker `ProcessPoolExecutor`: `start_validator()`
starts it at the start of a command and submits a warm-up job (import GX,
validate a two-row frame) that overlaps this process's imports of Prefect
and MLflow; `run_validation()` hands the real job to the warm worker and
shuts the pool down once it returns, so the worker's memory is free again
before TensorFlow is imported. An unused pool is shut down at exit.

The worker is started with `spawn`, never forked from a process running
TensorFlow's or Prefect's threads. Like any spawned `multiprocessing` child
it imports the caller's main module first: a script that runs a flow at
import time needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

from kerasflow.data.validate import warm_up_gx
from kerasflow.quiet import silence

T = TypeVar("T")

_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


class ValidationWorkerDied(RuntimeError):
    """The validation worker process died before returning a result."""


def start_validator() -> None:
    """Starts the validation worker, if not running, and its warm-up; returns at once."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = _new_pool()
            _POOL.submit(warm_up)


def run_validation(function: Callable[..., T], *args: Any, while_waiting: Callable[[], Any] | None = None,
                   **kwargs: Any) -> T:
    """Runs `function(*args, **kwargs)` in the validation worker, then shuts the worker down.

    Uses the worker `start_validator` started, or starts one.

    Args:
        function: A module-level (picklable) function, e.g.
            `kerasflow.data.validate.validate_file`.
        *args: Its positional arguments (picklable).
        while_waiting: Called in this thread once the job is handed over,
            before waiting for its result: work for the idle core. Default none.
        **kwargs: Its keyword arguments (picklable).

    Returns:
        What `function` returns.

    Raises:
        Whatever `function` raises, re-raised here as the same class.
        ValidationWorkerDied: The worker process died (killed, crashed or
            exited) before returning a result.
    """
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    pool = pool or _new_pool()
    try:
        future = pool.submit(function, *args, **kwargs)
        if while_waiting is not None:
            while_waiting()
        return future.result()
    except BrokenProcessPool as exc:
        raise ValidationWorkerDied(
            f"the validation worker process died before returning a result of {function.__name__} "
            f"(killed, e.g. out of memory, or crashed): {exc}") from exc
    finally:
        pool.shutdown()  # the worker exits: its memory is free before TensorFlow loads


def stop_validator() -> None:
    """Shuts an unused validation worker down, after its warm-up (a no-op when none runs)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(cancel_futures=True)


def warm_up() -> None:
    """The warm-up job, run in the worker: imports Great Expectations and validates a two-row frame."""
    warm_up_gx()


def _new_pool() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=silence)


atexit.register(stop_validator)
