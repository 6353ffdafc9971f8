"""The local Prefect server kerasflow commands report to: shared, temporary, or configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kerasflow.runtime.prefect_server import _alive

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def _cli(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def _state(home: Path) -> dict | None:
    path = home / "kerasflow-server" / "server.json"
    return json.loads(path.read_text()) if path.exists() else None


def _flow_runs(url: str) -> list[dict]:
    request = urllib.request.Request(f"{url}/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_pipeline_starts_the_shared_server_and_later_commands_reuse_it(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", MLFLOW_TRACKING_URI=mlflow_store)
    try:
        first = _cli(env, "run", "configs/iris.yaml", "--set", "training.epochs=2")
        assert first.returncode == 0, first.stderr
        state = _state(tmp_path / "prefect")
        assert state is not None and _alive(state["pid"])
        assert f"started a local Prefect server at {state['url'].removesuffix('/api')}" in first.stderr
        assert f"flow runs:   {state['url'].removesuffix('/api')}/runs" in first.stdout
        assert "Traceback" not in first.stdout + first.stderr

        again = _cli(env, "server", "start")
        assert again.returncode == 0 and "already running" in again.stdout
        assert _state(tmp_path / "prefect")["pid"] == state["pid"]
        runs = _flow_runs(state["url"])
        assert [run["state_type"] for run in runs] == ["COMPLETED"], "the run is recorded on the shared server"

        status = _cli(env, "server", "status")
        assert state["url"].removesuffix("/api") in status.stdout
    finally:
        stopped = _cli(env, "server", "stop")
    assert "stopped the shared local Prefect server" in stopped.stdout
    assert not _alive(state["pid"]) and _state(tmp_path / "prefect") is None
    assert "no shared local Prefect server is running" in _cli(env, "server", "status").stdout


@pytest.mark.slow
def test_shared_server_stops_itself_when_idle(tmp_path: Path) -> None:
    env = _env(tmp_path / "prefect", KERASFLOW_PREFECT_SERVER_IDLE_MINUTES="0.05")
    started = _cli(env, "server", "start")
    assert started.returncode == 0, started.stderr
    pid = _state(tmp_path / "prefect")["pid"]
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(pid), "an idle shared server stops by itself"
    assert _state(tmp_path / "prefect") is None


def test_temporary_mode_leaves_no_server_behind(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_PREFECT_SERVER="temporary")
    proc = _cli(env, "validate", "configs/iris.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "data passed" in proc.stdout
    assert _state(tmp_path / "prefect") is None
    assert not list((tmp_path / "prefect" / "kerasflow-server").glob("temporary-*.log"))


def test_unknown_server_mode_names_the_allowed_ones(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_PREFECT_SERVER="cloudy")
    proc = _cli(env, "validate", "configs/iris.yaml")
    assert proc.returncode == 1
    assert "KERASFLOW_PREFECT_SERVER='cloudy' is not one of shared, temporary" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("value", "expected"), [("", True), ("1", True), ("on", True), ("0", False), ("off", False)])
def test_low_memory_switch(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    from kerasflow.runtime.warmup import low_memory

    monkeypatch.setenv("KERASFLOW_LOW_MEMORY", value)
    assert low_memory() is expected


def test_bad_low_memory_value_is_bad_input(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_LOW_MEMORY="maybe")
    proc = _cli(env, "run", "configs/iris.yaml")
    assert proc.returncode == 2 and "KERASFLOW_LOW_MEMORY='maybe'" in proc.stderr
