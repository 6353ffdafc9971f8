"""The deployed stack: a real Prefect server, process work pool, worker and `prefect deployment run`.

Everything runs in subprocesses bound to 127.0.0.1 with a temporary
PREFECT_HOME and MLflow store, and is stopped at the end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from kerasflow.runtime.processes import free_port
from kerasflow.runtime.stack import Stack, StackSettings, declared_deployments

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts servers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("stack")
    settings = StackSettings(home=ROOT, prefect_port=free_port(), mlflow_port=free_port(), state_dir=state,
                             tracking_uri=f"sqlite:///{state / 'mlflow.db'}", deployments=["nightly", "default"],
                             worker_poll_seconds=1)
    running = Stack(settings, echo=lambda line: None)
    try:
        running.start()
        yield running
    finally:
        children = list(running.children.values())
        running.stop()
        for proc in children:
            assert proc.poll() is not None, "every child is stopped"
            assert not _live_members(proc.pid), "and every process of its group"


def _live_members(group: int) -> list[int]:
    """Processes of a process group that are alive (zombies awaiting a reaper do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def test_prefect_yaml_declares_the_four_deployments() -> None:
    declared = {d["name"]: d["entrypoint"] for d in declared_deployments(ROOT)}
    assert declared == {"manual": "flows/train.py:train_flow", "search": "flows/tune.py:tune_flow",
                        "nightly": "flows/retrain.py:retrain_flow",
                        "default": "flows/batch_predict.py:batch_predict_flow"}


def test_retrain_deployment_is_scheduled_and_limited(stack: Stack) -> None:
    proc = stack.prefect("deployment", "inspect", "retrain/nightly", "--output", "json")
    deployment = json.loads(proc.stdout)
    assert deployment["work_pool_name"] == "kerasflow-process"
    assert deployment["global_concurrency_limit"]["limit"] == 1
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "UTC"
    assert deployment["pull_steps"] == [{"kerasflow.runtime.pull_steps.enter_project": {}}], "no path of this clone"
    assert str(ROOT) not in json.dumps(deployment)
    assert deployment["parameters"]["config_path"] == "configs/digits.yaml"


def test_serve_refuses_a_busy_port() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "serve", "--prefect-port", str(port)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert "pass --prefect-port" in proc.stderr and "Traceback" not in proc.stderr


def test_a_deployment_run_from_the_cli_lands_in_mlflow_and_batch_predict_scores_it(stack: Stack) -> None:
    overrides = ["training.epochs=2", "registry.gate.thresholds=[{metric: accuracy, min: 0.0}]"]
    trained = stack.prefect("deployment", "run", "retrain/nightly", "--param", f"overrides={json.dumps(overrides)}",
                            "--watch", "--watch-interval", "1", "--watch-timeout", "240", check=False, timeout=300)
    assert trained.returncode == 0, trained.stdout[-4000:] + trained.stderr[-4000:]
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", trained.stdout).group(1)
    state = requests.get(f"{stack.settings.api_url}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
    assert state["type"] == "COMPLETED"
    client = mlflow.MlflowClient(stack.settings.store, stack.settings.store)
    experiment = client.get_experiment_by_name("digits")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
    assert run.info.status == "FINISHED" and run.data.tags["kerasflow.kind"] == "retrain"
    assert run.data.tags["kerasflow.decision"] == "first-champion"
    champion = client.get_registered_model("digits-dense").aliases["champion"]
    assert str(champion) == run.data.tags["kerasflow.model_version"]
    assert requests.get(f"{stack.settings.mlflow_ui}/health", timeout=10).ok
    output = ROOT / "predictions" / "digits.predictions.csv"
    output.unlink(missing_ok=True)
    proc = stack.prefect("deployment", "run", "batch-predict/default", "--watch", "--watch-interval", "1",
                         "--watch-timeout", "240", check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    try:
        predictions = pd.read_csv(output)
        assert len(predictions) == 40 and "prediction" in predictions.columns
    finally:
        output.unlink(missing_ok=True)


OWNER = """
import sys, time
from pathlib import Path
from kerasflow.runtime.stack import Stack, StackSettings
state = Path(sys.argv[1])
stack = Stack(StackSettings(home=state, state_dir=state), echo=lambda line: None)
child = stack.start_child("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_children_of_a_killed_serve_stop_with_it(tmp_path: Path) -> None:
    """`kill -9` of `serve` skips `Stack.stop`: the guard leading each child's group stops the child instead."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    (tmp_path / "logs").mkdir()
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    members: list[psutil.Process] = []
    try:
        guard = psutil.Process(int(owner.stdout.readline()))
        members = [guard, *guard.children(recursive=True)]
        assert any("sleep(600)" in " ".join(member.cmdline()) for member in members), members
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        _, alive = psutil.wait_procs(members, timeout=10)
        assert alive == [], [member.cmdline() for member in alive]
    finally:
        if owner.poll() is None:
            owner.kill()
        for member in members:
            if member.is_running():
                member.kill()
