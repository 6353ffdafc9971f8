"""A deadline after SIGINT or SIGTERM: the process ends within seconds even if the unwinding stalls.

A signal normally unwinds the command: the exception closes the MLflow runs
KILLED, Prefect marks the flow run Crashed, and the CLI exits 128 + the
signal number in well under a second. That path runs in the main thread,
through Prefect's engine, Keras and MLflow, and a library that waits on a
lock or swallows the exception would leave the process alive, which a
scheduler with a concurrency limit of one cannot afford.

The watchdog does not depend on whose Python handler is installed (Prefect
replaces the SIGTERM handler inside a flow): it listens on the standard
library's signal wakeup file descriptor (`signal.set_wakeup_fd`), to which
the interpreter writes the number of every signal it receives. A daemon
thread reads it; after the first SIGINT or SIGTERM it waits `grace`
seconds, then marks the runs this process still has open KILLED and their
Prefect flow runs Crashed (for at most a few seconds), says so, and ends the process with 128 + the signal
number. A second Ctrl-C ends it at once the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

from kerasflow.errors import note_stop_signal

GRACE_ENV = "KERASFLOW_SIGNAL_GRACE_SECONDS"
_STOPPING = (int(signal.SIGINT), int(signal.SIGTERM))
_armed = False


def signal_grace() -> float:
    """The seconds a signal has to unwind before the watchdog ends the process (default 8)."""
    try:
        return max(0.5, float(os.environ.get(GRACE_ENV, "8")))
    except ValueError:
        return 8.0


def arm_watchdog() -> bool:
    """Starts the watchdog; call once, from the main thread, before any work.

    Returns:
        Whether it started: not outside the main thread, and not when
        another component already owns the wakeup descriptor.
    """
    global _armed
    if _armed or threading.current_thread() is not threading.main_thread():
        return _armed
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:
        previous = None
    if previous != -1:  # not possible here, or someone else's (given back)
        if previous is not None:
            signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
        return False
    threading.Thread(target=_watch, args=(reader, writer), name="kerasflow-signal-watchdog", daemon=True).start()
    _armed = True
    return True


def _watch(reader: socket.socket, writer: socket.socket) -> None:
    first: int | None = None
    deadline = float("inf")
    while True:
        reader.settimeout(None if first is None else max(0.0, deadline - time.monotonic()))
        try:
            data = reader.recv(64)
        except (socket.timeout, TimeoutError):
            _end(first)
            return
        for signum in data:
            if signum not in _STOPPING:
                continue
            if first is None:
                first, deadline = signum, time.monotonic() + signal_grace()
                note_stop_signal(signum)  # for the safe points that re-raise a lost interrupt
            elif signum == signal.SIGINT:  # a second Ctrl-C: no more waiting
                _end(signum)
                return


def _end(signum: int) -> None:
    """Closes the open runs KILLED (at most 5 s), says so, and ends the process."""
    closer = threading.Thread(target=_close_runs, args=(signum,), daemon=True)
    closer.start()
    closer.join(timeout=5)
    name = signal.Signals(signum).name
    print(f"error: the command did not stop within {signal_grace():g} s of {name} ({GRACE_ENV}); ended it, "
          f"with its open MLflow runs marked KILLED and its Prefect flow run Crashed", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)


def _close_runs(signum: int) -> None:
    if "mlflow" not in sys.modules:  # no run was ever opened
        return
    from kerasflow.tracking import kill_open_runs, open_flow_runs

    flow_runs = open_flow_runs()
    kill_open_runs(signum)
    if flow_runs:
        _crash_flow_runs(flow_runs, signum)


def _crash_flow_runs(flow_runs: list[str], signum: int) -> None:
    """Sets the flow runs Crashed, through the API the command pointed Prefect at (`PREFECT_API_URL`).

    This thread does not see the main thread's settings context, so the URL
    is read from the environment that `prefect_api` set.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kerasflow.tasks.runs import crash_flow_run

    note = (f"stopped by {signal.Signals(signum).name} in process {os.getpid()}; the process did not unwind "
            f"within {signal_grace():g} s and was ended")
    url = os.environ.get("PREFECT_API_URL")
    with temporary_settings(updates={PREFECT_API_URL: url} if url else {}):
        for flow_run_id in flow_runs:
            with contextlib.suppress(Exception):
                crash_flow_run(flow_run_id, note)
