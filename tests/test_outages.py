"""Outages and damage mid-run, with real processes: the Prefect API killed during training, and a full disk
while the model's artifacts are written."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from kerasflow.runtime.processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
IRIS = ["configs/iris.yaml", "-s", "training.early_stopping.patience=100"]  # infra validation off (conftest)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERASFLOW_HOME": str(tmp_path),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **extra}
    env.pop("MLFLOW_DEFAULT_ARTIFACT_ROOT", None)
    return env


def _kerasflow(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kerasflow.runtime.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _prefect_server(home: Path, port: int) -> subprocess.Popen:
    """Starts Prefect's server with its API alone, the part these outages concern.

    Without the UI and the background services (scheduler, late runs, event persister, ...) it answers in about
    half the time (on a loaded machine 14 s against 39 s; 8 against 11 CPU s).
    """
    log = open(home / "server.log", "a")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port), "--analytics-off", "--no-ui", "--no-services"], cwd=home, stdout=log,
                              stderr=subprocess.STDOUT,
                              env={**os.environ, "PREFECT_HOME": str(home)}, start_new_session=True)
    wait_healthy(f"http://127.0.0.1:{port}/api/health", server.poll, home / "server.log", timeout=240)
    return server


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def _only_run(uri: str, experiment: str):  # registry too: the process's global registry URI may be another store
    client = MlflowClient(uri, uri)
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               "tags.`kerasflow.kind` != 'fold'")  # not a k-fold run's nested fold runs
    return client, run


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory):
    """The Prefect server of this module's API outages (a PREFECT_HOME and port of its own), stopped at its end.

    Yields a holder: `_run_while_the_api_dies` kills the server mid-run and restarts it for the test's
    reconciliation; the next test's run starts on that restarted server, so each outage costs one restart.
    """
    home = tmp_path_factory.mktemp("outage-prefect")
    holder = {"home": home, "port": free_port(), "server": None}
    try:
        yield holder
    finally:
        if holder["server"] is not None:
            _stop(holder["server"])


def _run_while_the_api_dies(tmp_path: Path, api_server: dict, args: list[str], experiment: str) -> tuple:
    """Runs `kerasflow run ARGS` on the module's Prefect server, killed at the first epoch line; restarts it.

    Returns:
        The exit code, the output, the seconds from the MLflow run's end to the command's, the MLflow client
        and run, and the restarted server's API address (the server is stopped with the module).
    """
    home, port = api_server["home"], api_server["port"]
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path, PREFECT_HOME=str(home), PREFECT_API_URL=api)
    server = api_server["server"]
    if server is None or server.poll() is not None:
        server = api_server["server"] = _prefect_server(home, port)
    command = _kerasflow(["run", *args], env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(command.stdout), daemon=True)
    reader.start()
    try:
        while not any("epoch 1/" in line for line in lines) and command.poll() is None:
            time.sleep(0.2)
        _stop(server)  # the API goes away while the model (a fold) trains
        code = command.wait(timeout=900)
        ended = time.time()
        reader.join(timeout=30)
    finally:
        _stop(command)
        _stop(server)
    client, run = _only_run(env["MLFLOW_TRACKING_URI"], experiment)
    api_server["server"] = _prefect_server(home, port)
    assert run.info.end_time is not None, (code, run.info.status, run.data.tags, "".join(lines)[-6000:])
    return code, "".join(lines), ended - run.info.end_time / 1000, client, run, api


def _reconcile(client, run, api: str) -> tuple[list[str], dict[str, str]]:
    """What the next run's sweep reconciles (the Prefect server is back), and the flow runs' states after it."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kerasflow.tasks.outage import reconcile_flow_run
    from kerasflow.tracking.liveness import reconcile_flow_runs

    with temporary_settings(updates={PREFECT_API_URL: api}):
        reconciled = reconcile_flow_runs(client, run.info.experiment_id, reconcile_flow_run)
        with get_client(sync_client=True) as prefect:
            return reconciled, {flow_run_id: prefect.read_flow_run(flow_run_id).state.name
                                for flow_run_id in reconciled}


def _assert_finished_soon_in_one_paragraph(code: int, output: str, late: float, client, run, model: str) -> None:
    """Exit 0, the MLflow run FINISHED with its version, soon after the work, one paragraph and no traceback."""
    from kerasflow.tracking.tags import PREFECT_PENDING_TAG

    assert run.info.status == "FINISHED", output[-3000:]
    assert code == 0, output[-3000:]
    assert late < 30, output[-3000:]  # the command ends soon after the work
    [warning] = [line for line in output.splitlines() if line.startswith("warning: train finished")]
    assert f"{model} v1" in warning and "Completed" in warning, output[-3000:]
    assert "Traceback" not in output and "--- Error logging to API" not in output, output[-3000:]
    assert [v.run_id for v in client.search_model_versions(f"name = '{model}'")] == [run.info.run_id]
    assert run.data.tags[PREFECT_PENDING_TAG].startswith("Completed: ")


@pytest.mark.slow
def test_the_prefect_api_down_mid_run_ends_soon_with_a_finished_run(tmp_path: Path, api_server: dict) -> None:
    from kerasflow.tracking.tags import FLOW_RUN_TAG, PREFECT_PENDING_TAG

    code, output, late, client, run, api = _run_while_the_api_dies(
        tmp_path, api_server, [*IRIS, "-s", "name=iris_outage", "-s", "training.epochs=20",  # trains on after the kill:
                               "-s", "training.early_stopping.enabled=false"], "iris_outage")  # the API dies mid-training
    _assert_finished_soon_in_one_paragraph(code, output, late, client, run, "iris-dense")
    reconciled, states = _reconcile(client, run, api)  # back: the next run's sweep sets the final state
    assert reconciled == [run.data.tags[FLOW_RUN_TAG]] and set(states.values()) == {"Completed"}, states
    assert PREFECT_PENDING_TAG not in client.get_run(run.info.run_id).data.tags


@pytest.mark.slow
def test_the_prefect_api_down_mid_fold_ends_soon_with_a_finished_run(tmp_path: Path, api_server: dict) -> None:
    from kerasflow.tracking.tags import FLOW_RUN_TAG, PREFECT_PENDING_NESTED_TAG

    code, output, late, client, run, api = _run_while_the_api_dies(
        tmp_path, api_server, ["configs/iris_kfold.yaml", "-s", "name=iris_kfold_outage", "-s", "split.folds=2",
                               "-s", "training.epochs=20", "-s", "training.early_stopping.enabled=false"],
        "iris_kfold_outage")
    _assert_finished_soon_in_one_paragraph(code, output, late, client, run, "iris_kfold-dense")
    folds = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert sorted(f.data.tags["kerasflow.fold"] for f in folds) == ["0", "1"]  # once each: no fold ran twice
    assert all(f.info.status == "FINISHED" for f in folds) and "cv/accuracy.mean" in run.data.metrics
    [nested] = run.data.tags[PREFECT_PENDING_NESTED_TAG].splitlines()  # the cut-off cross-validate flow run
    assert nested.split(" ")[1] == "Completed:", nested
    reconciled, states = _reconcile(client, run, api)
    assert reconciled == [run.data.tags[FLOW_RUN_TAG], nested.split(" ")[0]], reconciled
    assert set(states.values()) == {"Completed"}, states
    assert PREFECT_PENDING_NESTED_TAG not in client.get_run(run.info.run_id).data.tags


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_while_writing_the_model_fails_the_run_cleanly(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    if not _mount_tmpfs(artifacts, "1m"):  # the run's own artifacts fit (~250 KB), the model's (~2 MB) do not
        pytest.skip("mounting a small tmpfs needs root")
    try:
        env = _env(tmp_path, MLFLOW_DEFAULT_ARTIFACT_ROOT=artifacts.as_uri())  # the session's Prefect server
        command = _kerasflow(["run", *IRIS, "-s", "name=iris_full", "-s", "training.epochs=3",
                              "-s", "registry.model_name=iris-full"], env)
        output, _ = command.communicate(timeout=900)
    finally:
        subprocess.run(["umount", "-l", str(artifacts)], capture_output=True)
    client, run = _only_run(env["MLFLOW_TRACKING_URI"], "iris_full")
    assert command.returncode == 1, output[-3000:]
    [error] = [line for line in output.splitlines() if line.startswith("error: ")]
    assert "the disk is full: writing " + str(artifacts) in error and "No space left" in error, error
    assert "Traceback" not in output.split("error: ")[-1]
    assert run.info.status == "FAILED"
    assert client.search_model_versions("name = 'iris-full'") == []


def test_sigterm_before_the_pipeline_starts_exits_143_with_one_line(tmp_path: Path) -> None:
    command = _kerasflow(["run", *IRIS, "-s", "name=iris_early"], _env(tmp_path))
    first = command.stdout.readline()  # the command's first line: the config is read, the flow not started
    command.send_signal(signal.SIGTERM)
    rest, _ = command.communicate(timeout=120)
    assert first.startswith("kerasflow train: pipeline iris_early"), first + rest
    assert command.returncode == 143, first + rest
    assert "error: stopped by SIGTERM" in rest and "Traceback" not in rest, rest
