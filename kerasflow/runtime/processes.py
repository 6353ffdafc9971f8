"""Child-process helpers shared by the stack, the local Prefect server and the validation worker."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

LOCALHOST = "127.0.0.1"
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # the folder that holds the `kerasflow` package
KILLED_WAIT = 2.0  # seconds: at most, for the processes sent SIGKILL to be gone
_PROC_STAT = Path("/proc/self/stat")  # present where /proc lists the processes (Linux)


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Returns an environment in which a `python -m kerasflow...` child finds this project.

    Args:
        base: Environment to start from. Default `os.environ`.

    Returns:
        `base` with the folder holding `kerasflow` first on `PYTHONPATH`.
    """
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    return env


def tail_log(log: Path, lines: int = 25) -> str:
    """Returns the last `lines` lines of a log under a heading, or "" when it cannot be read."""
    try:
        text = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return f"last lines of {log}:\n" + "\n".join(text[-lines:])


def wait_healthy(url: str, exit_code: Callable[[], Any], log: Path, timeout: float = 120.0,
                 interval: float = 0.5, error: type[Exception] = RuntimeError,
                 progress: Callable[[float], None] | None = None, every: float = 5.0) -> None:
    """Polls a health URL until it answers 200.

    Args:
        url: The health URL.
        exit_code: Returns None while the serving process runs, else its exit
            status (`Popen.poll` fits).
        log: The process's log, quoted on failure.
        timeout: Seconds to wait. Default 120.
        interval: Seconds between polls. Default 0.5.
        error: Exception type to raise. Default `RuntimeError`.
        progress: Called with the seconds waited so far, every `every`
            seconds while the server does not answer. Default: nothing.
        every: Seconds between `progress` calls. Default 5.

    Raises:
        error: The process exited or the timeout passed; the last lines of
            its log are included.
    """
    start = time.monotonic()
    deadline, told = start + timeout, start
    while time.monotonic() < deadline:
        code = exit_code()
        if code is not None:
            raise error(f"{url} did not come up: the process exited with {code}\n{tail_log(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
        if progress is not None and time.monotonic() - told >= every:
            told = time.monotonic()
            progress(told - start)
    raise error(f"{url} did not answer within {timeout:.0f} s\n{tail_log(log)}")


def stop_group(proc: Any, grace: float, *, stragglers_grace: bool = True) -> int | None:
    """Stops a child started as a process-group leader (`start_new_session=True`) and the rest of its group.

    SIGTERM to the group; up to `grace` seconds for it to end; SIGKILL to
    whatever of the group is left, and a moment for it to be gone; then the leader is reaped. The leader is
    reaped last on purpose: until then its process id, which is the group's
    id, cannot be taken by a new process, so no signal of this function can
    reach a stranger's group (process ids are reused quickly on a busy
    machine: Linux's default `pid_max` is 32,768, and every thread takes
    one). A leader already reaped (its `returncode` is set, e.g. by `poll`)
    leaves an id that may now be another group's: nothing is signalled.

    Args:
        proc: The leader's `subprocess.Popen`.
        grace: Seconds between SIGTERM and SIGKILL.
        stragglers_grace: Wait for the rest of the group to end too (a
            server's workers finishing their requests). When false, what
            outlives the leader is killed as soon as the leader ends.
            Default true.

    Returns:
        The leader's exit status (negative: the signal that ended it).
    """
    if proc.returncode is not None:
        return proc.returncode
    deadline = time.monotonic() + grace
    _signal_group(proc.pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        if _exited(proc.pid) and not (stragglers_grace and group_alive(proc.pid)):
            break
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    _wait_killed(proc.pid)
    return proc.wait()


def _wait_killed(pgid: int) -> None:
    """Waits (at most `KILLED_WAIT` s) until no process of the group runs (Linux: `group_alive` reads /proc).

    SIGKILL is delivered asynchronously: on a busy machine a member may still
    show as running for some milliseconds after `killpg` returns, and a caller
    that checks for survivors right after `stop_group` would see it.
    """
    if not _PROC_STAT.exists():  # elsewhere the unreaped leader counts as alive: nothing to wait for
        return
    deadline = time.monotonic() + KILLED_WAIT
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies waiting to be reaped do not count).

    Reads `/proc` where there is one (Linux), else asks with signal 0, for
    which a zombie leader still counts.
    """
    if not _PROC_STAT.exists():
        return _signal_group(pgid, 0)
    for stat in _PROC_STAT.parents[1].glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)": state, ppid, pgrp
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _exited(pid: int) -> bool:
    """Whether child `pid` has ended, without reaping it (it stays a zombie, its id reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def _signal_group(pgid: int, sig: int) -> bool:
    """Signals a process group; returns whether any process of it was there (signal 0 only asks)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
