"""The local Prefect server kerasflow commands report to: Prefect's own background server, or a temporary one.

Every test has its own PREFECT_HOME and a free port, so it never meets the
session's server or a developer's on 4200.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import mlflow
import pytest

from kerasflow.runtime.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), "KERASFLOW_PREFECT_PORT": str(port), **extra}
    env.pop("PREFECT_API_URL", None)
    return env


def _cli(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def _api(url: str, body: dict | None = None) -> Any:
    """Calls Prefect's REST API: GET, or POST with a JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _processes_of(home: Path) -> list[int]:
    """Live processes whose environment has this PREFECT_HOME: what a command left running."""
    mark = f"PREFECT_HOME={home}\0".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_pipeline_starts_the_shared_server_and_later_commands_reuse_it(tmp_path: Path, mlflow_store: str) -> None:
    home, port = tmp_path / "prefect", free_port()
    env = _env(home, port, MLFLOW_TRACKING_URI=mlflow_store)
    url = f"http://127.0.0.1:{port}"
    home.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (home / "server.pid").write_text(str(gone.pid))  # left by a background server that died
    pid = None
    try:
        first = _cli(env, "run", "configs/iris.yaml", "--set", "training.epochs=1")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert f"started a local Prefect server at {url}" in first.stderr
        assert re.search(rf"Prefect UI:  {url}/runs/flow-run/[0-9a-f-]{{36}}", first.stdout), first.stdout
        assert "MLflow UI:   http://127.0.0.1:5000/#/experiments/" in first.stdout
        assert "Traceback" not in first.stdout + first.stderr
        pid = int((home / "server.pid").read_text())
        assert pid != gone.pid, "Prefect's background server replaced the stale pid file"

        (flow_run,) = _api(f"{url}/api/flow_runs/filter", {})
        assert flow_run["state_type"] == "COMPLETED"
        assert _api(f"{url}/api/flows/{flow_run['flow_id']}")["name"] == "train"
        run_id = re.search(r"MLflow run:\s+([0-9a-f]{32})", first.stdout).group(1)
        assert mlflow.MlflowClient(mlflow_store).get_run(run_id).data.tags["prefect.flow_run_id"] == flow_run["id"]

        again = _cli(env, "server", "start")
        assert again.returncode == 0 and f"already running: {url}  (pid {pid})" in again.stdout
        status = _cli(env, "server", "status")
        assert f"shared local Prefect server: {url}  (healthy; pid {pid}," in status.stdout

        second = _cli(env, "validate", "configs/iris.yaml")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "started a local Prefect server" not in second.stderr
        assert len(_api(f"{url}/api/flow_runs/filter", {})) == 2, "the second command reported to the same server"

        # the team stack after a `run`: the port is named as held by kerasflow's own server, with what to do
        team = _cli(env, "serve", "--team", "--prefect-port", str(port), "--mlflow-port", str(free_port()),
                    "--postgres-port", str(free_port()), timeout=180)
        assert team.returncode == 1 and f"port {port} on 127.0.0.1 is held by kerasflow's local Prefect server" \
            in team.stderr and "kerasflow server stop" in team.stderr, team.stderr
        assert "stopped unexpectedly" not in team.stderr and "Traceback" not in team.stderr
    finally:
        stopped = _cli(env, "server", "stop")
    assert f"stopped the shared local Prefect server {url} (pid {pid})" in stopped.stdout
    assert not (home / "server.pid").exists() and not _processes_of(home) and not _answers(port)
    assert "no shared local Prefect server is running" in _cli(env, "server", "status").stdout
    assert "no shared local Prefect server was running" in _cli(env, "server", "stop").stdout


def test_a_busy_port_is_reported_with_the_log(tmp_path: Path) -> None:
    home = tmp_path / "prefect"
    with socket.socket() as busy:  # listens but never answers
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _cli(_env(home, port), "server", "start", timeout=180)
    assert proc.returncode == 1
    assert f"Port {port} is already in use" in proc.stderr, proc.stderr
    assert str(home / "kerasflow-server.log") in proc.stderr and "KERASFLOW_PREFECT_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (home / "server.pid").exists() and not _processes_of(home)


def test_temporary_mode_leaves_nothing_running(tmp_path: Path, mlflow_store: str) -> None:
    """A training run on Prefect's temporary server: the fast exit still runs the `atexit` work that stops it."""
    home, port = tmp_path / "prefect", free_port()
    env = _env(home, port, MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_PREFECT_SERVER="temporary")
    proc = _cli(env, "run", "configs/iris.yaml", "--set", "training.epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test metrics" in proc.stdout
    assert "Starting temporary server" in proc.stderr, "Prefect's own temporary server"
    assert not (home / "server.pid").exists() and not _processes_of(home) and not _answers(port)


def test_unknown_server_mode_names_the_allowed_ones(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", free_port(), MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_PREFECT_SERVER="cloudy")
    proc = _cli(env, "validate", "configs/iris.yaml")
    assert proc.returncode == 1
    assert "KERASFLOW_PREFECT_SERVER='cloudy' is not one of shared, temporary" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_port_is_reported(tmp_path: Path) -> None:
    env = {**_env(tmp_path / "prefect", 0), "KERASFLOW_PREFECT_PORT": "42oo"}
    proc = _cli(env, "server", "start")
    assert proc.returncode == 1 and "KERASFLOW_PREFECT_PORT='42oo' is not a TCP port number" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("value", "expected"), [("", True), ("1", True), ("on", True), ("0", False), ("off", False)])
def test_low_memory_switch(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    from kerasflow.runtime.warmup import low_memory

    monkeypatch.setenv("KERASFLOW_LOW_MEMORY", value)
    assert low_memory() is expected


def test_bad_low_memory_value_is_bad_input(tmp_path: Path, mlflow_store: str) -> None:
    env = _env(tmp_path / "prefect", free_port(), MLFLOW_TRACKING_URI=mlflow_store, KERASFLOW_LOW_MEMORY="maybe")
    proc = _cli(env, "run", "configs/iris.yaml")
    assert proc.returncode == 2 and "KERASFLOW_LOW_MEMORY='maybe'" in proc.stderr
