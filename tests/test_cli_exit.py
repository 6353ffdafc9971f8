"""`kerasflow run` ends without interpreter teardown, yet loses nothing.

Runs the real console script in a fresh process with the shared local Prefect server in a
private PREFECT_HOME, then checks what the process handed over before it ended: the MLflow run
is FINISHED with every per-epoch metric (logged asynchronously) and the test metrics, the model
version is registered, and the Prefect flow run is COMPLETED with its last log line delivered
(logs go to the API from a background worker that Prefect drains at exit).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kerasflow.runtime.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
KERASFLOW = Path(sys.executable).with_name("kerasflow")
EPOCHS = 7


def _post(url: str, body: dict) -> list[dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_fast_exit_loses_nothing(tmp_path: Path) -> None:
    import mlflow

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "MLFLOW_TRACKING_URI": store,
           "KERASFLOW_PREFECT_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)
    try:
        proc = subprocess.run([str(KERASFLOW), "run", "configs/breast_cancer.yaml", "--set",
                               f"training.epochs={EPOCHS}"],  # patience 20: no early stop
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert f"train: epoch {EPOCHS}/{EPOCHS}  accuracy " in proc.stdout + proc.stderr, "per-epoch progress, not a TTY"
        assert "train: epoch 1/" in proc.stdout + proc.stderr
        run_id = re.search(r"MLflow run:\s+(\w+)", proc.stdout).group(1)

        client = mlflow.MlflowClient(store, registry_uri=store)  # not the registry another test set globally
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        for name in ("train/loss", "train/val_loss", "train/accuracy"):
            assert [m.step for m in client.get_metric_history(run_id, name)] == list(range(EPOCHS)), name
        assert {"test/accuracy", "test/loss"} <= set(run.data.metrics)
        assert run.data.params["validation.success"] == "1" and int(run.data.params["data.rows"]) > 0
        assert run.data.tags.get("kerasflow.model_version") == "1"
        assert client.get_model_version("breast_cancer-dense", "1").status == "READY"
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["breast_cancer"]

        api = f"http://127.0.0.1:{port}/api"
        flow_runs = _post(f"{api}/flow_runs/filter", {})
        assert [(r["state_type"], r["id"]) for r in flow_runs] == [("COMPLETED", run.data.tags["prefect.flow_run_id"])]
        logs = _post(f"{api}/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_runs[0]["id"]]}}})
        finished = [log for log in logs if log["message"].startswith("Finished in state Completed")]
        assert [log for log in finished if log["task_run_id"] is None], "the flow run's last log line"
        tasks = {log["task_run_id"] for log in logs if log["task_run_id"]}
        assert len(tasks) >= 8, "read-config ... register-model each logged"
        assert {log["task_run_id"] for log in finished if log["task_run_id"]} == tasks, "every task's last log line"
    finally:
        subprocess.run([str(KERASFLOW), "server", "stop"], env=env, cwd=ROOT, capture_output=True, timeout=120)
