"""A guard process: runs a server command in its process group, and stops that group once its parent dies.

`kerasflow ui` starts `mlflow ui` in a process group of its own (so that
a Ctrl-C reaches `kerasflow` only, which then stops the group in order).
A `kill -9` of `kerasflow` skips that stop: the server, its uvicorn
workers and its job runner would live on with the port open. So the
command runs under this guard, the leader of the group:

    python -P .../kerasflow/runtime/guard.py PARENT_PID -- mlflow ui ...

- The guard starts the command as its child, in the guard's group, and
  exits as the command does (same status, or killed by the same signal),
  so its parent sees the command's end.
- Every 0.25 s it checks its parent pid (the watchdog of the validation
  worker, `kerasflow.data.expectations.worker`, does the same): once the
  parent is gone (the guard is re-parented, so its parent pid changes),
  it sends the whole group SIGTERM, waits up to 5 s for the command to
  end, then sends SIGKILL to what is left of the group, itself included.
- SIGINT and SIGTERM do not stop the guard itself (a handler that does
  nothing, which, unlike ignoring them, the command does not inherit):
  the parent stops the group, and the guard follows its command out.

Standard library only, so that the guard starts in a few milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Sequence

WATCH_SECONDS = 0.25
GRACE_SECONDS = 5.0


def guarded(command: Sequence[str], parent: int | None = None) -> list[str]:
    """The command line that runs `command` under a guard watching `parent`.

    Start it with `start_new_session=True`: the guard stops its own group.

    Args:
        command: The server's command line.
        parent: The process whose death stops the command. Default: this process.

    Returns:
        `python -P .../kerasflow/runtime/guard.py PARENT -- command...`.
    """
    parent = os.getpid() if parent is None else parent
    # run as a file (standard library only), so the child needs no PYTHONPATH; -P: its folder not on sys.path
    return [sys.executable, "-P", os.path.abspath(__file__), str(parent), "--", *command]


def run(parent: int, command: Sequence[str]) -> int:
    """Runs `command` until it ends, or until `parent` dies (then its whole process group is stopped).

    Args:
        parent: The process id to watch.
        command: The command line.

    Returns:
        The command's exit status (negative: the signal that ended it), or 0 when the parent was already gone.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore)
    if os.getppid() != parent:
        return 0
    child = subprocess.Popen(list(command))
    while True:
        try:
            return child.wait(timeout=WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:
            stop_group(child)


def stop_group(child: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """Stops the guard's process group: SIGTERM, up to `grace` seconds for `child`, then SIGKILL (the guard too)."""
    os.killpg(os.getpgrp(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _ignore(signum: int, frame: object) -> None:
    """A signal handler that does nothing (reset to the default in the command, unlike `SIG_IGN`)."""


def _exit_as(status: int) -> None:
    """Ends the guard as the command ended: with its exit status, or by the signal that killed it."""
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        time.sleep(1.0)  # the signal arrives while sleeping
        status = 128 - status
    sys.exit(status)


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: python -m kerasflow.runtime.guard PARENT_PID -- COMMAND...")
    _exit_as(run(int(sys.argv[1]), sys.argv[3:]))
