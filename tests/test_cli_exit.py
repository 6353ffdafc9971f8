"""`kerasflow run` ends without interpreter teardown, yet loses nothing.

Runs the real console script in a fresh process with the shared local Prefect server in a
private PREFECT_HOME, then checks what the process handed over before it ended: the MLflow run
is FINISHED with every per-epoch metric (logged asynchronously) and the test metrics, the model
version is registered, and the Prefect flow run is COMPLETED with its last log line delivered
(logs go to the API from a background worker that Prefect drains at exit).

The same run checks the output budget (docs: "something appears within 2 s; no silent gap over 3 s"):
the test stamps each output line as it arrives. On a machine busier than its cores (1-minute load
average above the CPU count) every process gets at most cores/load of a CPU, and the budget is
stretched by that factor, which the failure message states.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
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
        stamps, code, stretch = _run_stamped([str(KERASFLOW), "run", "configs/breast_cancer.yaml", "--set",
                                              f"training.epochs={EPOCHS}"], env)  # patience 20: no early stop
        output = "".join(line for _, line in stamps)
        assert code == 0, output
        assert "Traceback" not in output
        assert f"train: epoch {EPOCHS}/{EPOCHS}  accuracy " in output, "per-epoch progress, not a TTY"
        assert "train: epoch 1/" in output
        assert "baseline HistGradientBoosting: accuracy " in output, "logged while training imports TensorFlow"
        run_id = re.search(r"MLflow run:\s+(\w+)", output).group(1)

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
        _assert_output_budget(stamps, stretch)
    finally:
        subprocess.run([str(KERASFLOW), "server", "stop"], env=env, cwd=ROOT, capture_output=True, timeout=120)


def _run_stamped(command: list[str], env: dict[str, str], timeout: float = 600) -> tuple[list[tuple[float, str]], int, float]:
    """Runs `command` (stdout and stderr as one stream) and stamps each line with the seconds since the start.

    Returns:
        The stamped lines (the last stamp is the end of the output), the exit status, and the load
        stretch: the busiest 1-minute load average per CPU seen at the start and the end, at least 1.
    """
    stretch = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        stamps = [(time.monotonic() - started, line) for line in proc.stdout]
        code = proc.wait()
    finally:
        timer.cancel()
    stamps.append((time.monotonic() - started, ""))
    return stamps, code, max(stretch, os.getloadavg()[0] / (os.cpu_count() or 1))


def _assert_output_budget(stamps: list[tuple[float, str]], stretch: float) -> None:
    """Something within 2 s, and no silent gap over 3 s (each times `stretch`, see the module's docstring)."""
    first, budget = 2.0 * stretch, 3.0 * stretch
    note = f" (budget stretched {stretch:.1f}x by the machine's load)" if stretch > 1 else ""
    assert stamps[0][0] <= first, f"first line after {stamps[0][0]:.1f} s > {first:.1f} s{note}: {stamps[0][1]!r}"
    gaps = [(later - earlier, line) for (earlier, _), (later, line) in zip(stamps, stamps[1:])]
    silent = [f"{gap:.1f} s before {line.strip()[:100]!r}" for gap, line in gaps if gap > budget]
    assert not silent, f"silent gaps over {budget:.1f} s{note}: {silent}"


_ENDS_WITH_A_RUN_OPEN = """
import sys
from kerasflow import tracking
from kerasflow.runtime.stopping import hard_exit

client = tracking.configure(sys.argv[1])
run = client.create_run(tracking.ensure_experiment(client, "open"), run_name="left-open")
tracking.track_open_run(run.info.run_id, sys.argv[1])
print(run.info.run_id, flush=True)
hard_exit(int(sys.argv[2]))
"""


@pytest.mark.parametrize(("code", "status"), [(1, "FAILED"), (143, "KILLED")])
def test_an_exit_that_skips_unwinding_closes_the_runs_still_open(tmp_path: Path, code: int, status: str) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ended = subprocess.run([sys.executable, "-c", _ENDS_WITH_A_RUN_OPEN, uri, str(code)], capture_output=True,
                           text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert ended.returncode == code, ended.stderr[-3000:]
    run = MlflowClient(uri).get_run(ended.stdout.split()[-1])
    assert run.info.status == status and run.info.end_time is not None
    assert f"the command ended with exit status {code}" in run.data.tags["kerasflow.note"]
