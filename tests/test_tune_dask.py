"""Tuner trials on Dask: one keras-tuner oracle, trials trained by Dask workers, each a nested MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/wine_tuned.yaml")


def _trial_values(client: mlflow.MlflowClient, result: dict) -> dict[str, dict[str, str]]:
    run = client.get_run(result["run_id"])
    trials = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result['run_id']}'")
    assert all(t.info.status == "FINISHED" for t in trials)
    return {t.data.tags["kerasflow.trial_id"]: t.data.params for t in trials}


def test_trials_on_two_dask_workers_take_the_values_of_the_local_search(prefect_harness, mlflow_store: str,
                                                                        tmp_path: Path) -> None:
    from kerasflow.flows.tune import tune_flow

    common = ["tuning.tuner=random", "tuning.max_trials=4", "training.epochs=2", "training.early_stopping.enabled=false",
              "runner.n_workers=2"]
    local = tune_flow(CONFIG, [*common, f"tuning.directory={tmp_path / 'local'}"], fresh=True)
    spread = tune_flow(CONFIG, [*common, "runner.kind=dask", f"tuning.directory={tmp_path / 'dask'}"], fresh=True)
    client = mlflow.MlflowClient(mlflow_store)
    on_dask = _trial_values(client, spread)
    assert len(on_dask) == 4 and on_dask == _trial_values(client, local), "same seed, same trial values"
    assert spread["hyperparameters"] == local["hyperparameters"]
    run = client.get_run(spread["run_id"])
    assert run.data.metrics["tune/trials"] == 4 and run.data.metrics["tune/new_trials"] == 4


def test_trials_on_a_remote_cluster_are_refused_at_config_validation() -> None:
    import pytest

    from kerasflow.schemas.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="runner.address: tuner trials run on a local Dask cluster only"):
        load_config(CONFIG, ["runner.kind=dask", "runner.address=tcp://scheduler:8786"])


def test_a_search_on_dask_killed_mid_way_resumes_its_finished_trials(tmp_path: Path, mlflow_store: str) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    args = [sys.executable, "-m", "kerasflow.runtime.cli", "tune", CONFIG, "--no-lint", "--set", "runner.kind=dask",
            "--set", "tuning.tuner=random", "--set", "tuning.max_trials=5", "--set", "training.epochs=40",
            "--set", f"tuning.directory={tmp_path / 'tuning'}"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in first.stdout:
        if "trial 2/5" in line:
            first.send_signal(signal.SIGINT)
            break
    first.communicate(timeout=120)
    assert first.returncode != 0
    second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    found = re.search(r"5 trials \((\d+) new, (\d+) resumed", second.stdout)
    assert found and int(found.group(2)) >= 2 and int(found.group(1)) + int(found.group(2)) == 5, second.stdout
