"""Measures a deployed retraining: from `prefect deployment run` to the champion decision.

Starts the whole local stack (Prefect server, process work pool, worker,
MLflow server) on free ports with temporary state, deploys `retrain/nightly`,
and triggers it twice from the CLI with the digits config: the first run
makes the first champion, the second is a full champion/challenger retrain
(drift check, champion scoring, gate). For each run it prints the wall time
from the CLI call to the decision (the `kerasflow.decided_at` tag), the time
spent training (the `train-model` task), their ratio, and where the rest
went: dispatch (trigger to flow start: API, scheduling, worker poll,
process start), the other tasks, and flow setup and teardown. Usage:

    python benchmarks/retrain.py [EPOCHS]
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "digits-bench"


def main(epochs: int) -> None:
    """Runs the benchmark and prints one row per retraining."""
    import mlflow
    import requests

    from kerasflow.runtime.processes import free_port
    from kerasflow.runtime.stack import Stack, StackSettings

    state = Path(tempfile.mkdtemp(prefix="kf-retrain-bench-"))
    settings = StackSettings(home=ROOT, prefect_port=free_port(), mlflow_port=free_port(), state_dir=state,
                             tracking_uri=f"sqlite:///{state / 'mlflow.db'}", deployments=["nightly"])
    base = [f"training.epochs={epochs}", f"registry.model_name={MODEL}"]
    runs = [("first champion", [*base, "registry.gate.thresholds=[{metric: accuracy, min: 0.5}]"]),
            ("challenger vs champion", base)]
    rows = []
    started = time.perf_counter()
    with Stack(settings, echo=lambda line: None) as stack:
        stack.start()
        stack_seconds = time.perf_counter() - started
        client = mlflow.MlflowClient(settings.store, settings.store)
        for label, overrides in runs:
            t0 = time.time()
            proc = stack.prefect("deployment", "run", "retrain/nightly", "--param", "config_path=configs/digits.yaml",
                                 "--param", f"overrides={json.dumps(overrides)}", "--watch", "--watch-interval", "1",
                                 timeout=1800)
            flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", proc.stdout).group(1)
            tasks = requests.post(f"{settings.api_url}/task_runs/filter", timeout=30,
                                  json={"flow_runs": {"id": {"any_": [flow_run_id]}}}).json()
            flow = requests.get(f"{settings.api_url}/flow_runs/{flow_run_id}", timeout=30).json()
            run = client.search_runs([client.get_experiment_by_name("digits").experiment_id],
                                     f"tags.`prefect.flow_run_id` = '{flow_run_id}'")[0]
            rows.append(_row(label, t0, flow, tasks, run))
    print(f"\nstack start (server, pool, deploy, worker, MLflow server): {stack_seconds:.1f} s; "
          f"digits, {epochs} epochs\n")
    print(f"{'run':<24}{'decision':<16}{'total s':>9}{'train s':>9}{'train/total':>12}{'outside s':>11}"
          f"{'dispatch':>10}{'other tasks':>12}{'flow setup':>11}")
    for r in rows:
        print(f"{r['label']:<24}{r['decision']:<16}{r['total']:>9.1f}{r['train']:>9.1f}{r['train'] / r['total']:>12.3f}"
              f"{r['total'] - r['train']:>11.1f}{r['dispatch']:>10.1f}{r['tasks'] - r['train']:>12.1f}"
              f"{r['total'] - r['dispatch'] - r['tasks']:>11.1f}")
    for r in rows:
        slowest = sorted(r["by_task"].items(), key=lambda kv: -kv[1])[:6]
        print(f"  {r['label']}: " + ", ".join(f"{name} {sec:.1f}" for name, sec in slowest))
    print("\ntotal = CLI `prefect deployment run` -> champion decision tag; train = the train-model task;"
          "\ndispatch = trigger -> flow run start (API, scheduling, worker poll, process start);"
          "\nflow setup = imports, MLflow run, config and everything between tasks.")


def _row(label: str, t0: float, flow: dict, tasks: list[dict], run) -> dict:
    decided = datetime.fromisoformat(run.data.tags["kerasflow.decided_at"]).timestamp()  # ISO 8601, UTC
    train = next(t["total_run_time"] for t in tasks if t["name"].startswith("train-model"))
    return {"label": label, "decision": run.data.tags["kerasflow.decision"], "total": decided - t0, "train": train,
            "dispatch": _epoch(flow["start_time"]) - t0, "tasks": sum(t["total_run_time"] for t in tasks),
            "by_task": {t["name"].rsplit("-", 1)[0]: t["total_run_time"] for t in tasks}}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
