"""Which Prefect API a `kerasflow` command reports its flow runs to.

In order:

1. `PREFECT_API_URL`, from the environment or the active Prefect profile:
   your own Prefect server or Prefect Cloud. kerasflow starts nothing.
2. Otherwise, by default, the *shared local server*: Prefect's own
   background server of `PREFECT_HOME` (`prefect server start --background`,
   which records it in `$PREFECT_HOME/server.pid`), over the database in
   `PREFECT_HOME`, on 127.0.0.1 and port `KERASFLOW_PREFECT_PORT` (default
   4200). A background server already running from `PREFECT_HOME`, or any
   Prefect server answering on that port, is reused; otherwise it is started,
   and it runs until `kerasflow server stop` (`prefect server stop`).
   `kerasflow serve` uses the same server.
3. With `KERASFLOW_PREFECT_SERVER=temporary`, nothing is started here:
   Prefect runs its own temporary server for the command and stops it at exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from kerasflow.progress import status
from kerasflow.runtime.processes import LOCALHOST, wait_healthy

MODE_ENV = "KERASFLOW_PREFECT_SERVER"
PORT_ENV = "KERASFLOW_PREFECT_PORT"
MODES = ("shared", "temporary")
DEFAULT_PORT = 4200
BOOT_TIMEOUT = 120.0
PID_FILE = "server.pid"  # where `prefect server start --background` records its server, in PREFECT_HOME
LOG_FILE = "kerasflow-server.log"  # output of the last `prefect server start --background`, in PREFECT_HOME


class PrefectServerError(RuntimeError):
    """The shared local Prefect server could not be started or reached."""


@dataclass
class Server:
    """The shared local Prefect API server (with its UI).

    Args:
        url: Its API URL (`http://127.0.0.1:<port>/api`).
        pid: Its process id, when it is the background server of `PREFECT_HOME`.
        started: True when this process launched it.
        log: The output of `prefect server start --background`.
        launcher: That `prefect server start --background` process, while this process waits for it.
    """

    url: str
    pid: int | None = None
    started: bool = False
    log: Path | None = None
    launcher: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def ui_url(self) -> str:
        """The UI address."""
        return self.url.removesuffix("/api")

    @property
    def port(self) -> int:
        """Its TCP port."""
        return urlsplit(self.url).port or 80

    @property
    def shared(self) -> bool:
        """Always true: a per-command server is Prefect's own temporary one, never a `Server`."""
        return True

    def healthy(self) -> bool:
        """True when the server answers its health check now."""
        return _answers(self.url)

    def running(self) -> bool:
        """False once its process is known to be gone (a server without a known pid counts as running)."""
        return self.pid is None or bool(_prefect_args(self.pid))

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Blocks until the server answers its health check.

        Raises:
            PrefectServerError: It failed to start, died, or did not answer in
                `timeout` seconds; names its log and how to see why.
        """
        try:
            wait_healthy(f"{self.url}/health", self._exit_status, self.log or prefect_home() / LOG_FILE,
                         timeout=timeout, interval=0.2, error=PrefectServerError)
            running = background_server()
            if self.pid is None and running is not None and running.url == self.url:
                self.pid = running.pid
        except PrefectServerError as exc:
            raise PrefectServerError(
                f"{exc}\nThe background server's own output is not kept: `prefect server start --host {LOCALHOST} "
                f"--port {self.port}` shows why it fails. {PORT_ENV} picks another port; `kerasflow server stop` "
                f"stops a stuck server.") from None

    def _exit_status(self) -> object:
        """None while the server may still come up, else why not (for `wait_healthy`)."""
        if self.launcher is not None and self.launcher.poll() is None:
            return None
        if background_server() is not None:  # up, or booting (perhaps launched by a concurrent command)
            return None
        if self.launcher is not None:
            return self.launcher.returncode or "0, but the server it started is gone"
        return None if self.pid is None else "an unknown status (the server process is gone)"


def prefect_home() -> Path:
    """Prefect's `PREFECT_HOME`: its database, and the background server's pid file."""
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser()


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


def server_port() -> int:
    """The shared server's port: `KERASFLOW_PREFECT_PORT`, default 4200.

    Raises:
        PrefectServerError: Not a TCP port number.
    """
    raw = os.environ.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PrefectServerError(f"{PORT_ENV}={raw!r} is not a TCP port number")
    return int(raw)


def start_server() -> Server | None:
    """Finds or starts the shared server for this command; does not wait for it.

    Returns:
        The server, or None when `PREFECT_API_URL` is configured or the mode
        is `temporary` (Prefect then runs its own temporary server).
    """
    if configured_api_url() or server_mode() == "temporary":
        return None
    return ensure_shared_server()


@contextlib.contextmanager
def prefect_api(server: Server | None) -> Iterator[None]:
    """Points Prefect at `server` for the block (a no-op for None).

    Waits for the server to be ready first. Flows, the task threads they
    start and child processes (through `PREFECT_API_URL`) inherit the setting.
    """
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with status("waiting for the Prefect server to answer"):
        server.wait_ready()
    os.environ["PREFECT_API_URL"] = server.url  # child processes, e.g. the validation worker
    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        yield


def shared_server(port: int | None = None) -> Server | None:
    """The running shared server, if any.

    That is, in order: the background server of `PREFECT_HOME` on `port`, any
    Prefect server answering on `port`, the background server of
    `PREFECT_HOME` on another port.

    Args:
        port: Default `server_port()`.
    """
    url = _local_url(port or server_port())
    running = background_server()
    if running is not None and running.url == url:
        return running
    return Server(url) if _answers(url) else running


def ensure_shared_server(port: int | None = None) -> Server:
    """The running shared server, or a new one started in the background; does not wait for it."""
    return shared_server(port) or launch_shared_server(port)


def launch_shared_server(port: int | None = None) -> Server:
    """Runs `prefect server start --background` on 127.0.0.1:`port`; does not wait for the server.

    Args:
        port: Default `server_port()`.
    """
    port = port or server_port()
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale_pid_file()
    # The background server writes to pipes that close when `prefect server start` exits, and Prefect's
    # console log handler (rich) exits the server on a broken pipe: keep its console for CRITICAL only.
    env = {**_prefect_env(), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
           # the UI it serves calls this API: without it, the UI of a server off port 4200 cannot load a page
           "PREFECT_UI_API_URL": _local_url(port)}
    log = home / LOG_FILE
    with open(log, "wb") as out:  # own session: a Ctrl-C in the terminal does not reach the shared server
        launcher = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--background", "--host", LOCALHOST,
             "--port", str(port), "--analytics-off"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home,
            start_new_session=True)
    return Server(_local_url(port), started=True, log=log, launcher=launcher)


def stop_shared_server(timeout: float = 30.0) -> Server | None:
    """Stops the background server of `PREFECT_HOME` with `prefect server stop`, and waits until it is gone.

    Returns:
        The server that was stopped, or None if none was running.
    """
    server = background_server()
    if server is None:
        _remove_stale_pid_file()
        return None
    subprocess.run([sys.executable, "-m", "prefect", "server", "stop"], env=_prefect_env(), cwd=prefect_home(),
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    deadline = time.monotonic() + timeout
    while _prefect_args(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _prefect_args(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
    return server


def background_server() -> Server | None:
    """Prefect's background server of `PREFECT_HOME`, if it runs (perhaps still booting)."""
    try:
        pid = int((prefect_home() / PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    args = _prefect_args(pid)
    if not args or "--port" not in args[:-1]:
        return None
    host = args[args.index("--host") + 1] if "--host" in args[:-1] else LOCALHOST
    return Server(f"http://{host}:{args[args.index('--port') + 1]}/api", pid=pid)


def _prefect_args(pid: int) -> list[str]:
    """The command line of `pid` if it is a live Prefect process, else []."""
    try:
        if Path("/proc").is_dir():
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        else:
            args = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True,
                                  timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return []
    return args if any("prefect" in arg for arg in args) else []


def _remove_stale_pid_file() -> None:
    """Removes a pid file left by a background server that is gone, which would block `prefect server start`."""
    path = prefect_home() / PID_FILE
    with contextlib.suppress(OSError):
        being_written = not path.read_text().strip() and time.time() - path.stat().st_mtime < 10
        if not being_written and background_server() is None:
            path.unlink()


def _prefect_env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(prefect_home())}
    env.pop("PREFECT_API_URL", None)
    return env


def _local_url(port: int) -> str:
    return f"http://{LOCALHOST}:{port}/api"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
