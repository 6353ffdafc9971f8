"""The team stack: MLflow and Prefect servers on PostgreSQL, and deployments that pull the code from git.

`kerasflow serve --team` runs, as `kerasflow serve` does but for several people:

- a PostgreSQL cluster under the state folder (`.kerasflow/team/postgres`,
  `kerasflow.runtime.postgres`) with the `mlflow` and `prefect` databases;
- `mlflow server` on the `mlflow` database with proxied artifacts
  (`--serve-artifacts`, stored in `.kerasflow/team/artifacts`): clients need
  only the server's address, never the artifact store;
- `prefect server start` on the `prefect` database
  (`PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://...`);
- the `kerasflow-team` process work pool, and the deployments of
  `prefect.yaml` with their pull steps replaced by a `git_clone` of the
  project's repository and `enter_project` into the clone: a worker in any
  folder, on any host that reaches the servers, runs the committed code;
- one process worker in a folder of its own (`.kerasflow/team/worker`).

The servers and the worker are children of the stack and stop with it.
PostgreSQL runs detached (`pg_ctl`): it is stopped too if this stack
started it, and a running cluster is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import yaml

from kerasflow.progress import status
from kerasflow.runtime.postgres import Postgres, PostgresError
from kerasflow.runtime.processes import LOCALHOST, wait_healthy
from kerasflow.runtime.stack import Stack, StackError, StackSettings, require_free_ports
from kerasflow.runtime.team_auth import AUTH_CONFIG, AUTH_DATABASE, TeamSecrets, write_auth_config, write_private

TEAM_POOL = "kerasflow-team"
DATABASES = ("mlflow", "prefect", AUTH_DATABASE)


@dataclass
class TeamSettings(StackSettings):
    """Where and how the team stack runs (the fields of `StackSettings`, and these).

    Args:
        pool: The work pool. Default `kerasflow-team`.
        host: The address the MLflow and Prefect servers listen on. Default
            127.0.0.1; `0.0.0.0` lets workers on other hosts reach them.
        advertise: The name workers on other hosts use for this machine.
            Default: `host`, or, when it listens on every interface, this
            machine's name for other hosts (`reachable_name`).
        postgres_port: PostgreSQL's port on 127.0.0.1. Default 5433.
        repository: The git repository the deployments clone. Default: the
            project's `origin` remote, else the project's own repository.
        branch: The branch they clone. Default: the project's current
            branch (the current commit when it is detached).
        worker_dir: The local worker's folder. Default `state_dir/team/worker`.
        auth: Whether the servers require a login (MLflow's basic-auth app,
            Prefect's API auth string; `kerasflow.runtime.team_auth`).
            Default: on whenever `host` is not 127.0.0.1.

    The stack's own children (the local worker, health checks) reach the
    servers on loopback when they listen on every interface; `public_*`
    addresses are the ones printed for other hosts.
    """

    pool: str = TEAM_POOL
    host: str = LOCALHOST
    advertise: str | None = None
    postgres_port: int = 5433
    repository: str | None = None
    branch: str | None = None
    worker_dir: Path | None = None
    auth: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.prefect_port = self.prefect_port or 4200
        self.worker_dir = Path(self.worker_dir).resolve() if self.worker_dir else self.team / "worker"
        everywhere = self.host in ("0.0.0.0", "::")
        self.advertise = self.advertise or (reachable_name() if everywhere else self.host)
        self.local = LOCALHOST if everywhere else self.host
        self.auth = self.host != LOCALHOST if self.auth is None else self.auth

    @property
    def reachable_from_elsewhere(self) -> bool:
        """False when the servers listen on loopback only (no other host reaches them)."""
        return not self.host.startswith("127.") and self.host not in ("localhost", "::1")

    @property
    def team(self) -> Path:
        """The team stack's state: PostgreSQL, artifacts, the deployment file, the worker's folder."""
        return self.state_dir / "team"

    @property
    def public_api_url(self) -> str:
        """The Prefect API for workers on other hosts."""
        return f"http://{self.advertise}:{self.prefect_port}/api"

    @property
    def public_store(self) -> str:
        """The MLflow server for workers on other hosts."""
        return f"http://{self.advertise}:{self.mlflow_port}"

    @property
    def store(self) -> str:
        """The tracking URI of the flows: the MLflow server (PostgreSQL behind it)."""
        return self.mlflow_ui

    @property
    def artifacts(self) -> Path:
        return self.team / "artifacts"


def reachable_name() -> str:
    """This machine's name for other hosts: its full name, else the address of its default route.

    `socket.getfqdn()` is `localhost` on many machines (a hosts file that
    maps the host name to 127.0.1.1 or loopback): a name that resolves to
    loopback is passed over for the address this machine sends from on its
    default route (a UDP socket's `connect` sends nothing).

    Returns:
        A name or address; the host name when nothing better is known.
    """
    name = socket.getfqdn()
    try:
        if not socket.gethostbyname(name).startswith("127."):
            return name
    except OSError:
        pass
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
        address = probe.getsockname()[0]
        if not address.startswith(("127.", "0.")):
            return address
    return socket.gethostname()


def allowed_hosts(address: str, port: int) -> str:
    """The Host headers the MLflow server accepts: the advertised name, loopback and private networks.

    Args:
        address: The name workers on other hosts use (`TeamSettings.advertise`).
        port: The MLflow server's port.

    Returns:
        A value for `mlflow server --allowed-hosts`.
    """
    names = [address, socket.gethostname(), "localhost", LOCALHOST, "10.*", "172.*", "192.168.*"]
    return ",".join(item for name in dict.fromkeys(names) for item in (name, f"{name}:{port}")
                    if "*" not in name or item == name)


def run_git(home: Path, *args: str, timeout: float = 30) -> str:
    """Runs git in `home` without prompting; returns its output, or "" when it fails."""
    try:
        proc = subprocess.run(["git", "-C", str(home), *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def without_credentials(url: str) -> str:
    """A repository URL without a user's password or token (`https://user:TOKEN@host/x` -> `https://host/x`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def git_source(home: Path, repository: str | None = None, branch: str | None = None) -> dict[str, str]:
    """Chooses what the deployments clone.

    Args:
        home: The project folder (a git work tree).
        repository: Default: the `origin` remote's URL (a relative one
            resolved against the project), else `home`'s own repository.
            Credentials in an http(s) URL are left out: deployments are
            readable by everyone who reaches the Prefect server.
        branch: Default: the current branch; when detached, the current commit.

    Returns:
        The arguments of Prefect's `git_clone` step: `repository`, and
        `branch` or `commit_sha`.

    Raises:
        StackError: `home` is not a git work tree.
    """
    top = run_git(home, "rev-parse", "--show-toplevel")
    if not top:
        raise StackError(f"{home} is not a git clone (git finds no repository there), and the team's workers "
                         "clone the project's code from git: run `kerasflow serve --team` from a clone of the "
                         "project, or make this folder one (`git init && git add -A && git commit -m start`, then "
                         "`git remote add origin URL && git push -u origin HEAD` with a URL the workers reach)")
    url = repository or run_git(home, "remote", "get-url", "origin") or f"file://{Path(top).resolve()}"
    if url.startswith(".") or (not url.startswith("/") and (Path(top) / url).exists()):
        url = f"file://{(Path(top) / url).resolve()}"  # a relative remote means nothing in a worker's folder
    source = {"repository": without_credentials(url)}
    branch = branch or run_git(home, "branch", "--show-current")
    if branch:
        source["branch"] = branch
    else:
        source["commit_sha"] = run_git(home, "rev-parse", "HEAD")
    return source


def source_notes(home: Path, source: dict[str, str]) -> list[str]:
    """Says what a worker cloning `source` will not see, in plain lines.

    Args:
        home: The project folder.
        source: The `git_clone` arguments (`git_source`).

    Returns:
        Lines about: uncommitted changes in `home`; a branch missing from
        the repository or behind this checkout; credentials left out of the
        URL; a repository that is a folder of this machine.
    """
    notes = []
    changed = len(run_git(home, "status", "--porcelain", "--untracked-files=no").splitlines())
    if changed:
        notes.append(f"note: {changed} file(s) with uncommitted changes in {home} are not in the deployments: "
                     "workers run what is committed and pushed")
    repository, branch = source["repository"], source.get("branch")
    if branch:
        remote = run_git(home, "ls-remote", "--heads", repository, branch, timeout=20).split()
        head = run_git(home, "rev-parse", "HEAD")
        if not remote:
            notes.append(f"warning: branch {branch!r} is not in {repository} (or it cannot be read from here): "
                         "push it, or the flow runs fail at their git_clone step")
        elif remote[0] != head:
            notes.append(f"note: {repository} has {branch} at {remote[0][:8]}, this checkout is at {head[:8]}: "
                         "workers run the repository's commit; push to run this one")
    origin = run_git(home, "remote", "get-url", "origin")
    if origin and without_credentials(origin) != origin:
        notes.append("note: the credentials in the origin URL are left out of the deployments (the Prefect UI "
                     "shows them to everyone): give workers their own git credentials, or a Prefect "
                     "credentials block (git_clone's `credentials`)")
    if repository.startswith(("file://", "/")):
        why = "" if origin else " (this clone has no origin remote)"
        notes.append(f"note: the deployments clone {repository}, a folder of this machine{why}: workers on other "
                     "hosts need a URL they reach: `git remote add origin URL && git push -u origin HEAD`, "
                     "or pass --repository URL")
    return notes


def write_team_deployments(settings: TeamSettings, source: dict[str, str]) -> Path:
    """Writes the team's deployment file: `prefect.yaml` with git pull steps and the team's work pool.

    Args:
        settings: The team settings.
        source: The `git_clone` arguments (`git_source`).

    Returns:
        The path of the file (`state_dir/team/prefect.yaml`).
    """
    project = yaml.safe_load((settings.home / "prefect.yaml").read_text()) or {}
    inside = run_git(settings.home, "rev-parse", "--show-prefix").rstrip("/")  # a project in a subfolder
    project["pull"] = [
        {"prefect.deployments.steps.git_clone": {"id": "clone", **source}},
        {"kerasflow.runtime.pull_steps.enter_project": {"directory": "/".join(["{{ clone.directory }}", *filter(None,
                                                                                                    [inside])])}},
    ]
    for deployment in project.get("deployments") or []:
        deployment["work_pool"] = {**(deployment.get("work_pool") or {}), "name": settings.pool}
    path = settings.team / "prefect.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `kerasflow serve --team` from prefect.yaml: the code comes from git.\n"
                    + yaml.safe_dump(project, sort_keys=False))
    return path


def write_worker_env(settings: TeamSettings, credentials: dict[str, str]) -> Path:
    """Writes `state_dir/team/worker.env` (mode 0600): what a worker on another host sources.

    Args:
        settings: The team settings (the advertised addresses).
        credentials: The servers' logins (`TeamStack.credentials`).

    Returns:
        The file's path.
    """
    exports = {"PREFECT_API_URL": settings.public_api_url, "MLFLOW_TRACKING_URI": settings.public_store,
               "KERASFLOW_MLFLOW_UI_URL": settings.public_store, **credentials}
    path = settings.team / "worker.env"
    write_private(path, "# A worker on another host: source this file, then `prefect worker start --pool "
                  f"{settings.pool}` (docs/team.md)\n"
                  + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in exports.items()))
    return path


class TeamStack(Stack):
    """The running team stack (`kerasflow serve --team`).

    Args:
        settings: The team settings.
        echo: Receives progress lines. Default: print.
    """

    settings: TeamSettings

    def __init__(self, settings: TeamSettings, echo: Callable[[str], None] = print):
        super().__init__(settings, echo)
        self.postgres = Postgres(settings.team / "postgres", settings.postgres_port)
        self.postgres_started = False
        self.source: dict[str, str] = {}
        self.secrets: TeamSecrets | None = None
        self.worker_env_file: Path | None = None

    def start(self) -> None:
        """Starts PostgreSQL, the MLflow and Prefect servers, the work pool, the deployments and a worker.

        Raises:
            StackError: A part failed; what started is left for `stop`.
        """
        s = self.settings
        self.source = git_source(s.home, s.repository, s.branch)
        self._check_ports()
        for folder in (s.logs, s.artifacts, s.worker_dir):
            folder.mkdir(parents=True, exist_ok=True)
        running_before = self.postgres.running()
        if s.auth:
            self.secrets = TeamSecrets.load_or_create(s.team)
            self.env.update(self.secrets.client_environment())  # the stack's own CLI calls and its worker
        try:
            with status("starting PostgreSQL"):
                self.postgres_started = self.postgres.start()
                s.postgres_port = self.postgres.port  # a cluster already running keeps its port
                for name in DATABASES:
                    self.postgres.create_database(name)
        except PostgresError as exc:
            self.postgres_started = not running_before  # a start that failed late may have left it running
            raise StackError(str(exc)) from None
        self.start_child("mlflow-server", self.mlflow_command(), env=self._mlflow_server_env())
        self.start_child("prefect-server", [*self._prefect, "server", "start", "--host", s.host,
                                            "--port", str(s.prefect_port), "--analytics-off"],
                         cwd=s.team, env=self._prefect_server_env())
        with status("waiting for the Prefect server to answer"):
            wait_healthy(f"{s.api_url}/health", self.children["prefect-server"].poll, s.logs / "prefect-server.log",
                         timeout=180, error=StackError)
        self.ensure_work_pool()
        self.deploy()
        self.start_child("worker", [*self._prefect, "worker", "start", "--pool", s.pool, "--type", "process",
                                    "--name", f"kerasflow-team-{socket.gethostname()}", "--install-policy", "never"],
                         cwd=s.worker_dir, env=self.worker_environment())
        with status("waiting for the MLflow server to answer"):
            wait_healthy(f"{s.mlflow_ui}/health", self.children["mlflow-server"].poll, s.logs / "mlflow-server.log",
                         timeout=180, error=StackError)
        self.worker_env_file = write_worker_env(s, self.credentials())

    def deployment_file(self) -> Path:
        """The team deployment file, written from `prefect.yaml` with git pull steps."""
        return write_team_deployments(self.settings, self.source)

    def worker_environment(self) -> dict[str, str]:
        """A worker's environment: the servers' addresses, and `KERASFLOW_HOME` at its own folder (its resume state)."""
        s = self.settings
        return {**self.env, "KERASFLOW_HOME": str(s.worker_dir), "PREFECT_HOME": str(s.worker_dir / ".prefect")}

    def stopped_part(self) -> str | None:
        """As `Stack.stopped_part`, PostgreSQL included (its server process, from `postmaster.pid`)."""
        return super().stopped_part() or (None if self.postgres.alive() else "PostgreSQL")

    def stop(self, timeout: float = 20.0) -> None:
        """Stops the worker and the servers, then PostgreSQL if this stack started it."""
        super().stop(timeout)
        if self.postgres_started:
            self.postgres_started = False
            try:
                self.postgres.stop()
            except PostgresError as exc:
                self.echo(f"warning: {exc}")

    def _check_ports(self) -> None:
        s = self.settings
        busy = [(s.prefect_port, "--prefect-port"), (s.mlflow_port, "--mlflow-port")]
        if not self.postgres.running():
            busy.append((s.postgres_port, "--postgres-port"))
        require_free_ports(busy)

    def mlflow_command(self) -> list[str]:
        """The `mlflow server` command: PostgreSQL behind it, proxied artifacts, Host names it accepts."""
        s = self.settings
        command = [sys.executable, "-m", "mlflow", "server", "--host", s.host, "--port", str(s.mlflow_port),
                   "--backend-store-uri", self.postgres.url("mlflow"), "--serve-artifacts",
                   "--artifacts-destination", str(s.artifacts), "--workers", "1"]
        if s.auth:
            command += ["--app-name", "basic-auth"]
        if s.host != LOCALHOST:  # MLflow answers 403 to a Host header it does not know (DNS-rebinding guard)
            command += ["--allowed-hosts", allowed_hosts(s.advertise, s.mlflow_port)]
        return command

    def credentials(self) -> dict[str, str]:
        """The variables a client needs to log in to the servers ({} without auth), for `.kerasflow/env`."""
        return self.secrets.client_environment() if self.secrets else {}

    def _mlflow_server_env(self) -> dict[str, str]:
        env = {**self.env, **self.postgres.environment()}
        if self.secrets:
            config = write_auth_config(self.settings.team / AUTH_CONFIG, self.postgres.url(AUTH_DATABASE))
            env.update(self.secrets.mlflow_server_environment(config))
        return env

    def _prefect_server_env(self) -> dict[str, Any]:
        s = self.settings
        return {**self.env, **self.postgres.environment(),
                **(self.secrets.prefect_server_environment() if self.secrets else {}),
                "PREFECT_HOME": str(s.team / "prefect"),
                "PREFECT_API_DATABASE_CONNECTION_URL": self.postgres.url("prefect", "postgresql+asyncpg"),
                "PREFECT_UI_API_URL": s.public_api_url,  # the UI's browser may be on another host
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
