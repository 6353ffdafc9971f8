"""One Python process that runs jobs one at a time for its parent, and never outlives it.

`Worker` starts `python -c ...` with the parent's `sys.path`, in a process
group of its own, connected by a socket pair; a job is a picklable
module-level function with its arguments, sent as a pickle, answered with
its value or its exception. It is the validation worker of
`kerasflow.data.expectations.run`.

Why not the standard library's `ProcessPoolExecutor`: its worker cannot be
stopped at once (shutdown waits for the running job), its queues are
semaphores that leak when the parent ends abruptly (`leaked semaphore
objects` after the prompt), and a spawned worker shares the terminal's
process group, so a Ctrl-C prints its 20-line traceback. Here:

- the worker is in its own process group and ignores SIGINT and SIGTERM:
  a Ctrl-C or a SIGTERM to the command's group reaches the parent only,
  which stops the worker (`stop`);
- `stop` closes the socket (an idle worker exits on end of file) or, while
  a job runs or `now` is set, kills the worker (SIGKILL), then reaps it;
- a watchdog thread in the worker ends it within half a second once its
  parent is gone (its parent pid changes: `kill -9` of the parent, a hard
  exit), so no worker is ever orphaned;
- there is no semaphore and no resource tracker.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable

_BOOT = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
         "from kerasflow.data.expectations.worker import serve; serve(int(sys.argv[2]), int(sys.argv[3]))")
_WATCH_SECONDS = 0.5


class WorkerDied(RuntimeError):
    """The worker process ended before answering a job."""


class RemoteTraceback(Exception):
    """The worker's traceback of a job's exception, attached as that exception's `__cause__`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Worker:
    """A one-process worker: jobs run in order, each answered unless sent with `reply=False`.

    Args:
        name: What the worker is, for messages. Default `"worker"`.
    """

    def __init__(self, name: str = "worker") -> None:
        self.name = name
        mine, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps(sys.path), str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, process_group=0)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self._socket = mine
        self._stream = mine.makefile("rwb")
        self._unanswered = 0  # jobs sent whose reply (or end, for `reply=False`) is not known yet
        self._expected = 0  # replies still to read

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the worker's process still runs."""
        return self.process.poll() is None

    def idle(self) -> bool:
        """Whether the worker runs and owes no answer: every job sent has been answered (a warm-up aside)."""
        return self._expected == 0 and self.alive()

    def send(self, function: Callable[..., Any], *args: Any, reply: bool = True, **kwargs: Any) -> None:
        """Queues `function(*args, **kwargs)` in the worker.

        Args:
            function: A module-level (picklable) function.
            *args: Its positional arguments (picklable).
            reply: Whether `result` will read its answer; a job sent with
                `reply=False` (a warm-up) is run and forgotten, its errors
                ignored. Default true.
            **kwargs: Its keyword arguments (picklable).

        Raises:
            WorkerDied: The worker has ended.
        """
        try:
            self._stream.write(pickle.dumps((function, args, kwargs, reply)))
            self._stream.flush()
        except OSError as exc:
            raise self._died(function) from exc
        self._unanswered += 1
        self._expected += reply

    def result(self, function: Callable[..., Any] | None = None) -> Any:
        """Waits for the answer of the oldest job sent with `reply=True`.

        Args:
            function: That job's function, for the message if the worker dies. Default none.

        Returns:
            What the job returned.

        Raises:
            Whatever the job raised, the same class, with the worker's
                traceback as its `__cause__`.
            WorkerDied: The worker ended before answering.
        """
        try:
            kind, value, remote = pickle.load(self._stream)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise self._died(function) from exc
        self._expected -= 1
        self._unanswered = self._expected  # the worker answered in order: every earlier job is done
        if kind == "error":
            value.__cause__ = RemoteTraceback(remote)
            raise value
        return value

    def stop(self, now: bool = False) -> None:
        """Ends the worker and reaps it; safe to call twice.

        An idle worker exits when its socket closes; a busy one (a job
        unanswered, e.g. after an interrupt), or any when `now` is set, is
        killed at once.

        Args:
            now: Kill it even if idle. Default false.
        """
        busy = now or self._unanswered > 0
        for closable in (self._stream, self._socket):
            try:
                closable.close()
            except OSError:
                pass
        if busy and self.alive():
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _died(self, function: Callable[..., Any] | None) -> WorkerDied:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        what = f" of {getattr(function, '__name__', function)}" if function is not None else ""
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 and -code in
               signal.valid_signals() else f"exit status {code}")
        return WorkerDied(f"the {self.name} process died before returning a result{what} ({how}; "
                          f"e.g. out of memory, or crashed)")


# --- the worker side ---------------------------------------------------------------------------------------------


def serve(fd: int, parent: int) -> None:
    """The worker's main loop: runs each job read from socket `fd` until end of file; never outlives `parent`.

    Args:
        fd: The worker's end of the socket pair.
        parent: The parent's process id.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):  # the parent stops the worker; a stray group signal does not
        signal.signal(signum, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="kerasflow-parent-watchdog", daemon=True).start()
    from kerasflow.quiet import silence

    silence()
    stream = socket.socket(fileno=fd).makefile("rwb")
    while True:
        try:
            function, args, kwargs, reply = pickle.load(stream)
        except (EOFError, OSError):
            os._exit(0)  # the parent closed the socket or is gone; skip the teardown of heavy modules
        answer = _run(function, args, kwargs)
        if reply:
            try:
                stream.write(answer)
                stream.flush()
            except OSError:
                os._exit(0)


def _run(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Runs a job; returns its pickled answer: `("ok", value, None)` or `("error", exception, traceback)`."""
    try:
        return pickle.dumps(("ok", function(*args, **kwargs), None))
    except Exception as exc:
        remote = "".join(traceback.format_exception(exc))
        try:
            return pickle.dumps(("error", exc, remote))
        except Exception:  # an exception that does not pickle: its class name and message
            return pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), remote))


def _watch_parent(parent: int) -> None:
    """Ends the worker once its parent is gone (it is then re-parented, so its parent pid changes)."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(0)
