"""Training resumes after a kill: checkpoints at epoch ends (by time), resumed runs, reused k-fold folds."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from log_lines import LogLines

from kerasflow.heavy import import_tensorflow
from kerasflow.schemas.config import TrainingConfig
from kerasflow.training import resume
from kerasflow.training.cv import FoldResult
from kerasflow.training.fitting import fit_model

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "diabetes_resume"
OVERRIDES = [f"name={PIPELINE}", "registry.model_name=diabetes-resume", "training.epochs=80",
             "training.early_stopping.enabled=false"]
COMMAND = [sys.executable, "-m", "kerasflow.runtime.cli", "run", "configs/diabetes.yaml",
           *(arg for override in OVERRIDES for arg in ("--set", override))]


def _metadata_files(home: Path) -> list[Path]:
    return list((home / ".kerasflow" / "checkpoints" / PIPELINE).glob("*/final-*/backup/training_metadata.json"))


def _running_epochs(client: mlflow.MlflowClient) -> tuple[str, int] | None:
    experiment = client.get_experiment_by_name(PIPELINE)
    if experiment is None:
        return None
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
        return run.info.run_id, len(client.get_metric_history(run.info.run_id, "train/loss"))
    return None


def test_a_killed_training_resumes_at_its_last_epoch(prefect_harness, mlflow_store: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A `kerasflow run` killed with SIGKILL mid-training; the next run (in this process) resumes its checkpoint."""
    # checkpoints every 0.5 s at most (default 5): the first lands well before the 80 short epochs end
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "KERASFLOW_HOME": str(tmp_path),
           resume.INTERVAL_ENV: "0.5"}
    client = mlflow.MlflowClient(mlflow_store)
    first = subprocess.Popen(COMMAND, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    old_run, deadline = None, time.monotonic() + 120
    try:
        while time.monotonic() < deadline and first.poll() is None:
            seen = _running_epochs(client)
            if seen and seen[1] >= 3 and _metadata_files(tmp_path):
                old_run = seen[0]
                break
            time.sleep(0.2)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert old_run is not None, "the first run never logged 3 epochs"
    assert _metadata_files(tmp_path), "a checkpoint survives the kill"

    from kerasflow.flows.train import train_flow

    monkeypatch.setenv("KERASFLOW_HOME", str(tmp_path))  # the killed run's checkpoints
    handler = LogLines()
    logging.getLogger("prefect").addHandler(handler)
    try:
        second = train_flow("configs/diabetes.yaml", OVERRIDES)  # the flow `kerasflow run` runs
    finally:
        logging.getLogger("prefect").removeHandler(handler)
    line = next((x for x in handler.lines if "resumed at epoch" in x), "")
    assert line, handler.lines[-30:]
    epoch = int(line.split("resumed at epoch ")[1].split()[0])
    assert 0 < epoch < 80 and f"of 80 (checkpoint of run {old_run})" in line

    new = client.get_run(second.run_id)
    assert new.info.status == "FINISHED"
    assert new.data.tags["kerasflow.resumed_from"] == old_run
    assert new.data.tags["kerasflow.resumed_epoch"] == str(epoch)
    steps = sorted(m.step for m in client.get_metric_history(new.info.run_id, "train/loss"))
    assert steps == list(range(epoch, 80)), "epoch metrics continue at the right steps"
    assert new.data.metrics["train/epochs_run"] == 80
    assert not (tmp_path / ".kerasflow" / "checkpoints" / PIPELINE).exists(), "checkpoints removed on success"


def _data(rows: int = 64) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 4)).astype("float32")
    return {"x": x}, (x.sum(axis=1) > 0).astype("float32")


def _model():
    import keras

    inputs = keras.Input(shape=(4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8)(inputs)))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


class _Kill:
    """Stops the process's training abruptly at the end of `epoch` (before it is checkpointed).

    Args:
        epoch: The 0-based epoch whose end stops the fit.
        pause: `(epoch, seconds)`: the end of that epoch waits so long first. Default none.
    """

    def __init__(self, epoch: int, pause: tuple[int, float] | None = None):
        self.epoch, self.pause = epoch, pause

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        if self.pause and epoch == self.pause[0]:
            time.sleep(self.pause[1])
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_fit_model_continues_from_its_checkpoint_with_the_whole_history(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import_tensorflow()
    monkeypatch.setenv(resume.INTERVAL_ENV, "0")  # a checkpoint at every epoch end
    x, y = _data()
    cfg = TrainingConfig(epochs=10, batch_size=16)
    folder = tmp_path / "ckpt"
    steps: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        fit_model(_model(), x, y, cfg, validation=(x, y), checkpoint=folder, on_epoch=_Kill(4))
    assert resume.completed_epochs(folder) == 4, "the epoch in progress at the kill is not saved"
    assert resume.claim(folder, "run-b") == resume.ResumePoint("", 4), "no writer recorded before"
    assert resume.claim(folder, "run-c") == resume.ResumePoint("run-b", 4)

    result = fit_model(_model(), x, y, cfg, validation=(x, y), checkpoint=folder,
                       on_epoch=lambda epoch, logs: steps.append(epoch))
    assert steps == list(range(4, 10))
    assert result.epochs_run == 10 and len(result.history["val_loss"]) == 10
    resume.clear(folder)
    assert not folder.exists()


def test_checkpoints_are_spaced_by_time_and_a_rerun_resumes_from_the_last(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import_tensorflow()
    x, y = _data()
    cfg = TrainingConfig(epochs=10, batch_size=16)
    folder = tmp_path / "ckpt"
    monkeypatch.setenv(resume.INTERVAL_ENV, "3600")
    with pytest.raises(KeyboardInterrupt):
        fit_model(_model(), x, y, cfg, validation=(x, y), checkpoint=folder, on_epoch=_Kill(4))
    assert resume.completed_epochs(folder) == 0, "no epoch ended an hour after the start"

    monkeypatch.setenv(resume.INTERVAL_ENV, "1")
    resume.empty(folder)
    with pytest.raises(KeyboardInterrupt):  # epoch 1 ends after 1 s: saved; later ones when 1 s has passed again
        fit_model(_model(), x, y, cfg, validation=(x, y), checkpoint=folder, on_epoch=_Kill(3, pause=(1, 1.2)))
    saved = resume.completed_epochs(folder)
    assert 1 <= saved <= 3, saved  # how many of epochs 2-3 came 1 s after the last save depends on the machine

    steps: list[int] = []
    result = fit_model(_model(), x, y, cfg, validation=(x, y), checkpoint=folder,
                       on_epoch=lambda epoch, logs: steps.append(epoch))
    assert steps == list(range(saved, 10)), "the rerun starts after the last checkpoint"
    assert result.epochs_run == 10 and len(result.history["loss"]) == 10


def test_a_bad_checkpoint_interval_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(resume.INTERVAL_ENV, "-1")
    with pytest.raises(ValueError, match=resume.INTERVAL_ENV):
        resume.checkpoint_interval()
    monkeypatch.setenv(resume.INTERVAL_ENV, "")
    assert resume.checkpoint_interval() == resume.DEFAULT_INTERVAL


def test_a_finished_fold_is_saved_and_reused(tmp_path: Path) -> None:
    fold = FoldResult(fold=2, metrics={"loss": 0.5, "accuracy": 0.9}, best_epoch=7, epochs_run=12,
                      predictions={"row": [np.int64(3), np.int64(8)], "fold": [2, 2], "actual": ["a", "b"],
                                   "proba_a": [np.float32(0.25), np.float32(0.5)]})
    from dataclasses import asdict

    root = resume.checkpoint_root("iris", "data", "config")
    folder = resume.fold_checkpoint(tmp_path / root.name, 2, {"model.units": 8})
    assert resume.load_fold_result(folder) is None
    resume.save_fold_result(folder, asdict(fold), "run-a")
    saved, run_id = resume.load_fold_result(folder)
    assert run_id == "run-a" and FoldResult(**saved) == FoldResult(
        fold=2, metrics={"loss": 0.5, "accuracy": 0.9}, best_epoch=7, epochs_run=12,
        predictions={"row": [3, 8], "fold": [2, 2], "actual": ["a", "b"], "proba_a": [0.25, 0.5]})
    assert folder != resume.fold_checkpoint(tmp_path / root.name, 2, None), "other hyperparameters, other folder"
