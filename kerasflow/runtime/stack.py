"""The local production stack: Prefect server, work pool, deployments, worker, MLflow server.

`kerasflow serve` runs everything on one machine, bound to 127.0.0.1:

- the shared local Prefect server that `kerasflow run` reports to
  (`kerasflow.runtime.prefect_server`: Prefect's background server of
  `PREFECT_HOME`), reused if it runs, else started,
- the `process` work pool (created if missing) and the deployments of
  `prefect.yaml` (`prefect deploy`),
- a process worker that runs the flows in the project directory, and
- the MLflow tracking server and UI on the same store `kerasflow run` uses
  (`sqlite:///mlruns/mlflow.db`, artifacts under `mlruns/`).

Each child runs in its own process group with its output in
`.kerasflow/logs/`; `Stack.stop` (on Ctrl-C or SIGTERM) terminates them in
reverse order, waits, and kills whatever is left, then stops the shared
Prefect server only if this stack started it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from kerasflow.progress import status
from kerasflow.quiet import silence
from kerasflow.runtime.prefect_server import (
    PrefectServerError,
    Server,
    launch_shared_server,
    server_port,
    shared_server,
    stop_shared_server,
)
from kerasflow.runtime.processes import LOCALHOST, wait_healthy

DEFAULT_POOL = "kerasflow-process"


class StackError(RuntimeError):
    """A part of the stack failed to start; the message points at its log."""


@dataclass
class StackSettings:
    """Where and how the stack runs.

    Args:
        home: The project folder (holds `prefect.yaml`); flows run there.
        prefect_port: Port of the shared Prefect server: a Prefect server
            answering there is used, else the shared server already running
            from `PREFECT_HOME` on another port, else one is started there.
            Default `KERASFLOW_PREFECT_PORT`, else 4200. `Stack.start` sets it
            to the port of the server in use.
        mlflow_port: MLflow server port. Default 5000.
        pool: Work pool name. Default `kerasflow-process`.
        state_dir: Stack state (logs, the `env` file). Default `home/.kerasflow`.
        tracking_uri: MLflow store. Default `sqlite:///home/mlruns/mlflow.db`.
        deployments: Deployment names to deploy. Default: every deployment
            of `prefect.yaml` whose flow file exists.
        worker_poll_seconds: How often the worker polls for runs. Default 5.
        extra_env: More environment variables for every child. Default none.
    """

    home: Path
    prefect_port: int | None = None
    mlflow_port: int = 5000
    pool: str = DEFAULT_POOL
    state_dir: Path | None = None
    tracking_uri: str | None = None
    deployments: list[str] | None = None
    worker_poll_seconds: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.state_dir = Path(self.state_dir).resolve() if self.state_dir else self.home / ".kerasflow"
        self.local = LOCALHOST  # where the stack's own children and checks reach the servers

    @property
    def logs(self) -> Path:
        """Folder of the children's output."""
        return self.state_dir / "logs"

    @property
    def api_url(self) -> str:
        """The Prefect API address."""
        return f"http://{self.local}:{self.prefect_port}/api"

    @property
    def prefect_ui(self) -> str:
        """The Prefect UI address."""
        return f"http://{self.local}:{self.prefect_port}"

    @property
    def mlflow_ui(self) -> str:
        """The MLflow UI address."""
        return f"http://{self.local}:{self.mlflow_port}"

    @property
    def store(self) -> str:
        """The MLflow tracking URI the flows and the MLflow server share."""
        return self.tracking_uri or f"sqlite:///{self.home / 'mlruns' / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        """Where the MLflow server keeps artifacts it receives: `artifacts/` beside a SQLite store."""
        if self.store.startswith("sqlite:///"):
            return Path(self.store.removeprefix("sqlite:///")).parent / "artifacts"
        return self.home / "mlruns" / "artifacts"


def port_in_use(port: int) -> bool:
    """Returns True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((LOCALHOST, port)) == 0


def require_free_ports(ports: list[tuple[int, str]]) -> None:
    """Raises `StackError` for the first `(port, option)` that something already listens on, naming the option to change."""
    for port, option in ports:
        if port_in_use(port):
            raise StackError(f"port {port} on {LOCALHOST} is already in use: stop what runs there or pass {option}")


def stack_environment(settings: StackSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Returns the environment of every child of the stack.

    Args:
        settings: The stack settings.
        base: Environment to start from. Default `os.environ`.

    Returns:
        `base` plus the Prefect API, the MLflow store, quiet telemetry
        settings, and `KERASFLOW_HOME` (the `prefect.yaml` pull step's
        working directory). `PREFECT_HOME` is inherited: the shared server's.
    """

    silence()  # quiet defaults (telemetry off, no TensorFlow banners) into os.environ
    env = {**(os.environ if base is None else base)}
    env.update({
        "KERASFLOW_HOME": str(settings.home),
        "PREFECT_API_URL": settings.api_url,
        "PREFECT_CLI_PROMPT": "false",
        "PREFECT_WORKER_QUERY_SECONDS": f"{settings.worker_poll_seconds:g}",
        "MLFLOW_TRACKING_URI": settings.store,
        "KERASFLOW_MLFLOW_UI_URL": settings.mlflow_ui,  # run links point at the stack's MLflow UI
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI job runners: 8 idle processes otherwise
        "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        **settings.extra_env,
    })
    return env


def declared_deployments(home: Path) -> list[dict[str, Any]]:
    """Reads the deployments of a project's `prefect.yaml`.

    Args:
        home: The project folder.

    Returns:
        Each deployment's `name`, `flow` (from the entrypoint's function)
        and `entrypoint`, and whether the flow file exists (`available`).

    Raises:
        StackError: There is no `prefect.yaml`.
    """
    path = Path(home) / "prefect.yaml"
    if not path.is_file():
        raise StackError(f"no prefect.yaml in {home}: run from the kerasflow project folder or pass --home")
    data = yaml.safe_load(path.read_text()) or {}
    found = []
    for item in data.get("deployments") or []:
        entry = str(item.get("entrypoint", ""))
        found.append({"name": item.get("name"), "entrypoint": entry,
                      "available": (Path(home) / entry.partition(":")[0]).is_file()})
    return found


class Stack:
    """The running children of `kerasflow serve`.

    Args:
        settings: The stack settings.
        echo: Receives progress lines. Default: print.
    """

    def __init__(self, settings: StackSettings, echo: Callable[[str], None] = print):
        self.settings = settings
        self.echo = echo
        self.env = stack_environment(settings)
        self.children: dict[str, subprocess.Popen] = {}
        self.deployed: list[str] = []
        self.server: Server | None = None  # the shared Prefect server in use
        self._stopping = threading.Event()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Finds or starts the shared Prefect server, then starts pool, deployments, worker and MLflow server.

        Raises:
            StackError: A part failed; what started is left for `stop`.
        """
        s = self.settings
        chosen = s.prefect_port is not None
        try:
            s.prefect_port = s.prefect_port or server_port()
            self.server = shared_server(s.prefect_port)
        except PrefectServerError as exc:
            raise StackError(str(exc)) from None
        busy = [(s.mlflow_port, "--mlflow-port")]
        if self.server is None or (chosen and self.server.port != s.prefect_port):
            busy.insert(0, (s.prefect_port, "--prefect-port"))  # to start the server on, or asked for
        require_free_ports(busy)
        for folder in (s.logs, s.artifacts):
            folder.mkdir(parents=True, exist_ok=True)
        if self.server is None:
            self.server = launch_shared_server(s.prefect_port)
        s.prefect_port = self.server.port
        self.env = stack_environment(s)
        self.start_child("mlflow-server", [sys.executable, "-m", "mlflow", "server", "--host", LOCALHOST,
                                           "--port", str(s.mlflow_port), "--backend-store-uri", s.store,
                                           "--artifacts-destination", str(s.artifacts),
                                           "--workers", "1"])
        try:
            with status("waiting for the Prefect server to answer"):
                self.server.wait_ready()
        except PrefectServerError as exc:
            raise StackError(str(exc)) from None
        self.ensure_work_pool()
        self.deploy()
        self.start_child("worker", [*self._prefect, "worker", "start", "--pool", s.pool, "--type", "process",
                                    "--name", f"kerasflow-{socket.gethostname()}", "--install-policy", "never"])
        with status("waiting for the MLflow server to answer"):
            wait_healthy(f"{s.mlflow_ui}/health", self.children["mlflow-server"].poll, s.logs / "mlflow-server.log",
                         error=StackError)

    def ensure_work_pool(self) -> None:
        """Creates the `process` work pool unless it exists."""
        with status(f"creating the work pool {self.settings.pool}"):
            proc = self.prefect("work-pool", "create", self.settings.pool, "--type", "process", check=False)
        if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
            raise StackError(f"cannot create work pool {self.settings.pool!r}:\n{proc.stdout}\n{proc.stderr}")

    def deploy(self) -> list[str]:
        """Deploys the selected deployments of `prefect.yaml`; flows whose file is missing are skipped.

        Returns:
            The deployment names deployed.
        """
        declared = declared_deployments(self.settings.home)
        wanted = self.settings.deployments or [d["name"] for d in declared]
        names = []
        for item in declared:
            if item["name"] not in wanted:
                continue
            if not item["available"]:
                self.echo(f"skipping deployment {item['name']!r}: {item['entrypoint']} does not exist yet")
                continue
            names.append(item["name"])
        if names:
            source = self.deployment_file()
            self.echo(f"deploying {', '.join(names)} ...")
            self.prefect("deploy", *(["--prefect-file", str(source)] if source else []),
                         *(arg for name in names for arg in ("--name", name)), timeout=300)
        self.deployed = names
        return names

    def deployment_file(self) -> Path | None:
        """The deployment file to deploy from: None for the project's `prefect.yaml`."""
        return None

    def prefect(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs a Prefect CLI command against the stack's server, from the project folder.

        Raises:
            StackError: `check` and the command failed; its output is included.
        """
        proc = subprocess.run([*self._prefect, *args], cwd=self.settings.home, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise StackError(f"`prefect {' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start_child(self, name: str, cmd: list[str], cwd: Path | None = None,
                    env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts a long-running child in its own process group, output to `logs/<name>.log`.

        Args:
            name: The child's name (and its log's).
            cmd: The command.
            cwd: Its working directory. Default: the project folder.
            env: Its environment. Default: the stack's.
        """
        log = open(self.settings.logs / f"{name}.log", "ab")  # noqa: SIM115  (closed with the child)
        proc = subprocess.Popen(cmd, cwd=cwd or self.settings.home, env=env or self.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        self.children[name] = proc
        return proc

    def wait(self) -> str | None:
        """Blocks until `stop_soon` is called, a child exits or the Prefect server stops answering.

        Returns:
            The name of what stopped on its own, or None.
        """
        while not self._stopping.wait(1.0):
            stopped = self.stopped_part()
            if stopped:
                return stopped
        return None

    def stopped_part(self) -> str | None:
        """The name of a part that has stopped on its own (a child, the shared Prefect server), or None."""
        for name, proc in self.children.items():
            if proc.poll() is not None:
                return name
        if self.server is not None and not self.server.running():
            return "the Prefect server"
        return None

    def stop_soon(self, *_: Any) -> None:
        """Asks `wait` to return; safe to call from a signal handler."""
        self._stopping.set()

    def stop(self, timeout: float = 20.0) -> None:
        """Stops every child, newest first (the worker before the servers it reports to).

        Each child's process group gets SIGTERM; a child still running after
        `timeout` seconds is killed, and so are stragglers of its group
        (server workers, flow-run subprocesses). Then the shared Prefect
        server is stopped if this stack started it; one already running stays up.
        """
        self._stopping.set()
        for name in reversed(list(self.children)):
            proc = self.children.pop(name)
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            _signal_group(proc, signal.SIGKILL)
            proc.log.close()  # type: ignore[attr-defined]
        server, self.server = self.server, None
        if server is not None and server.started:
            if server.launcher is not None:  # still launching: let it record the server, so it can be stopped
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.launcher.wait(timeout)
            stop_shared_server()

    @property
    def _prefect(self) -> list[str]:
        return [sys.executable, "-m", "prefect"]


def write_env_file(settings: StackSettings) -> Path:
    """Writes `.kerasflow/env` with the exports a second shell needs to talk to the stack.

    It puts the environment's `bin` first on `PATH`, so `prefect deployment
    run ...` and `kerasflow ...` work after `source .kerasflow/env`.
    """
    path = settings.state_dir / "env"
    path.write_text(f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"\n"
                    f"export PREFECT_API_URL={settings.api_url}\n"
                    f"export MLFLOW_TRACKING_URI={settings.store}\n"
                    f"export KERASFLOW_MLFLOW_UI_URL={settings.mlflow_ui}\n"
                    f"export KERASFLOW_HOME={settings.home}\n")
    return path


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
