"""Is the tracking store there? A check made before a pipeline command starts any work.

A tracking URI that points at a closed port otherwise costs MLflow's full
HTTP retry schedule on the first call, minutes into the command; this
answers in seconds, with what to check.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from kerasflow.secrets import credentials, mask

CHECK_SECONDS = 10.0  # the whole check, retries included, stays under this


class StoreUnreachable(Exception):
    """The tracking (and registry) store cannot be used; the message says what to check."""


def check_store(uri: str, timeout: float = CHECK_SECONDS) -> None:
    """Checks that the MLflow store at `uri` answers (http/https) or can be written (sqlite, file).

    An HTTP store is asked for `<uri>/health` until it answers 200 or
    `timeout` seconds pass; a SQLite or file store needs a folder that exists
    or can be made, and that this user can write to. Other schemes
    (databases, Databricks) are not checked here.

    Args:
        uri: The tracking URI, which kerasflow also uses as the registry URI.
        timeout: Seconds the whole check may take. Default 10.

    Raises:
        StoreUnreachable: One paragraph: the URI (its password masked), the error, and what to check.
    """
    shown = mask(uri)
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        error = _http_error(uri, timeout)
        if error:
            raise StoreUnreachable(
                f"the MLflow tracking server at {shown} does not answer ({mask(error)}). kerasflow uses it as the "
                f"tracking and model-registry store. Check that `mlflow server` is running there and reachable "
                f"from this machine, or point MLFLOW_TRACKING_URI (or registry.tracking_uri in the config) at "
                f"the right server, or unset both to use the local store mlruns/mlflow.db.")
    elif scheme in ("sqlite", "file", ""):
        error = _path_error(_store_path(uri, scheme))
        if error:
            raise StoreUnreachable(
                f"the MLflow store {shown} cannot be written ({mask(error)}). kerasflow uses it as the tracking and "
                f"model-registry store. Check the folder exists or can be created and is writable, or point "
                f"MLFLOW_TRACKING_URI (or registry.tracking_uri in the config) at another store.")


def _http_error(uri: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    bare, user = credentials(uri)
    url = bare.rstrip("/") + "/health"
    request = urllib.request.Request(url)
    if user is not None:  # urllib does not read a password from the address itself
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(user).encode()).decode())
    error = "no answer"
    while True:
        left = deadline - time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=max(1.0, min(5.0, left))) as response:
                if response.status == 200:
                    return None
                error = f"GET {url} answered {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"GET {url} answered {exc.code} {exc.reason}"
            if exc.code < 500:  # a server, but not an MLflow one; waiting will not help
                return error
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            error = f"GET {url}: {reason}"
        if time.monotonic() + 2.0 >= deadline:
            return error
        time.sleep(2.0)


def _store_path(uri: str, scheme: str) -> Path:
    if scheme == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        return Path(path).parent if path and path != ":memory:" else Path(".")
    if scheme == "file":
        return Path(urllib.parse.urlparse(uri).path)
    return Path(uri)


def _path_error(folder: Path) -> str | None:
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None
