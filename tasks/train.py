"""Training the final model with `build_model`, and the fine-tuning phase of transfer learning."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.prepared import Prepared
from kerasflow.heavy import import_tensorflow
from kerasflow.models.families import fine_tuning
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, base_model
from kerasflow.tasks.policies import step_logger
from kerasflow.tasks.progress import EpochProgress
from kerasflow.tracking import Tracker
from kerasflow.training.ensemble import average_models
from kerasflow.training.final import fit_final_model
from kerasflow.training.finetune import fine_tune_saved_model
from kerasflow.training.fitting import plot_history
from kerasflow.training.kinds import kind_of
from kerasflow.training.resume import (
    ResumePoint,
    checkpoint_root,
    clear_checkpoints,
    final_checkpoint,
    writing,
)


@task(name="train-model", retries=0,
      cache_policy=StepInputs(sections=("data", "split", "preprocessing", "model", "training"), files=base_model))
def train_model(tracker: Tracker, config: PipelineConfig, prepared: Prepared, workdir: str,
                hyperparameters: dict[str, Any] | None = None, refit: str = "train",
                epochs: int | None = None, fresh: bool = False) -> str:
    """Builds the model with `build_model` and trains it, logging each epoch once.

    The fit is checkpointed at epoch ends under `.kerasflow/checkpoints/` (see
    `kerasflow.training.resume`): after a kill, the same command resumes at
    the last checkpointed epoch, says so, and tags the run
    `kerasflow.resumed_from` / `kerasflow.resumed_epoch`. The pipeline's
    checkpoints are deleted once the model is trained (finished k-fold
    folds keep their result). Run through `run_step`, the trained model is
    cached: a rerun with the same inputs reuses it.

    Args:
        hyperparameters: Best values from a tuner search, or None.
        refit: `train` fits on the training split with validation;
            `train+val` fits on both for the best epoch count (k-fold and
            tuned pipelines).
        epochs: Epoch count of a `train+val` refit. Default `training.epochs`.
        fresh: Delete the checkpoint of an interrupted run and start at epoch 0. Default false.

    Returns:
        Path of the trained `.keras` model.
    """
    import_tensorflow()

    root = checkpoint_root(config.name, kind_of(config.data).checkpoint_key(prepared.raw), config.fingerprint())
    with writing(final_checkpoint(root, hyperparameters, refit, epochs), tracker.run_id, fresh,
                 step_logger().warning) as (checkpoint, resumed):
        announce_resume(tracker, resumed, epochs or config.training.epochs)
        on_epoch = EpochProgress(tracker.epochs("train."), epochs or config.training.epochs, "train")
        model_path = Path(workdir) / "model.keras"
        try:
            result = fit_final_model(config, prepared.raw, prepared.split, prepared.features, prepared.labels,
                                     model_path, hyperparameters=hyperparameters, refit=refit, epochs=epochs,
                                     on_epoch=on_epoch, checkpoint=checkpoint)
        finally:
            on_epoch.wait()
    clear_checkpoints(root)  # trained and saved: nothing left to resume; finished folds' results stay
    tracker.metrics({"epochs_run": result.epochs_run, "best_epoch": result.best_epoch}, prefix="train.")
    tracker.counts({"replicas": result.replicas}, prefix="train.")
    with tempfile.TemporaryDirectory() as tmp:
        tracker.artifact(str(plot_history(result.history, Path(tmp) / "learning_curve.png")), "train")
    if fine_tuning(config.model) is not None:  # transfer learning phase 2, logged as finetune.*
        fine_tune_phase(tracker, config, prepared, str(model_path), refit=refit,
                        hyperparameters=hyperparameters)
    return str(model_path)


@task(name="assemble-ensemble", retries=0, cache_policy=NO_CACHE)
def assemble_ensemble(tracker: Tracker, config: PipelineConfig, models: list[str], workdir: str) -> str:
    """Averages the k-fold models inside one exported model (`split.final: ensemble`).

    Returns:
        Path of the ensemble's `.keras` model.
    """
    import_tensorflow()

    path = average_models(models, Path(workdir) / "model.keras")
    tracker.params({"final": "ensemble", "members": len(models)}, prefix="cv.")
    step_logger().info(f"final model: the average of the {len(models)} fold models")
    return str(path)


def announce_resume(tracker: Tracker, point: ResumePoint | None, total: int, what: str = "") -> None:
    """Says on the terminal where an interrupted fit resumes and tags the run with it.

    Args:
        tracker: The run that continues the fit.
        point: From `kerasflow.training.resume.claim`; None logs nothing.
        total: The fit's epoch count.
        what: Prefix of the message, e.g. `fold 2/5 `. Default none.
    """
    if point is None:
        return
    step_logger().info(f"{what}resumed at epoch {point.epoch} of {total}"
                          + (f" (checkpoint of run {point.run_id})" if point.run_id else ""))
    tracker.tags({"kerasflow.resumed_from": point.run_id, "kerasflow.resumed_epoch": point.epoch})


def fine_tune_phase(tracker: Tracker, config: PipelineConfig, prepared: Any, model_path: str, *,
                    refit: str = "train", hyperparameters: dict[str, Any] | None = None) -> None:
    """Runs phase 2 of transfer learning on the trained model file, logging it under `finetune.`.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config; `model.base.fine_tune` is set.
        prepared: The `Prepared` paths.
        model_path: The phase-1 `.keras` file, replaced by the fine-tuned model.
        refit: As for the train step. Default `train`.
        hyperparameters: Tuned values, or None.
    """

    on_epoch = EpochProgress(lambda epoch, logs: tracker.metrics(logs, prefix="finetune.", step=epoch),
                             fine_tuning(config.model).epochs, "fine-tune")

    try:
        result, unfrozen = fine_tune_saved_model(config, prepared.raw, prepared.split, prepared.features,
                                                 prepared.labels, model_path, refit=refit,
                                                 hyperparameters=hyperparameters, on_epoch=on_epoch)
    finally:
        on_epoch.close()
    tracker.metrics({"epochs_run": result.epochs_run, "best_epoch": result.best_epoch}, prefix="finetune.")
    tracker.counts({"unfrozen_layers": len(unfrozen)}, prefix="finetune.")
    tracker.params({"unfrozen": unfrozen}, prefix="finetune.")
    with tempfile.TemporaryDirectory() as tmp:
        tracker.artifact(str(plot_history(result.history, Path(tmp) / "learning_curve.png")), "finetune")
