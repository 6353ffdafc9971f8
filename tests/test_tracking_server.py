"""The pipeline against a real `mlflow server` (HTTP tracking, proxied artifacts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests

from kerasflow.data.load import load_frame

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory):
    """Starts `mlflow server` on 127.0.0.1 and stops it afterwards."""
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
           "--workers", "1"]
    # as kerasflow's stacks run it (`kerasflow.runtime.stack`): without MLflow's GenAI job runner and its
    # seven huey consumers, some 19 CPU s of start-up that these tests never use
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} did not become healthy")


def test_pipeline_logs_and_registers_through_the_server(prefect_harness, tracking_server: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from kerasflow.flows.train import train_flow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    result = train_flow(str(ROOT / "configs/wine.yaml"), ["training.epochs=5"])
    client = mlflow.MlflowClient(tracking_server, tracking_server)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and "test/accuracy" in run.data.metrics
    rows = load_frame("wine").drop(columns="target").head(4)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_server)
    try:
        predictions = mlflow.pyfunc.load_model(f"models:/wine-dense/{result.version}").predict(rows)
    finally:
        mlflow.set_tracking_uri(previous)
    assert len(predictions) == 4 and predictions["prediction"].str.startswith("class_").all()
