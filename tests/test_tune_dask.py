"""Tuner trials on Dask: one keras-tuner oracle, trials trained by Dask workers, each a nested MLflow run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest

from kerasflow.flows.results import TuneResult
from kerasflow.runtime.processes import stop_group

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/wine_tuned.yaml")


def _trial_values(client: mlflow.MlflowClient, result: TuneResult) -> dict[str, dict[str, str]]:
    run = client.get_run(result.run_id)
    trials = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.run_id}'")
    assert all(t.info.status == "FINISHED" for t in trials)
    return {t.data.tags["kerasflow.trial_id"]: t.data.params for t in trials}


@pytest.fixture(scope="module")
def dask_cluster():
    """A running Dask cluster started with Dask's own commands: a scheduler and two single-threaded workers.

    One for the module: each worker imports TensorFlow for its first trial, which costs more than the trials.
    """
    from distributed import Client

    from kerasflow.runtime.processes import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    dask = [str(Path(sys.executable).parent / "dask")]
    scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                  "--no-dashboard"], start_new_session=True, **quiet)
    workers = subprocess.Popen([*dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                               start_new_session=True, cwd=tempfile.mkdtemp(), **quiet)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            pids = set(client.run(os.getpid).values())
        yield address, pids
    finally:
        for proc in (workers, scheduler):
            stop_group(proc, 30)  # never a reaped leader's group id, which may be another test's by now


def test_trials_on_dask_workers_take_the_values_of_the_local_search(prefect_harness, mlflow_store: str,
                                                                    tmp_path: Path, dask_cluster) -> None:
    from kerasflow.flows.tune import tune_flow

    common = ["tuning.tuner=random", "tuning.max_trials=4", "training.epochs=2", "training.early_stopping.enabled=false",
              "runner.n_workers=2"]
    local = tune_flow(CONFIG, [*common, f"tuning.directory={tmp_path / 'local'}"], fresh=True)
    address, worker_pids = dask_cluster  # the LocalCluster of runner.kind=dask alone: the killed command
    spread = tune_flow(CONFIG, [*common, "runner.kind=dask", f"runner.address={address}",
                                f"tuning.directory={tmp_path / 'dask'}"], fresh=True)
    client = mlflow.MlflowClient(mlflow_store)
    on_dask = _trial_values(client, spread)
    assert len(on_dask) == 4 and on_dask == _trial_values(client, local), "same seed, same trial values"
    assert spread.hyperparameters == local.hyperparameters
    run = client.get_run(spread.run_id)
    assert run.data.params["tune.trials"] == "4" and run.data.params["tune.new_trials"] == "4"
    trials = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{spread.run_id}'")
    assert {int(t.data.tags["kerasflow.pid"]) for t in trials} <= worker_pids, "trained by the cluster's workers"


def test_a_search_on_dask_killed_mid_way_resumes_its_finished_trials(prefect_harness, tmp_path: Path,
                                                                      mlflow_store: str, dask_cluster) -> None:
    """A `kerasflow tune` process on a LocalCluster is interrupted mid-search; a search in another process resumes.

    The resuming search is this test's process (`tune_flow`, as the command runs it), on the module's running
    cluster (`runner.address`): the runner is not part of what makes trials comparable, so the finished
    trials of one cluster count on another. What the command prints of a `TuneResult` ("5 trials (3 new,
    2 resumed ...") is checked in test_tune.py.
    """
    from kerasflow.flows.tune import tune_flow

    overrides = ["runner.kind=dask", "tuning.tuner=random", "tuning.max_trials=5", "training.epochs=6",
                 f"tuning.directory={tmp_path / 'tuning'}"]
    args = [sys.executable, "-m", "kerasflow.runtime.cli", "tune", CONFIG, "--no-lint",
            *(arg for override in overrides for arg in ("--set", override))]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    first = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in first.stdout:
        if "trial 2/5" in line:
            first.send_signal(signal.SIGINT)
            break
    first.communicate(timeout=120)
    assert first.returncode != 0
    address, worker_pids = dask_cluster
    second = tune_flow(CONFIG, [*overrides, f"runner.address={address}"], lint=False)
    resumed = len(second.trials) - second.new_trials
    assert len(second.trials) == 5 and resumed >= 2, second.summary
    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(second.run_id)
    assert run.data.params["tune.trials"] == "5" and run.data.params["tune.new_trials"] == str(second.new_trials)
    new = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{second.run_id}'")
    assert len(new) == second.new_trials and {int(t.data.tags["kerasflow.pid"]) for t in new} <= worker_pids
