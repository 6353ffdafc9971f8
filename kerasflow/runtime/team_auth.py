"""Logins for the team stack: MLflow's basic-auth app and Prefect's API auth string.

`kerasflow serve --team --host ADDR` opens the servers to other hosts, and
then turns on both projects' own authentication:

- MLflow runs `mlflow server --app-name basic-auth`. Its configuration
  (`MLFLOW_AUTH_CONFIG_PATH`, a `basic_auth.ini` under `.kerasflow/team`)
  keeps the users in the `mlflow_auth` database of the team's PostgreSQL.
  The admin user `admin` gets a generated password on the first start
  (`MLFLOW_AUTH_ADMIN_PASSWORD`); other users are created through MLflow's
  REST API or `mlflow.server.get_app_client("basic-auth", ...)`.
- Prefect's server gets `PREFECT_SERVER_API_AUTH_STRING`, and every client
  (the worker, the CLI, flow runs) `PREFECT_API_AUTH_STRING`.

The generated secrets live in `.kerasflow/team/secrets` (mode 0600, JSON),
made once and reused by every start. They travel in environment variables,
never on a command line, and the `.kerasflow/env` file that hands them to a
second shell or another host is written mode 0600 too.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

ADMIN = "admin"
PREFECT_USER = "kerasflow"
SECRETS_FILE = "secrets"
AUTH_CONFIG = "basic_auth.ini"
AUTH_DATABASE = "mlflow_auth"
AUTH_CACHE_SECONDS = 60  # how long MLflow trusts a checked password (an MLflow without the setting ignores it)
# The variables that carry a secret: never printed, logged or recorded.
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING",
                    "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD")


@dataclass(frozen=True)
class TeamSecrets:
    """The team stack's generated secrets.

    Args:
        mlflow_password: The MLflow `admin` user's password.
        flask_key: The MLflow server's static secret key (CSRF protection of its sign-up form).
        prefect_auth: Prefect's API auth string, `kerasflow:<token>`.
    """

    mlflow_password: str
    flask_key: str
    prefect_auth: str

    @classmethod
    def load_or_create(cls, folder: Path) -> "TeamSecrets":
        """Reads `folder/secrets`, or generates the secrets into it (a new 0600 file) on the first start.

        Args:
            folder: The team's state folder (`.kerasflow/team`).

        Returns:
            The secrets.
        """
        path = Path(folder) / SECRETS_FILE
        if path.is_file():
            return cls(**json.loads(path.read_text()))
        made = cls(mlflow_password=secrets.token_urlsafe(18), flask_key=secrets.token_hex(32),
                   prefect_auth=f"{PREFECT_USER}:{secrets.token_urlsafe(24)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(asdict(made), indent=1))
        return made

    def client_environment(self) -> dict[str, str]:
        """What a worker or a `kerasflow`/`prefect`/`mlflow` client needs to log in to both servers."""
        return {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": self.mlflow_password,
                "PREFECT_API_AUTH_STRING": self.prefect_auth}

    def mlflow_server_environment(self, config: Path) -> dict[str, str]:
        """The MLflow server's: its auth configuration, the admin's first password, the Flask secret key."""
        return {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password, "MLFLOW_FLASK_SERVER_SECRET_KEY": self.flask_key}

    def prefect_server_environment(self) -> dict[str, str]:
        """The Prefect server's: the auth string it requires."""
        return {"PREFECT_SERVER_API_AUTH_STRING": self.prefect_auth}


def write_auth_config(path: Path, database_uri: str) -> Path:
    """Writes MLflow's basic-auth configuration (`basic_auth.ini`), with no secret in it.

    Args:
        path: The file to write.
        database_uri: Where MLflow keeps its users and permissions (a
            SQLAlchemy URL without a password: PostgreSQL's travels in `PGPASSWORD`).

    Returns:
        `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Written by `kerasflow serve --team`: MLflow's basic-auth app (docs/team.md).\n"
                    "# The admin's first password comes from MLFLOW_AUTH_ADMIN_PASSWORD (.kerasflow/team/secrets).\n"
                    "[mlflow]\n"
                    "default_permission = READ\n"
                    f"database_uri = {database_uri}\n"
                    f"admin_username = {ADMIN}\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    "# Each check of a password hashes it anew (PBKDF2, about 0.1-2 s of a core): a run asking\n"
                    "# for its metrics' histories would wait minutes. One server worker: no stale cache elsewhere.\n"
                    f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")
    return path


def write_private(path: Path, text: str) -> None:
    """Writes `text` into a new file only its owner can read (never readable by others in between)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
