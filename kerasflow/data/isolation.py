"""Great Expectations validation in a worker process of its own.

Importing Great Expectations, and its first validation, cost about 3 s of
CPU and 150 MB that the training process never needs again. The validator
runs them in one worker process instead: `start_validator()` launches it at
the start of a command, where it imports Great Expectations and validates a
one-row frame while the main process imports TensorFlow (on a two-core
machine, at the same time); the validate step then hands its job to the warm
worker, and the worker exits when the job is done, so its memory is free
again before training starts.

The worker is a plain `python -m kerasflow.data.isolation` child, not a
`multiprocessing` one, so it never re-imports the caller's `__main__` (a
script without a main guard would otherwise run twice). A job is a pickled
`(function, args, kwargs)` on the worker's stdin; the result or exception
comes back pickled in a file.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from kerasflow.runtime.processes import child_environment, tail_log

T = TypeVar("T")

_LOCK = threading.Lock()
_WORKER: subprocess.Popen | None = None
_AT_EXIT = False


class IsolationError(RuntimeError):
    """The validation worker died before returning a result."""


def start_validator() -> None:
    """Starts the validation worker, if not running; returns at once.

    The worker imports Great Expectations and warms it up in the background.
    """
    global _WORKER, _AT_EXIT
    with _LOCK:
        if _WORKER is None or _WORKER.poll() is not None:
            _WORKER = _spawn()
        if not _AT_EXIT:  # an unused worker is stopped, and its log removed, when this process exits
            atexit.register(stop_validator)
            _AT_EXIT = True


def run_validation(function: Callable[..., T], *args: Any, while_waiting: Callable[[], Any] | None = None,
                   **kwargs: Any) -> T:
    """Runs `function(*args, **kwargs)` in the validation worker; the worker then exits.

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
        Whatever `function` raises, re-raised here.
        IsolationError: The worker died without a result; the message has
            the end of its output.
    """
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is None or worker.poll() is not None:
        worker = _spawn()
    with tempfile.TemporaryDirectory(prefix="kerasflow-job-") as tmp:
        result = Path(tmp) / "result.pickle"
        try:
            worker.stdin.write(pickle.dumps((function, args, kwargs, str(result))))
            worker.stdin.close()
        except BrokenPipeError:
            pass
        if while_waiting is not None:
            while_waiting()
        code = worker.wait()
        outcome = _read(result)
    log = Path(worker.args[-1])
    tail = tail_log(log, 20)
    log.unlink(missing_ok=True)
    if outcome is None:
        raise IsolationError(f"the validation worker exited with status {code} and no result:\n{tail}")
    ok, value = outcome
    if ok:
        return value
    raise value


def stop_validator() -> None:
    """Stops an unused validation worker (a no-op when none runs)."""
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None:
        if worker.poll() is None:
            worker.stdin.close()  # the worker exits at the end of its input
            worker.wait(timeout=60)
        Path(worker.args[-1]).unlink(missing_ok=True)


def _spawn() -> subprocess.Popen:
    env = child_environment()
    fd, log = tempfile.mkstemp(prefix="kerasflow-validator-", suffix=".log")
    with os.fdopen(fd, "wb") as out:  # the log path rides along as the last argument
        return subprocess.Popen([sys.executable, "-m", "kerasflow.data.isolation", log], stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def _read(path: Path) -> tuple[bool, Any] | None:
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def _serve() -> None:
    """The worker: warm up, wait for one job on stdin, write its outcome."""
    from kerasflow.quiet import silence

    silence()
    from kerasflow.data.validate import warm_up_gx

    warm_up_gx()
    payload = sys.stdin.buffer.read()
    if not payload:
        return
    function, args, kwargs, result = pickle.loads(payload)
    try:
        outcome: tuple[bool, Any] = (True, function(*args, **kwargs))
    except Exception as exc:  # sent back and re-raised in the caller
        outcome = (False, exc)
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:
        data = pickle.dumps((False, RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({exc})")))
    Path(result).write_bytes(data)


if __name__ == "__main__":
    _serve()
