"""Shared fixtures: a temporary SQLite MLflow store and a Prefect test harness.

Both are real: MLflow writes to a SQLite file under a temporary folder, and
Prefect runs flows against its test harness's temporary server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kerasflow.heavy import import_tensorflow
from kerasflow.quiet import silence

ROOT = Path(__file__).resolve().parents[1]
silence()
# CLI subprocesses start the shared local Prefect server in a PREFECT_HOME of this session, not ~/.prefect,
# on a free port, not 4200; it is stopped when the session ends (see `_stop_shared_server`).
SESSION_PREFECT_HOME = tempfile.mkdtemp(prefix="kerasflow-test-prefect-")
os.environ["PREFECT_HOME"] = SESSION_PREFECT_HOME
# Step caching off, so that every test computes what it checks; tests/test_caching.py turns it on.
os.environ["KERASFLOW_CACHE_DAYS"] = "0"
# Checkpoints, finished folds and cached steps of this session in a folder of its own, so that a
# developer's earlier session (or `kerasflow run` in the clone) is never resumed by a test.
os.environ["KERASFLOW_HOME"] = tempfile.mkdtemp(prefix="kerasflow-test-home-")


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_server():
    """Gives the session's shared Prefect server a free port; stops it at the end of the session."""
    from kerasflow.runtime.processes import free_port

    os.environ["KERASFLOW_PREFECT_PORT"] = str(free_port())  # never a developer's server on 4200
    yield
    env = {**os.environ, "PREFECT_HOME": SESSION_PREFECT_HOME}
    subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Points MLflow at a fresh SQLite store for the whole session."""
    store = tmp_path_factory.mktemp("mlruns")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


@pytest.fixture(scope="session")
def prefect_harness(mlflow_store: str):
    """Runs flows against Prefect's test harness (one temporary server per session)."""
    from prefect.testing.utilities import prefect_test_harness

    import_tensorflow()
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs every test from the project root, where config paths are relative to."""
    monkeypatch.chdir(ROOT)
