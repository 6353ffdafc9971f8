"""Reliability: a new store opened by many processes at once, credentials masked, an honest tracking budget,
damaged step-cache entries, and two runs of one config at once."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mlflow
import pytest
from log_lines import LogLines

from kerasflow.runtime.processes import free_port, wait_healthy
from kerasflow.runtime.stores import StoreUnreachable, check_store
from kerasflow.secrets import credentials, install_log_masking, mask
from kerasflow.tasks.caching import CACHE_TAG

ROOT = Path(__file__).resolve().parents[1]
# as kerasflow's stacks run it (`kerasflow.runtime.stack`): without MLflow's GenAI job runner and its seven
# huey consumers, some 19 CPU s of start-up that a store for these tests never uses
MLFLOW_SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


# --- credentials --------------------------------------------------------------------------------------------


def test_credentials_in_addresses_are_masked() -> None:
    assert mask("http://user:pass@host:5000/x") == "http://user:***@host:5000/x"
    assert mask("at postgresql://kf:s3:c@ret@db:5432/mlflow now") == "at postgresql://kf:***@db:5432/mlflow now"
    assert mask("sqlite:///mlruns/mlflow.db, http://token@host, a@b.c") == \
        "sqlite:///mlruns/mlflow.db, http://token@host, a@b.c"
    assert credentials("http://u:p%40ss@127.0.0.1:5000/p") == ("http://127.0.0.1:5000/p", ("u", "p@ss"))
    assert credentials("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)


def test_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    logger = logging.getLogger("kerasflow.test.masking")
    with caplog.at_level(logging.INFO, logger="kerasflow.test.masking"):
        logger.info("store %s down", "http://user:pass@host:1")
        try:
            raise RuntimeError("API request to http://user:pass@host:1/api failed")
        except RuntimeError:
            logger.exception("failed")
    assert "pass@" not in caplog.text and "user:***@host" in caplog.text


def test_the_reachability_check_reads_credentials_and_masks_them() -> None:
    port = free_port()
    with pytest.raises(StoreUnreachable) as error:
        check_store(f"http://kf:s3cret@127.0.0.1:{port}", timeout=1)
    message = str(error.value)
    assert "s3cret" not in message and f"http://kf:***@127.0.0.1:{port}" in message
    assert "refused" in message.lower(), message  # the address was parsed: it reached the port


def test_tags_params_and_texts_are_masked_in_the_store(tmp_path: Path) -> None:
    import mlflow

    from kerasflow.tracking import configure, ensure_experiment, log_params

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()  # `configure` points MLflow at this store
    try:
        _masked_in(configure(f"sqlite:///{tmp_path / 'mlflow.db'}"), log_params, ensure_experiment, tmp_path)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _masked_in(client, log_params, ensure_experiment, tmp_path: Path) -> None:
    run_id = client.create_run(ensure_experiment(client, "masked"), tags={"origin": "http://a:b@h"}).info.run_id
    client.set_tag(run_id, "store", "postgresql://kf:s3cret@db/mlflow")
    log_params(client, run_id, {"registry.tracking_uri": "http://kf:s3cret@host:5000"})
    client.log_text(run_id, "tracking_uri: http://kf:s3cret@host:5000\n", "config/config.yaml")
    run = client.get_run(run_id)
    assert run.data.tags["store"] == "postgresql://kf:***@db/mlflow"
    assert run.data.tags["origin"] == "http://a:***@h"
    assert run.data.params["registry.tracking_uri"] == "http://kf:***@host:5000"
    text = Path(client.download_artifacts(run_id, "config/config.yaml", str(tmp_path))).read_text()
    assert "s3cret" not in text


# --- a new store, many processes ----------------------------------------------------------------------------

OPEN_STORE = """
    import sys
    from kerasflow.tracking import configure, ensure_experiment
    client = configure(sys.argv[1] if len(sys.argv) > 1 else None)
    experiment = ensure_experiment(client, "shared")
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    print("ok", experiment)
"""


def test_four_processes_create_one_new_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    procs = [_python(OPEN_STORE, _env(MLFLOW_TRACKING_URI=uri), tmp_path) for _ in range(4)]
    outputs = [(proc.wait(timeout=300), proc.stdout.read()) for proc in procs]
    assert all(code == 0 for code, _ in outputs), outputs
    assert len({out.split()[-1] for _, out in outputs}) == 1, outputs  # one experiment, made once
    later = _python(OPEN_STORE, _env(MLFLOW_TRACKING_URI=uri), tmp_path)
    assert later.wait(timeout=300) == 0, later.stdout.read()
    runs = mlflow.MlflowClient(uri, uri).search_runs([outputs[0][1].split()[-1]])
    assert len(runs) == 5 and all(run.info.status == "FINISHED" for run in runs)


# --- the tracking budget ------------------------------------------------------------------------------------


def _mlflow_server(tmp_path: Path, port: int) -> subprocess.Popen:
    log = open(tmp_path / "server.log", "w")
    return subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                             f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
                             str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, **MLFLOW_SERVER_ENV})


def _relay(port: int, target: int) -> socketserver.TCPServer:
    """From now on, connections to `port` reach the server on `target`: the store comes up at once, started."""

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(("127.0.0.1", target)) as upstream:
                ends = {self.request: upstream, upstream: self.request}
                while True:
                    ready, _, _ = select.select(list(ends), [], [], 60)
                    data = ready[0].recv(65536) if ready else b""
                    if not data:
                        return
                    ends[ready[0]].sendall(data)

    class Relay(socketserver.ThreadingTCPServer):
        allow_reuse_address, daemon_threads = True, True

    relay = Relay(("127.0.0.1", port), Pipe)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    return relay


def test_a_server_started_within_the_budget_is_waited_for(tmp_path: Path) -> None:
    port, behind = free_port(), free_port()
    uri = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    client = _python(OPEN_STORE, _env(KERASFLOW_TRACKING_BUDGET_SECONDS="64", MLFLOW_TRACKING_URI=uri), tmp_path)
    server, relay = _mlflow_server(tmp_path, behind), None  # it starts meanwhile, on a port of its own
    try:
        wait_healthy(f"http://127.0.0.1:{behind}/health", server.poll, tmp_path / "server.log", timeout=120)
        # refused for 18 s: MLflow's own retries, as derived before from this budget (four), ended after 16 s
        # (five after 31 s for 120 s); the store then answers at once, well within the budget
        time.sleep(max(0.0, started + 18 - time.monotonic()))
        assert client.poll() is None, client.stdout.read()
        relay = _relay(port, behind)
        code = client.wait(timeout=120)
        output = client.stdout.read()
    finally:
        if relay is not None:
            relay.shutdown()
            relay.server_close()
        for proc in (client, server):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    assert code == 0, output
    assert time.monotonic() - started > 18, output


def test_a_store_that_stays_down_fails_when_the_budget_ends(tmp_path: Path) -> None:
    uri = f"http://kf:s3cret@127.0.0.1:{free_port()}"
    started = time.monotonic()
    client = _python(OPEN_STORE, _env(KERASFLOW_TRACKING_BUDGET_SECONDS="8", MLFLOW_TRACKING_URI=uri), tmp_path)
    code = client.wait(timeout=120)
    took, output = time.monotonic() - started, client.stdout.read()
    assert code != 0 and "TrackingUnavailable" in output, output
    assert 8 <= took < 8 + 25, (took, output)
    assert "s3cret" not in output.split("TrackingUnavailable")[-1]


# --- damaged step-cache entries -----------------------------------------------------------------------------

IRIS = str(ROOT / "configs/iris.yaml")
FAST = ["name=iris_damage", "training.epochs=3", "training.early_stopping.patience=2"]


def _entry(home: Path, step: str) -> Path:
    [folder] = [p for p in (home / ".kerasflow" / "steps" / "iris_damage" / step).iterdir() if p.is_dir()]
    return folder


def test_damaged_cache_entries_are_reported_and_recomputed(prefect_harness, mlflow_store: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from kerasflow.flows.train import train_flow

    monkeypatch.setenv("KERASFLOW_CACHE_DAYS", "7")
    monkeypatch.setenv("KERASFLOW_HOME", str(tmp_path))
    train_flow(IRIS, FAST)
    truncated = next(p for p in _entry(tmp_path, "load-data").rglob("*.parquet"))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    deleted = next(p for p in _entry(tmp_path, "split-data").iterdir() if p.suffix == ".json"
                   and p.name != "manifest.json")
    deleted.unlink()
    garbage = _entry(tmp_path, "fit-preprocessing") / "features.json"
    garbage.write_bytes(os.urandom(garbage.stat().st_size))
    record = tmp_path / ".kerasflow" / "steps" / "results" / f"{_entry(tmp_path, 'train-model').name}"
    [record] = [p for p in record.parent.iterdir() if p.name.startswith(record.name)]
    record.write_text("not a result record")

    handler = LogLines(logging.WARNING)
    logging.getLogger("prefect").addHandler(handler)
    try:
        rerun = train_flow(IRIS, FAST)
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    tags = mlflow.MlflowClient(mlflow_store).get_run(rerun.run_id).data.tags
    for step, path in (("load-data", truncated), ("split-data", deleted), ("fit-preprocessing", garbage),
                       ("train-model", record)):
        assert tags[CACHE_TAG + step] == "miss", (step, tags)
        assert any("damaged" in line and str(path) in line for line in handler.lines), (step, handler.lines)
    assert tags[CACHE_TAG + "validate-data"] == "hit"
    assert rerun.version is not None


# --- two runs of one config at once -------------------------------------------------------------------------


def test_two_runs_of_one_config_at_once_both_finish(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = _env(MLFLOW_TRACKING_URI=uri, KERASFLOW_HOME=str(tmp_path))
    args = ["--set", "name=iris_twice", "--set", "training.epochs=20", "--set", "training.early_stopping.patience=20"]
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "kerasflow.runtime.cli", "run", IRIS, *args], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      start_new_session=True))
        time.sleep(1)
    try:
        outputs = [(proc.wait(timeout=900), proc.stdout.read()) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for code, output in outputs:
        assert code == 0 and "Traceback" not in output, output
    client = mlflow.MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("iris_twice").experiment_id])
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    shutil.rmtree(tmp_path / ".kerasflow", ignore_errors=True)


# --- two searches of one config at once ---------------------------------------------------------------------


def test_a_second_search_of_one_config_gets_a_tuner_folder_of_its_own(tmp_path: Path) -> None:
    from kerasflow.training.search import holding_project

    shared, lines = tmp_path / "tuner" / "wine", []
    with holding_project(shared, "run-a") as first:
        with holding_project(shared, "run-b", notice=lines.append) as second:
            assert first == shared and second == shared.with_name("wine.run-run-b")
    assert len(lines) == 1 and "pid" in lines[0] and "run-a" in lines[0] and str(second) in lines[0]
    with holding_project(shared, "run-c") as rerun:  # released (as by a killed holder): the rerun resumes there
        assert rerun == shared


# --- flow runs whose final state a Prefect outage kept back -------------------------------------------------


def test_flow_runs_of_swept_runs_wait_for_the_prefect_api(tmp_path: Path) -> None:
    import socket

    from kerasflow.tracking import configure, ensure_experiment
    from kerasflow.tracking.liveness import mark_prefect_pending, reconcile_flow_runs, sweep_orphans
    from kerasflow.tracking.tags import FLOW_RUN_TAG, HOST_TAG, PID_TAG, PREFECT_PENDING_NESTED_TAG, PREFECT_PENDING_TAG

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        client = configure(f"sqlite:///{tmp_path / 'mlflow.db'}")
        experiment = ensure_experiment(client, "pending")
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead = client.create_run(experiment, tags={PID_TAG: gone.stdout.strip(), HOST_TAG: socket.gethostname(),
                                                   FLOW_RUN_TAG: "flow-1"}).info.run_id
        current = client.create_run(experiment).info.run_id

        def down(flow_run_id: str, note: str) -> None:
            raise ConnectionRefusedError("the Prefect API is down")

        assert sweep_orphans(client, experiment, current, down) == [dead]
        assert client.get_run(dead).data.tags[PREFECT_PENDING_TAG].startswith("Crashed: process ")
        for nested in ("nested-1", "nested-2", "nested-1"):  # a nested flow run's entry is replaced, not repeated
            mark_prefect_pending(client, current, "Completed", "cut off", flow_run_id=nested)
        assert client.get_run(current).data.tags[PREFECT_PENDING_NESTED_TAG].splitlines() == [
            "nested-2 Completed: cut off", "nested-1 Completed: cut off"]
        assert reconcile_flow_runs(client, experiment, lambda *args: down(*args[:2])) == []  # still down: kept
        calls = []
        assert reconcile_flow_runs(client, experiment, lambda *args: calls.append(args)) == [
            "flow-1", "nested-2", "nested-1"]
        assert calls[0][:2] == ("flow-1", "Crashed") and PREFECT_PENDING_TAG not in client.get_run(dead).data.tags
        assert calls[1][:2] == ("nested-2", "Completed") and calls[1][2].startswith("cut off (reconciled")
        assert PREFECT_PENDING_NESTED_TAG not in client.get_run(current).data.tags
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
