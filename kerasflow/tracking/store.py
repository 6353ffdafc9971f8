"""Where runs are kept: the tracking store's URI, its lock file, artifact locations and UI addresses.

Also tells when the store stopped answering (`unreachable`, `TrackingUnavailable`).
The client (`configure`, `client_for`) is in `kerasflow.tracking.client`.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from kerasflow.secrets import mask

DEFAULT_STORE = Path("mlruns")


class TrackingUnavailable(Exception):
    """The tracking store stopped answering during a run, after MLflow's bounded retries."""


def tracking_uri(configured: str | None = None) -> str:
    """Resolves the tracking URI: config, then `MLFLOW_TRACKING_URI`, then the local store.

    Args:
        configured: `registry.tracking_uri` from the config, if any.

    Returns:
        The URI to use; the local default is `sqlite:///mlruns/mlflow.db`.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    DEFAULT_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, or None for another store (or an in-memory database)."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    return Path(urllib.parse.unquote(uri.removeprefix("sqlite:///")).split("?")[0])


def artifact_location(uri: str, name: str) -> str | None:
    """Where a new experiment `name` keeps its artifacts: under `MLFLOW_DEFAULT_ARTIFACT_ROOT`, or beside a SQLite store.

    Returns:
        The location, or None for the store's own default.
    """
    root = os.environ.get("MLFLOW_DEFAULT_ARTIFACT_ROOT")
    if root:
        return f"{root.rstrip('/')}/{name}"
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / name).resolve().as_uri()
    return None


def ui_url(uri: str | None = None) -> str:
    """The MLflow UI address for a tracking URI.

    An `http(s)` tracking server is its own UI (its password masked). A local store is shown by
    `kerasflow ui` or `kerasflow serve`: `KERASFLOW_MLFLOW_UI_URL` (which
    `kerasflow serve` sets) else `http://127.0.0.1:5000`.
    """
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return mask(uri.rstrip("/"))
    return os.environ.get("KERASFLOW_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def run_url(experiment_id: str, run_id: str, uri: str | None = None) -> str:
    """The MLflow UI page of a run."""
    return f"{ui_url(uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def unreachable(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the tracking store did not answer.

    MLflow raises an `MlflowException` "API request to ... failed with
    exception ..." once its HTTP retries are spent; under it lies a
    `requests` connection error or timeout.
    """
    import requests

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (TrackingUnavailable, requests.ConnectionError, requests.Timeout)):
            return True
        text = str(exc)
        if "API request to" in text and ("Max retries exceeded" in text or "timed out" in text.lower()
                                          or "Connection" in text):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
