"""The local production stack: Prefect server, work pool, deployments, worker, MLflow server.

`kerasflow serve` runs everything on one machine, bound to 127.0.0.1:

- the shared local Prefect server that `kerasflow run` reports to
  (`kerasflow.runtime.prefect_server`: Prefect's background server of
  `PREFECT_HOME`), reused if it runs, else started,
- the project's `process` work pool (created if missing) and the
  deployments of `prefect.yaml` (`prefect deploy`), namespaced by the
  project's name (`retrain/<project>-nightly`, pool `<project>-process`)
  so that projects sharing the server keep apart, their schedules resumed,
- a process worker that runs the flows in the project directory, and
- the MLflow tracking server and UI on the same store `kerasflow run` uses
  (`sqlite:///mlruns/mlflow.db`, artifacts under `mlruns/`).

Each child runs in its own process group with its output in
`.kerasflow/logs/`; `Stack.stop` (on Ctrl-C or SIGTERM) terminates them in
reverse order, waits, and kills whatever is left, then stops the shared
Prefect server only if this stack started it. Before that it pauses the
schedules of its deployments (`PrefectClient.pause_deployment`), so no
scheduled run piles up on the shared server while no worker serves them;
the next start resumes them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
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
from kerasflow.runtime.guard import guarded
from kerasflow.runtime.prefect_server import (
    PrefectServerError,
    Server,
    background_server,
    launch_shared_server,
    prefect_home,
    server_port,
    shared_server,
    stop_shared_server,
)
from kerasflow.runtime.processes import LOCALHOST, stop_group, wait_healthy
from kerasflow.runtime.projects import (
    PROJECT_NAME,
    StackError,
    namespaced_deployments,
    set_schedules,
)

DEFAULT_POOL = "kerasflow-process"


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
        project: The project's name: deployments are deployed as
            `<project>-<name>` (e.g. `retrain/digits-nightly`) from a copy
            of `prefect.yaml` in `state_dir`, so two projects on one Prefect
            server do not overwrite each other's. Default none: the names of
            `prefect.yaml` as they are (`kerasflow serve` passes
            `project_name(home)`).
        pool: Work pool name. Default `<project>-process`, else `kerasflow-process`.
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
    pool: str | None = None
    project: str | None = None
    state_dir: Path | None = None
    tracking_uri: str | None = None
    deployments: list[str] | None = None
    worker_poll_seconds: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        if self.project is not None and not PROJECT_NAME.match(self.project):
            raise StackError(f"project name {self.project!r}: use letters, digits, '_', '.' and '-' (at most 63), "
                             "starting with a letter or digit")
        self.pool = self.pool or (f"{self.project}-process" if self.project else DEFAULT_POOL)
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
            raise StackError(busy_port_message(port, option))


def busy_port_message(port: int, option: str) -> str:
    """Says what holds a busy port and what to do: kerasflow's own local Prefect server is named as such.

    Args:
        port: The busy port on 127.0.0.1.
        option: The command-line option that picks another port.
    """
    server = background_server()
    if server is not None and server.port == port:
        return (f"port {port} on {LOCALHOST} is held by kerasflow's local Prefect server (the one `kerasflow run` "
                f"and `kerasflow serve` start, PREFECT_HOME={prefect_home()}): stop it with `kerasflow server stop` "
                f"(runs in progress report to it), or pass {option} {port + 1}")
    return f"port {port} on {LOCALHOST} is already in use: stop what runs there or pass {option}"


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
        Each deployment's `name` and `entrypoint`, whether the flow file
        exists (`available`) and whether it declares a schedule (`scheduled`).

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
        found.append({"name": item.get("name"), "entrypoint": entry, "available": entrypoint_exists(home, entry),
                      "scheduled": bool(item.get("schedules") or item.get("schedule"))})
    return found


def entrypoint_exists(home: Path, entrypoint: str) -> bool:
    """True when a deployment's flow file (`flows/train.py:train_flow`) is in `home`, or its module
    (`kerasflow.flows.train.train_flow`, as in a project of `kerasflow init`) is installed."""
    if ":" in entrypoint:
        return (Path(home) / entrypoint.rpartition(":")[0]).is_file()
    module = entrypoint.rpartition(".")[0]
    try:
        return bool(module) and importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


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
        self.deployed: list[str] = []  # the names deployed (namespaced by the project)
        self.scheduled: list[str] = []  # those with a schedule: resumed at start, paused by `stop`
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
        chosen = []
        for item in declared:
            if item["name"] not in wanted:
                continue
            if not item["available"]:
                self.echo(f"skipping deployment {item['name']!r}: {item['entrypoint']} does not exist yet")
                continue
            chosen.append(item)
        names = [self.deployed_name(item["name"]) for item in chosen]
        if names:
            source = self.deployment_file()
            self.echo(f"deploying {', '.join(names)} ...")
            if self.settings.project:
                source = namespaced_deployments(source or self.settings.home / "prefect.yaml",
                                                self.settings.state_dir / "deployments.yaml",
                                                self.settings.project, self.settings.pool)
            self.prefect("deploy", *(["--prefect-file", str(source)] if source else []),
                         *(arg for name in names for arg in ("--name", name)), timeout=300)
        self.deployed = names
        self.scheduled = [self.deployed_name(item["name"]) for item in chosen if item["scheduled"]]
        self.set_schedules(active=True)  # paused by the last `stop`
        return names

    def deployed_name(self, name: str) -> str:
        """The name a deployment of `prefect.yaml` is deployed under: `<project>-<name>`, or `name` without a project."""
        return f"{self.settings.project}-{name}" if self.settings.project else name

    def set_schedules(self, active: bool) -> list[str]:
        """Resumes (or pauses) the deployments with a schedule that this stack deployed, on its work pool.

        A paused deployment creates no scheduled runs, and pausing deletes
        those already scheduled (Prefect's `pause_deployment`).

        Returns:
            The names of the deployments changed.
        """
        return set_schedules(self.settings.api_url, self.scheduled, self.settings.pool, active,
                             self.credentials().get("PREFECT_API_AUTH_STRING"))

    def pause_schedules(self) -> None:
        """Pauses the schedules of the stack's deployments, if the Prefect server still answers (for `stop`)."""
        if not self.scheduled or self.server is None and "prefect-server" not in self.children:
            return
        try:
            paused = self.set_schedules(active=False)
        except Exception as exc:  # noqa: BLE001  (stopping goes on; the message says what to do)
            self.echo(f"warning: could not pause the schedules of {', '.join(self.scheduled)} ({exc}); pause "
                      "them in the Prefect UI, or they create runs while no worker serves them")
            return
        if paused:
            self.echo(f"paused the schedules of {', '.join(paused)} (the next `kerasflow serve` resumes them)")

    def deployment_file(self) -> Path | None:
        """The deployment file to deploy from: None for the project's `prefect.yaml`."""
        return None

    def credentials(self) -> dict[str, str]:
        """Login variables of the servers for `.kerasflow/env`: none here (the team stack's, with auth)."""
        return {}

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

        The child runs under `guard`, which leads the group and stops it when
        this process dies, even by SIGKILL.

        Args:
            name: The child's name (and its log's).
            cmd: The command.
            cwd: Its working directory. Default: the project folder.
            env: Its environment. Default: the stack's.
        """
        log = open(self.settings.logs / f"{name}.log", "ab")  # noqa: SIM115  (closed with the child)
        # under a guard, so that a `serve` killed with -9 takes its servers and worker with it
        proc = subprocess.Popen(guarded(cmd), cwd=cwd or self.settings.home, env=env or self.env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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

        First the schedules of its deployments are paused (`pause_schedules`).
        Each child's process group gets SIGTERM; a child still running after
        `timeout` seconds is killed, and so are stragglers of its group
        (server workers, flow-run subprocesses). Then the shared Prefect
        server is stopped if this stack started it; one already running stays up.
        """
        self._stopping.set()
        self.pause_schedules()  # while the Prefect server still runs
        for name in reversed(list(self.children)):
            proc = self.children.pop(name)
            stop_group(proc, timeout, stragglers_grace=False)  # the leader reaped last: no stranger's group is hit
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


def write_env_file(settings: StackSettings, credentials: dict[str, str] | None = None) -> Path:
    """Writes `.kerasflow/env` (mode 0600) with the exports a second shell needs to talk to the stack.

    It puts the environment's `bin` first on `PATH`, so `prefect deployment
    run ...` and `kerasflow ...` work after `source .kerasflow/env`.

    Args:
        settings: The stack settings.
        credentials: Login variables of the servers (the team stack's), exported too.
    """
    path = settings.state_dir / "env"
    logins = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in (credentials or {}).items())
    path.touch(mode=0o600)
    path.chmod(0o600)  # it may carry the servers' credentials
    path.write_text(logins + f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"\n"
                    f"export PREFECT_API_URL={settings.api_url}\n"
                    f"export MLFLOW_TRACKING_URI={settings.store}\n"
                    f"export KERASFLOW_MLFLOW_UI_URL={settings.mlflow_ui}\n"
                    f"export KERASFLOW_HOME={settings.home}\n")
    return path
