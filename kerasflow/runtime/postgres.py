"""A PostgreSQL cluster of the project's own, run with PostgreSQL's `initdb` and `pg_ctl`.

`kerasflow serve --team` keeps the team's MLflow and Prefect databases in
one cluster whose data directory sits under the project's state folder
(`.kerasflow/team/postgres`). It listens on loopback only: the MLflow and
Prefect servers are its only clients, and workers talk to those servers.

- The binaries come from Debian's `postgresql` package
  (`/usr/lib/postgresql/<version>/bin`, newest first) or from `PATH`.
- The superuser `kerasflow` has a generated password, kept beside the data
  directory (mode 0600); clients get it through libpq's `PGPASSWORD`, so it
  appears in no command line.
- PostgreSQL refuses to run as root. Under root, the cluster runs as the
  `postgres` user of the package (`KERASFLOW_POSTGRES_USER`) through
  `runuser`, and the data directory belongs to that user.
- `pg_ctl start` runs the server detached, so it outlives a killed
  `kerasflow serve`; the next start finds it running and uses it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kerasflow.runtime.processes import LOCALHOST

SUPERUSER = "kerasflow"
OS_USER_ENV = "KERASFLOW_POSTGRES_USER"
INSTALL_HINT = "install Debian's `postgresql` package (apt-get install postgresql)"


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or a cluster command failed; the message says which and how to fix it."""


def find_binary(name: str) -> Path:
    """Finds a PostgreSQL server program.

    Args:
        name: The program, e.g. `initdb` or `pg_ctl`.

    Returns:
        Its path: from the newest `/usr/lib/postgresql/<version>/bin` (where
        Debian installs the server programs, off `PATH`), else from `PATH`.

    Raises:
        PostgresError: PostgreSQL is not installed.
    """
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in versions:
        if (folder / name).is_file():
            return folder / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise PostgresError(f"PostgreSQL's `{name}` was not found: {INSTALL_HINT}")


def cluster_user() -> str | None:
    """The OS user the cluster runs as: None for the current user, else `postgres` (or `KERASFLOW_POSTGRES_USER`) under root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(OS_USER_ENV, "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise PostgresError(f"PostgreSQL refuses to run as root, and there is no `{name}` user to run it as: "
                            f"{INSTALL_HINT} (it creates one) or set {OS_USER_ENV}") from None
    return name


@dataclass
class Postgres:
    """A PostgreSQL cluster in `folder`, listening on `127.0.0.1:port`.

    Args:
        folder: Holds `data/` (the data directory), `server.log` and `password`.
        port: TCP port on 127.0.0.1. Default 5433 (5432 is often a system cluster's).

    Example:

    ```python
    cluster = Postgres(Path(".kerasflow/team/postgres"), port=5433)
    cluster.start()                      # initdb on first use, then pg_ctl start
    cluster.create_database("mlflow")
    url = cluster.url("mlflow")          # postgresql+psycopg2://kerasflow@127.0.0.1:5433/mlflow
    cluster.stop()
    ```
    """

    folder: Path
    port: int = 5433

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).resolve()
        self.user = cluster_user()

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.folder / "data"

    @property
    def log(self) -> Path:
        """The server log."""
        return self.folder / "server.log"

    @property
    def password(self) -> str:
        """The superuser's password (created with the cluster)."""
        return (self.folder / "password").read_text().strip()

    def environment(self) -> dict[str, str]:
        """libpq variables for a client of this cluster: `PGPASSWORD` (asyncpg and psycopg2 read it)."""
        return {"PGPASSWORD": self.password}

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL of `database`, without the password (it travels in `PGPASSWORD`).

        Args:
            database: The database name.
            driver: The URL scheme. Default `postgresql+psycopg2`; Prefect
                needs `postgresql+asyncpg`.
        """
        return f"{driver}://{SUPERUSER}@{LOCALHOST}:{self.port}/{database}"

    def initialized(self) -> bool:
        """Returns True when the data directory holds a cluster."""
        return (self.data / "PG_VERSION").is_file()

    def initialize(self) -> None:
        """Creates the cluster with `initdb`: UTF-8, password (SCRAM) login over TCP, a generated password."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.user is None:
            self.folder.chmod(0o700)  # the data directory and the password are this user's alone
        self.data.mkdir(exist_ok=True)
        password = secrets.token_urlsafe(24)
        _write_private(self.folder / "password", password)
        pwfile = self.folder / "initdb.pw"  # the server's user must read it; removed at once
        _write_private(pwfile, password)
        try:
            self._own(self.folder, self.data, pwfile)
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}", "-E", "UTF8",
                      "--locale=C.UTF-8", "--auth-local=trust" if self.user is None else "--auth-local=peer",
                      "--auth-host=scram-sha-256", "--no-instructions", timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        """Returns True when `pg_ctl status` finds the cluster's server running."""
        return self.initialized() and self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self) -> bool:
        """Initializes the cluster if needed and starts its server, waiting until it accepts connections.

        Returns:
            True if it was started now, False if it was already running.

        Raises:
            PostgresError: PostgreSQL is missing, or the server did not start
                (the last lines of its log are included).
        """
        if not self.initialized():
            self.initialize()
        if self.running():
            self.port = self.running_port() or self.port  # started earlier, perhaps on another port
            return False
        # TCP only: every client connects to 127.0.0.1, and a socket path could exceed the OS's 107 bytes
        options = f"-p {self.port} -h {LOCALHOST} -c unix_socket_directories=''"
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options,
                  timeout=90, quote_log=True)
        return True

    def alive(self) -> bool:
        """Returns True while the server process named in `postmaster.pid` exists (no subprocess: cheap to poll)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, IndexError, ValueError):
            return False
        return True

    def running_port(self) -> int | None:
        """The port the running server listens on, from its `postmaster.pid` (its fourth line), if it can be read."""
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def stop(self) -> None:
        """Stops the server (fast shutdown: open sessions are rolled back); a stopped cluster is left as is."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", timeout=90)

    def create_database(self, name: str) -> bool:
        """Creates a database unless it exists.

        Returns:
            True if it was created now.
        """
        try:
            proc = subprocess.run([str(find_binary("createdb")), "-h", LOCALHOST, "-p", str(self.port), "-U",
                                   SUPERUSER, "-w", name], env={**os.environ, **self.environment()},
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"cannot create database {name!r}: {exc}") from None
        if proc.returncode == 0:
            return True
        if "already exists" in proc.stderr:
            return False
        raise PostgresError(f"cannot create database {name!r}: {proc.stderr.strip()}")

    def _own(self, *paths: Path) -> None:
        """Gives `paths` to the cluster's OS user, and checks that user can reach them."""
        if self.user is None:
            return
        for path in paths:
            shutil.chown(path, self.user)
        probe = subprocess.run(["runuser", "-u", self.user, "--", "test", "-w", str(self.folder)], capture_output=True)
        if probe.returncode != 0:
            raise PostgresError(f"the `{self.user}` user that runs PostgreSQL cannot reach {self.folder}: a folder "
                                "above it is closed to other users; choose a state folder it can reach "
                                "(--state-dir) or open the folders above it (chmod o+x)")

    def _run(self, program: str, *args: str, check: bool = True, timeout: float = 60,
             quote_log: bool = False) -> subprocess.CompletedProcess:
        cmd = [str(find_binary(program)), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        try:
            proc = subprocess.run(cmd, cwd=self.folder, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"`{program} {args[0]}` did not complete: {exc}; see {self.log}") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            if quote_log and self.log.is_file():
                detail += "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise PostgresError(f"`{program} {args[0]}` failed ({proc.returncode}): {detail}")
        return proc


def _write_private(path: Path, text: str) -> None:
    """Writes a secret into a new file that only its owner can read (never readable in between)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(text + "\n")
