"""Stopping a command: its signal handlers, its exits, and the watchdog that ends a stalled one.

The policy (what a stop means, its exit status, the stop hooks) is
`kerasflow.stopping`'s; this module applies it to the process:

- `install_signal_handlers`: SIGINT and SIGTERM raise `KeyboardInterrupt` or
  `Terminated` in the main thread, so the command unwinds and closes its runs
  (inside a flow Prefect's own SIGTERM handler raises `TerminationSignal`);
- `stopped`: the one line saying which signal stopped the command, then the
  exit with 128 + its number; `hard_exit`, `exit_with` and `skip_teardown`:
  how the process ends;
- the watchdog, a deadline after SIGINT or SIGTERM: the process ends within
  seconds even if the unwinding stalls.

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
seconds, then runs the stop hooks (`kerasflow.stopping.run_stop_hooks`:
the runs this process still has open are marked KILLED and their Prefect
flow runs Crashed, for at most a few seconds), says so, and ends the process
with 128 + the signal number. A second Ctrl-C ends it at once the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from kerasflow import stopping

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

    It also registers this process's stop hooks (`register_stop_hooks`).

    Returns:
        Whether it started: not outside the main thread, and not when
        another component already owns the wakeup descriptor.
    """
    global _armed
    register_stop_hooks()
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
                stopping.note_stop_signal(signum)  # for the safe points that re-raise a lost interrupt
            elif signum == signal.SIGINT:  # a second Ctrl-C: no more waiting
                _end(signum)
                return


def register_stop_hooks() -> None:
    """Registers this process's part of a stop with `kerasflow.stopping` (idempotent).

    The last resort's hooks, in order: the tracking layer marks the MLflow
    runs this process still has open KILLED, then their Prefect flow runs are
    set Crashed (`kerasflow.tasks.runs.crash_flow_run`); and SIGTERM is raised
    again at a safe point as Prefect's `TerminationSignal`, as Prefect's own
    handler raises it inside a flow.
    """
    from prefect.exceptions import TerminationSignal  # Prefect is loaded: this runs before a flow

    stopping.terminate_with(TerminationSignal)
    stopping.on_stop(_kill_open_runs)
    stopping.on_stop(_crash_open_flow_runs)


def _end(signum: int) -> None:
    """Runs the stop hooks (at most 5 s), says so, and ends the process."""
    closer = threading.Thread(target=stopping.run_stop_hooks, args=(signum,), daemon=True)
    closer.start()
    closer.join(timeout=5)
    name = signal.Signals(signum).name
    print(f"error: the command did not stop within {signal_grace():g} s of {name} ({GRACE_ENV}); ended it, "
          f"with its open MLflow runs marked KILLED and its Prefect flow run Crashed", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(stopping.exit_status(signum))


def _kill_open_runs(signum: int) -> None:
    """Stop hook: the MLflow runs this process has open are marked KILLED (they stay listed, for the next hook)."""
    if "mlflow" not in sys.modules:  # no run was ever opened
        return
    from kerasflow.tracking import kill_open_runs

    kill_open_runs(signum)


def _crash_open_flow_runs(signum: int) -> None:
    """Stop hook: the Prefect flow runs of the open MLflow runs are set Crashed."""
    if "mlflow" not in sys.modules:
        return
    from kerasflow.tracking import open_flow_runs

    flow_runs = open_flow_runs()
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


# --- the signal handlers and the exits of the command ---------------------------------------------------------

_signal_received: int | None = None  # the latest SIGINT or SIGTERM the handlers saw
_exit_status: int | None = None


def interrupt(*_: Any) -> None:
    """A signal handler that unwinds like Ctrl-C (`kerasflow serve` while it starts)."""
    raise KeyboardInterrupt


def _on_signal(signum: int, _frame: Any) -> None:
    global _signal_received
    _signal_received = signum
    raise stopping.Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM unwind the command (closing its runs); it then exits 128 + the signal number.

    Inside a flow Prefect replaces the SIGTERM handler with its own, which
    raises `TerminationSignal` and marks the flow run Crashed; the CLI's
    `run_flow` handles both.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread
            return


def exit_status_of(code: Any) -> Any:
    """The status to exit with once the command returned `code`.

    After a signal that stopped the command before its flow ran, click's
    "Aborted!" (1) or Typer's silent 130 for any `KeyboardInterrupt` (our
    SIGTERM's `Terminated` is one) become 128 + the signal number, with
    one line saying so.
    """
    if not _signal_received or code not in (1, 130):
        return code
    print(f"error: stopped by {stopping.signal_label(_signal_received)} (outside a pipeline run)", file=sys.stderr,
          flush=True)
    return stopping.exit_status(_signal_received)


def stopped(kind: str, exc: BaseException | None) -> None:
    """Says which signal stopped the flow and exits 128 + its number."""
    signum = getattr(exc, "signal", None) or _signal_received or (
        signal.SIGTERM if isinstance(exc, stopping.Terminated) else signal.SIGINT)
    print(f"error: {kind} stopped by {stopping.signal_label(signum)}: the MLflow run and its nested runs are "
          f"marked KILLED, the Prefect flow run Crashed", file=sys.stderr)
    hard_exit(stopping.exit_status(signum))


def hard_exit(code: int, logs_within: float = 5.0) -> None:
    """Exits now, without waiting for worker threads or MLflow's queued async logging.

    After an interrupt or a store outage, training may go on in a worker
    thread and MLflow's exit handler would retry every queued batch against
    a store that is gone; the runs are already closed (or reported), so the
    process ends here after flushing its output and logs (at most
    `logs_within` seconds, default 5: Prefect's API log handler waits on an
    API that may be gone). A run still open, which its block did not close,
    is closed first (`close_unwound_runs`), so no exit leaves a run RUNNING
    in a store that answers.
    """
    close_unwound_runs(code)
    flusher = threading.Thread(target=logging.shutdown, daemon=True)
    flusher.start()
    flusher.join(timeout=logs_within)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def close_unwound_runs(code: int, within: float = 3.0) -> None:
    """Closes the MLflow runs this process still has open before it ends without unwinding (normally none).

    FAILED, or KILLED for a signal's exit status (above 128), with a note
    giving the exit status. At most `within` seconds (default 3): a store
    that does not answer keeps the run RUNNING until the next pipeline run
    on this host marks it FAILED.
    """
    if "mlflow" not in sys.modules:  # no run was ever opened
        return
    from kerasflow.tracking import close_open_runs

    status = "KILLED" if code > 128 else "FAILED"
    closer = threading.Thread(target=close_open_runs, daemon=True, args=(
        status, f"the command ended with exit status {code}", "the run was still open when it ended"))
    closer.start()
    closer.join(timeout=within)


def exit_with(code: Any) -> None:
    """Exits with `code`, skipping interpreter teardown once TensorFlow is loaded.

    Tearing down the modules of TensorFlow, MLflow and Prefect takes about
    1.6 s after the work is done. The exit is otherwise a normal one: threads
    are joined and every `atexit` handler runs (Prefect and MLflow flush
    there; temporary servers and the validation worker stop); then
    `skip_teardown`, the first handler registered and so the last to run,
    ends the process without the module teardown.
    """
    global _exit_status
    _exit_status = code if isinstance(code, int) else (0 if code is None else 1)
    raise SystemExit(code)


def skip_teardown() -> None:
    """The last `atexit` handler: after `exit_with`, with TensorFlow loaded, ends the process at once."""
    if _exit_status is None or "tensorflow" not in sys.modules:
        return

    logging.shutdown()  # its own handler was registered before this one, so would not run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
