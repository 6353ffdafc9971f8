"""Unattended runs: a store that does not answer, signals, SIGKILL orphans, and a store that dies mid-run.

Everything is real: CLI subprocesses in their own process groups, a SQLite
MLflow store per module, and a real `mlflow server` that is killed mid-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from kerasflow.runtime.processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
# as kerasflow's stacks run it (`kerasflow.runtime.stack`): without MLflow's GenAI job runner and its seven
# huey consumers, some 19 CPU s of start-up that a store for these tests never uses
MLFLOW_SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
LONG = ["--set", "training.epochs=5000", "--set", "training.early_stopping.patience=5000"]
SHORT = ["--set", "training.epochs=1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store of this module's own, so its sweeps and kills touch no other test's runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('unattended') / 'mlflow.db'}"


STATE = tempfile.mkdtemp(prefix="kerasflow-test-unattended-")  # interrupted fits leave their checkpoints here


def _env(uri: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "KERASFLOW_HOME": STATE, **extra}


def _start(config: str, uri: str, log: Path, *args: str, **extra: str) -> subprocess.Popen:
    """Starts `kerasflow run` in a process group of its own, output to `log`."""
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "kerasflow.runtime.cli", "run", config, *args], cwd=ROOT,
                            env=_env(uri, **extra), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _training_run(client: mlflow.MlflowClient, experiment: str, pid: int, epochs: int = 3,
                  timeout: float = 150.0) -> str:
    """Waits until the run of process `pid` has logged `epochs` epochs; returns its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            for run in client.search_runs([found.experiment_id], f"tags.`kerasflow.pid` = '{pid}'"):
                if len(client.get_metric_history(run.info.run_id, "train/loss")) >= epochs:
                    return run.info.run_id
        time.sleep(0.5)
    raise AssertionError(f"process {pid} logged no {epochs} epochs in {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_closed_port_stops_within_30_s() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "run", "configs/iris.yaml", *SHORT],
                          cwd=ROOT, env=_env(uri), capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert took < 30, took
    assert uri in proc.stderr and "mlflow server" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def orphan(store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, mlflow.entities.Run]:
    """A `kerasflow run` killed with SIGKILL mid-training; yields its pid and its MLflow run as the kill left it.

    The next run of the experiment (the first signalled run below) sweeps it.
    """
    client = mlflow.MlflowClient(store, store)
    proc = _start("configs/breast_cancer.yaml", store, tmp_path_factory.mktemp("orphan") / "killed.log", *LONG)
    try:
        run_id = _training_run(client, "breast_cancer", proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _stop(proc)
    return proc.pid, client.get_run(run_id)


def _assert_swept(client: mlflow.MlflowClient, orphan: tuple[int, mlflow.entities.Run]) -> None:
    """The SIGKILLed run was left RUNNING; a later run marked it FAILED, with a note, and crashed its flow run."""
    pid, left = orphan
    assert left.info.status == "RUNNING"
    assert left.data.tags["kerasflow.host"] and left.data.tags["kerasflow.started"]
    swept = client.get_run(left.info.run_id)
    assert swept.info.status == "FAILED"
    note = swept.data.tags["kerasflow.note"]
    assert f"process {pid} on host" in note and "is gone; marked FAILED by run" in note
    assert swept.data.tags["mlflow.note.content"] == note
    assert _flow_run_state(left.data.tags["prefect.flow_run_id"]) == "CRASHED", "its Prefect flow run is closed too"


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_the_run_killed(store: str, orphan: tuple, tmp_path: Path, signum: int, status: int) -> None:
    """A signal ends a training run KILLED; the run (the next after a SIGKILL) first swept the SIGKILLed one."""
    client = mlflow.MlflowClient(store, store)
    proc = _start("configs/breast_cancer.yaml", store, tmp_path / "signalled.log", *LONG)
    try:
        run_id = _training_run(client, "breast_cancer", proc.pid)
        _assert_swept(client, orphan)  # swept as the run started, before it trained
        sent = time.monotonic()
        os.kill(proc.pid, signum)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError((tmp_path / "signalled.log").read_text()) from None
        took = time.monotonic() - sent
    finally:
        _stop(proc)
    output = (tmp_path / "signalled.log").read_text()
    assert code == status, output
    assert took < 15
    assert "Traceback" not in output, output
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert _flow_run_state(run.data.tags["prefect.flow_run_id"]) in ("CRASHED", "CANCELLED")


def test_an_interrupt_a_library_cleanup_replaced_still_kills_the_run(mlflow_store: str) -> None:
    """A signal inside a TensorFlow scope turns into its "scope nesting" RuntimeError: still an interrupt."""
    import tensorflow as tf

    from kerasflow import tracking
    from kerasflow.schemas.config import load_config

    # the session's store: opening a run points MLflow's global URI at its store, which later tests rely on
    config = load_config(ROOT / "configs/iris.yaml", [f"registry.tracking_uri={mlflow_store}",
                                                      "name=replaced_interrupt"])
    with pytest.raises(KeyboardInterrupt):
        with tracking.pipeline_run(config, "train") as run:
            with tf.device("/cpu:0"):
                tf.device("/cpu:0").__enter__()  # a nested scope the signal left open
                raise KeyboardInterrupt
    killed = mlflow.MlflowClient(mlflow_store).get_run(run.id)
    assert killed.info.status == "KILLED"
    assert "interrupted" in killed.data.tags["kerasflow.note"]


def test_an_interrupt_a_finalizer_swallowed_is_raised_again_at_the_next_epoch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler's exception raised inside a `__del__` is "ignored": the next epoch raises it again."""
    from prefect.exceptions import TerminationSignal

    from kerasflow import stopping
    from kerasflow.runtime.stopping import register_stop_hooks
    from kerasflow.tasks.progress import EpochProgress

    register_stop_hooks()  # as arming the watchdog does: SIGTERM is raised again as Prefect's TerminationSignal
    progress = EpochProgress(None, 10, "train", bar=False)
    monkeypatch.setattr(stopping, "_stop_signal", None)
    stopping.note_stop_signal(signal.SIGTERM)
    progress(0, {"loss": 1.0})  # within a second: the handler's own exception may still be unwinding
    monkeypatch.setattr(stopping, "_stop_signal", (int(signal.SIGTERM), time.monotonic() - 2))
    with pytest.raises(TerminationSignal):
        progress(1, {"loss": 0.9})
    monkeypatch.setattr(stopping, "_stop_signal", (int(signal.SIGINT), time.monotonic() - 2))
    with pytest.raises(KeyboardInterrupt):
        progress(2, {"loss": 0.8})


STALLING = """
import signal, sys, time
import mlflow
from prefect import flow
from prefect.runtime import flow_run
from kerasflow import tracking
from kerasflow.runtime.prefect_server import ensure_shared_server, prefect_api
from kerasflow.runtime.stopping import arm_watchdog

@flow
def stalling():
    client = mlflow.MlflowClient(sys.argv[1])
    run = client.create_run(client.create_experiment(sys.argv[2]))
    tracking.track_open_run(run.info.run_id, sys.argv[1], flow_run.get_id())
    signal.signal(signal.SIGINT, lambda *_: None)  # a library that swallows the interrupt
    signal.signal(signal.SIGTERM, lambda *_: None)
    print(run.info.run_id, flow_run.get_id(), flush=True)
    while True:
        time.sleep(0.1)

assert arm_watchdog()
with prefect_api(ensure_shared_server()):
    stalling()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stalled_unwinding_is_ended_by_the_watchdog(store: str, tmp_path: Path, signum: int) -> None:
    log = tmp_path / "stalling.log"
    proc = subprocess.Popen([sys.executable, "-c", STALLING, store, f"stalling-{signum}"], cwd=ROOT,
                            env=_env(store, KERASFLOW_SIGNAL_GRACE_SECONDS="1"), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        run_id, flow_run_id = _stalling_ids(proc, log)
        sent = time.monotonic()
        os.kill(proc.pid, signum)
        code = proc.wait(timeout=15)
        took = time.monotonic() - sent
    finally:
        _stop(proc)
    assert code == 128 + signum
    assert 1 <= took < 10, took
    assert "did not stop within 1 s" in log.read_text()
    run = mlflow.MlflowClient(store, store).get_run(run_id)
    assert run.info.status == "KILLED"
    assert "did not unwind in time" in run.data.tags["kerasflow.note"]
    assert _flow_run_state(flow_run_id) == "CRASHED"


def _stalling_ids(proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> list[str]:
    """The MLflow run and flow run ids the STALLING script prints once its flow runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text().splitlines():
            if re.fullmatch(r"[0-9a-f]{32} [0-9a-f-]{36}", line.strip()):
                return line.split()
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def _flow_run_state(flow_run_id: str) -> str:
    """The state type of a flow run on the shared Prefect server the CLI reported to."""
    from kerasflow.runtime.prefect_server import shared_server

    server = shared_server()
    assert server is not None, "the CLI left no shared Prefect server"
    with urllib.request.urlopen(f"{server.url}/flow_runs/{flow_run_id}", timeout=10) as response:
        return json.load(response)["state"]["type"]


@pytest.fixture()
def mlflow_server(tmp_path: Path):
    """A real `mlflow server` on a SQLite file; yields (uri, process)."""
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
                             str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **MLFLOW_SERVER_ENV})
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{uri}/health", proc.poll, tmp_path / "server.log", timeout=60)
        yield uri, proc
    finally:
        _stop(proc)


def test_store_dying_mid_run_fails_within_the_budget(mlflow_server, tmp_path: Path) -> None:
    uri, server = mlflow_server
    client = mlflow.MlflowClient(uri, uri)
    budget = 12
    proc = _start("configs/breast_cancer.yaml", uri, tmp_path / "outage.log", *LONG,
                  KERASFLOW_TRACKING_BUDGET_SECONDS=str(budget), PYTHONFAULTHANDLER="1")
    try:
        _training_run(client, "breast_cancer", proc.pid)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        killed = time.monotonic()
        try:
            code = proc.wait(timeout=budget + 40)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)  # PYTHONFAULTHANDLER: the log gets every thread's stack
            proc.wait(timeout=30)
            raise AssertionError((tmp_path / "outage.log").read_text()[-20000:]) from None
        took = time.monotonic() - killed
    finally:
        _stop(proc)
    output = (tmp_path / "outage.log").read_text()
    assert code == 1, output
    assert took < budget + 30, (took, output)
    assert uri in output and "stopped answering" in output, output
    assert "Traceback" not in output, output
