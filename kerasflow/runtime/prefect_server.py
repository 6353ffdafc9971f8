"""Which Prefect API a `kerasflow` command reports its flow runs to.

In order:

1. `PREFECT_API_URL`, from the environment or the active Prefect profile:
   your own Prefect server or Prefect Cloud. kerasflow starts nothing.
2. Otherwise, by default, a *shared local server*: a Prefect API server
   (with its UI) that kerasflow starts in the background on first use, on
   127.0.0.1 and a free port, over Prefect's usual database in
   `PREFECT_HOME`. Later commands reuse it, so they do not pay the 5-6 s
   server boot, and their flow runs stay browsable in its UI. It stops
   itself after `KERASFLOW_PREFECT_SERVER_IDLE_MINUTES` (default 30) minutes
   without requests or kerasflow commands using it; `kerasflow server stop`
   stops it at once.
3. With `KERASFLOW_PREFECT_SERVER=temporary`, a server for this command only,
   stopped when it ends (Prefect's own "temporary server" behaviour, minus
   importing the server code into the command's process).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kerasflow.runtime.processes import child_environment, free_port, wait_healthy

MODE_ENV = "KERASFLOW_PREFECT_SERVER"
IDLE_ENV = "KERASFLOW_PREFECT_SERVER_IDLE_MINUTES"
MODES = ("shared", "temporary")
DEFAULT_IDLE_MINUTES = 30.0
DAEMON_MODULE = "kerasflow.runtime.prefect_daemon"


class PrefectServerError(RuntimeError):
    """A local Prefect server could not be started or reached."""


@dataclass
class Server:
    """A local Prefect API server this process uses.

    Args:
        url: Its API URL (`http://127.0.0.1:<port>/api`).
        pid: Its process id.
        shared: True for the shared background server, false for a
            temporary one owned by this process.
        started: True when this process started it.
        log: Its log file.
    """

    url: str
    pid: int
    shared: bool
    started: bool
    log: Path

    @property
    def ui_url(self) -> str:
        """The UI address (the shared server serves Prefect's UI)."""
        return self.url.removesuffix("/api")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Blocks until the server answers its health check.

        Args:
            timeout: Seconds to wait. Default 120.

        Raises:
            PrefectServerError: The server process died or did not answer in time.
        """
        wait_healthy(f"{self.url}/health", lambda: None if _alive(self.pid) else "an unknown status", self.log,
                     timeout=timeout, interval=0.1, error=PrefectServerError)


def state_dir() -> Path:
    """The folder with the shared server's state, lock, log and client list.

    Returns:
        `$PREFECT_HOME/kerasflow-server`.
    """
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser() / "kerasflow-server"


def configured_api_url() -> str | None:
    """The Prefect API URL from the environment or the active profile, if any."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None


def server_mode() -> str:
    """`shared` (default) or `temporary`, from `KERASFLOW_PREFECT_SERVER`.

    Raises:
        PrefectServerError: An unknown mode, naming the allowed ones.
    """
    mode = os.environ.get(MODE_ENV, "shared").strip().lower() or "shared"
    if mode not in MODES:
        raise PrefectServerError(f"{MODE_ENV}={mode!r} is not one of {', '.join(MODES)}")
    return mode


def start_server() -> Server | None:
    """Finds or starts the local Prefect server for this process; does not wait for it.

    Returns:
        The server, or None when `PREFECT_API_URL` points elsewhere.
    """
    if configured_api_url():
        return None
    if server_mode() == "temporary":
        return _start_temporary()
    return ensure_shared_server()


@contextlib.contextmanager
def prefect_api(server: Server | None) -> Iterator[None]:
    """Points Prefect at `server` for the block (a no-op for None).

    Waits for the server to be ready first. Flows and the task threads they
    start inherit the setting.
    """
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server.wait_ready()
    os.environ["PREFECT_API_URL"] = server.url  # child processes, e.g. the validation worker
    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        yield


def shared_server() -> Server | None:
    """The running shared server, if any (`kerasflow server status`)."""
    state = _read_state(state_dir())
    if state is None or not _alive(state["pid"]):
        return None
    return Server(state["url"], state["pid"], True, False, Path(state["log"]))


def stop_shared_server(timeout: float = 30.0) -> Server | None:
    """Stops the shared server (`kerasflow server stop`).

    Returns:
        The server that was stopped, or None if none was running.
    """
    folder = state_dir()
    with _locked(folder):
        server = shared_server()
        if server is not None:
            _terminate(server.pid, timeout)
        (folder / "server.json").unlink(missing_ok=True)
    return server


def ensure_shared_server() -> Server:
    """Finds the shared server, or starts it in the background; does not wait for it.

    This process is registered as a user, so the server does not stop as
    idle while it runs.

    Returns:
        The shared server.
    """
    folder = state_dir()
    with _locked(folder):
        _register_client(folder)
        state = _read_state(folder)
        if state is not None and _alive(state["pid"]) and _is_daemon(state["pid"]):
            return Server(state["url"], state["pid"], True, False, Path(state["log"]))
        port = free_port()
        log = folder / "server.log"
        process = _spawn(port, log, shared=True)
        url = f"http://127.0.0.1:{port}/api"
        _write_state(folder, {"pid": process.pid, "url": url, "log": str(log), "started": time.time(),
                              "python": sys.executable})
        return Server(url, process.pid, True, True, log)


def _start_temporary() -> Server:
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / f"temporary-{os.getpid()}.log"
    process = _spawn(port, log, shared=False)
    atexit.register(_stop_temporary, process, log)
    return Server(f"http://127.0.0.1:{port}/api", process.pid, False, True, log)


def _spawn(port: int, log: Path, shared: bool) -> subprocess.Popen:
    from kerasflow.quiet import silence

    silence()
    idle = _idle_minutes() if shared else 0
    args = [sys.executable, "-m", DAEMON_MODULE, "--port", str(port), "--idle-minutes", str(idle)]
    if shared:
        args += ["--clients", str(log.parent / "clients")]
    else:
        args += ["--ephemeral", "--parent", str(os.getpid())]
    env = child_environment()
    env.pop("PREFECT_API_URL", None)
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=log.parent, start_new_session=shared)


def _stop_temporary(process: subprocess.Popen, log: Path) -> None:
    _terminate(process.pid, 10.0, process)
    log.unlink(missing_ok=True)


def _terminate(pid: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None and not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _register_client(folder: Path) -> None:
    """Marks this process as a user of the shared server, so it is not stopped as idle meanwhile."""
    clients = folder / "clients"
    clients.mkdir(parents=True, exist_ok=True)
    mark = clients / str(os.getpid())
    mark.touch()
    atexit.register(mark.unlink, missing_ok=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serializes finding, starting and stopping the shared server across processes (POSIX `flock`)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock, at worst two servers start
        yield
        return
    with open(folder / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(folder: Path) -> dict | None:
    try:
        state = json.loads((folder / "server.json").read_text())
        return state if {"pid", "url", "log"} <= set(state) else None
    except (OSError, ValueError):
        return None


def _write_state(folder: Path, state: dict) -> None:
    tmp = folder / "server.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(folder / "server.json")


def _idle_minutes() -> float:
    raw = os.environ.get(IDLE_ENV, str(DEFAULT_IDLE_MINUTES))
    try:
        minutes = float(raw)
    except ValueError:
        raise PrefectServerError(f"{IDLE_ENV}={raw!r} is not a number of minutes") from None
    if minutes <= 0:
        raise PrefectServerError(f"{IDLE_ENV}={raw!r} must be positive")
    return minutes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return True


def _is_daemon(pid: int) -> bool:
    """True unless /proc shows that `pid` is some other program (a reused pid)."""
    try:
        return DAEMON_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
