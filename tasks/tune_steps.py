"""Prefect task boundaries of hyperparameter search and k-fold cross-validation.

Like `kerasflow.tasks.steps`, each task reads its inputs from paths, calls the plain
functions of `kerasflow.training.tune` or `kerasflow.training.cv`, and logs to MLflow with explicit
run ids. Every trial and every fold is a nested run under the pipeline run
(tag `mlflow.parentRunId`).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.quiet import import_tensorflow
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.steps import Prepared

PARENT_TAG = "mlflow.parentRunId"


class MlflowTrialLogger:
    """A `kerasflow.training.tune.TrialHook` that tracks each trial as a nested MLflow run.

    Args:
        client: An `MlflowClient`.
        parent_run_id: The pipeline run.
        experiment_id: Its experiment.
    """

    def __init__(self, client: Any, parent_run_id: str, experiment_id: str):
        self.client, self.parent, self.experiment_id = client, parent_run_id, experiment_id
        self.runs: dict[str, str] = {}

    def trial_started(self, trial_id: str, values: dict[str, Any]) -> None:
        """Opens the trial's run and logs its hyperparameters as params."""
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{trial_id}", tags={
            PARENT_TAG: self.parent, tracking.RUN_KIND_TAG: "trial", "kerasflow.trial_id": trial_id})
        self.runs[trial_id] = run.info.run_id
        tracking.log_params(self.client, run.info.run_id, values)

    def epoch_ended(self, trial_id: str, label: str, epoch: int, logs: dict[str, float]) -> None:
        """Logs one epoch's metrics, prefixed by fold/execution when there are several."""
        tracking.log_metrics(self.client, self.runs[trial_id], logs, prefix=f"{label}." if label else "", step=epoch)

    def fold_ended(self, trial_id: str, fold: int, score: float, best_epoch: int) -> None:
        """Logs the score and best epoch of one fold (or execution)."""
        tracking.log_metrics(self.client, self.runs[trial_id], {"score": score, "best_epoch": best_epoch},
                             prefix=f"fold_{fold}.")

    def trial_ended(self, record: Any) -> None:
        """Logs the trial's score and status and closes its run."""
        run_id = self.runs.get(record.trial_id)
        if run_id is None:
            return
        tracking.log_metrics(self.client, run_id, {"score": record.score, "best_epoch": record.best_epoch})
        self.client.set_tag(run_id, "kerasflow.trial_status", record.status)
        if record.message:
            self.client.log_text(run_id, record.message, "errors/trial_error.txt")
        self.client.set_terminated(run_id, "FINISHED" if record.status == "COMPLETED" else "FAILED")

    def trial_interrupted(self, trial_id: str, error: BaseException) -> None:
        """Marks the trial's run KILLED; the resumed search runs the trial again."""
        run_id = self.runs.get(trial_id)
        if run_id is not None:
            self.client.set_tag(run_id, "kerasflow.trial_status", f"INTERRUPTED: {type(error).__name__}")
            self.client.set_terminated(run_id, "KILLED")


def refit_plan(config: PipelineConfig, tuned: dict[str, Any] | None, cv: dict[str, Any] | None) -> dict[str, Any]:
    """Decides how the final model is trained after a search and/or cross-validation.

    Args:
        config: The pipeline config.
        tuned: Output of `search_hyperparameters`, or None.
        cv: Output of `summarize_folds`, or None.

    Returns:
        `train_model` keyword arguments `refit` and `epochs`: k-fold refits
        on all non-test rows for the folds' mean best epoch; a search
        follows `tuning.refit` with the best trial's epoch count; otherwise
        the training rows with early stopping.
    """
    if cv is not None:
        return {"refit": "train+val", "epochs": cv["epochs"]}
    if tuned is not None:
        return {"refit": config.tuning.refit, "epochs": tuned["epochs"]}
    return {"refit": "train", "epochs": None}


@task(name="search-hyperparameters", retries=0, cache_policy=NO_CACHE)
def search_hyperparameters(run_id: str, config: PipelineConfig, prepared: Prepared,
                           fresh: bool = False) -> dict[str, Any]:
    """Runs or resumes the configured tuner search on train/validation rows only.

    Each trial becomes a nested run; the pipeline run gets the best values
    (`tune.best.<name>` params), the trials table (`tuning/trials.csv`) and
    the score plot (`tuning/scores.png`).

    Args:
        run_id: The pipeline run.
        config: The pipeline config; it must have a `tuning` section.
        prepared: Paths from the data steps.
        fresh: Discard saved tuner state and start over. Default false.

    Returns:
        `{"hyperparameters", "epochs", "score", "objective", "direction",
        "trials", "new_trials", "directory", "summary"}`.

    Raises:
        TuningError: No `tuning` section, an objective the model does not
            report, stale state without `fresh`, or no completed trial.
    """
    import pandas as pd

    import_tensorflow()
    from kerasflow.data.load import fingerprint_frame
    from kerasflow.features.tabular import FeatureSpec, LabelSpec
    from kerasflow.data.split import Split
    from kerasflow.training.tune import (TuningError, plot_scores, run_search, search_data, search_fingerprint, summary_table,
                            trials_frame)

    if config.tuning is None:
        raise TuningError("the config has no tuning section: add one with a search space (see configs/wine_tuned.yaml)")
    frame = pd.read_parquet(prepared.raw)
    data = search_data(config, frame, Split.load(prepared.split), FeatureSpec.load(prepared.features),
                       LabelSpec.load(prepared.labels))
    client = tracking.configure(config.registry.tracking_uri)
    hook = MlflowTrialLogger(client, run_id, client.get_run(run_id).info.experiment_id)
    project = config.tuning.project_dir(config.name)
    result = run_search(config, data, project, fingerprint=search_fingerprint(config, fingerprint_frame(frame)),
                        fresh=fresh, hook=hook)
    summary = summary_table(result.trials, result.objective, result.direction)
    tracking.log_params(client, run_id, result.best_values, prefix="tune.best.")
    tracking.log_metrics(client, run_id, {"best_score": result.best_score, "best_epoch": result.best_epoch,
                                          "trials": len(result.trials), "new_trials": result.new_trials,
                                          "folds": len(data.folds)}, prefix="tune.")
    client.set_tag(run_id, "kerasflow.tuning_dir", str(Path(project).resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        trials_frame(result.trials).to_csv(Path(tmp) / "trials.csv", index=False)
        client.log_artifact(run_id, str(Path(tmp) / "trials.csv"), "tuning")
        plot = plot_scores(result.trials, result.objective, result.direction, Path(tmp) / "scores.png")
        client.log_artifact(run_id, str(plot), "tuning")
    client.log_text(run_id, summary + "\n", "tuning/summary.txt")
    return {"hyperparameters": result.best_values, "epochs": result.best_epoch, "score": result.best_score,
            "objective": result.objective, "direction": result.direction, "new_trials": result.new_trials,
            "trials": [asdict(t) for t in result.trials], "directory": project, "summary": summary}


@task(name="train-fold", retries=0, cache_policy=NO_CACHE)
def train_fold(run_id: str, config: PipelineConfig, prepared: Prepared, fold: int,
               hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains and scores one fold of a k-fold split as a nested run.

    Safe to run on any task runner: it reads its inputs from paths, seeds
    itself, and logs through its own client.

    Args:
        run_id: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps; the split has `folds`.
        fold: The fold's index.
        hyperparameters: Fixed values from a search. Default none.

    Returns:
        The fold's `kerasflow.training.cv.FoldResult` as a dict.
    """
    import pandas as pd

    import_tensorflow()
    from kerasflow.training.cv import train_fold as fit_fold
    from kerasflow.features.tabular import FeatureSpec, LabelSpec
    from kerasflow.data.split import Split

    split = Split.load(prepared.split)
    client = tracking.configure(config.registry.tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    child = client.create_run(experiment_id, run_name=f"fold-{fold}", tags={
        PARENT_TAG: run_id, tracking.RUN_KIND_TAG: "fold", "kerasflow.fold": str(fold)}).info.run_id
    try:
        train_rows, val_rows = split.folds[fold]
        tracking.log_params(client, child, {"fold": fold, "train_rows": len(train_rows), "val_rows": len(val_rows),
                                            **(hyperparameters or {})})

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            tracking.log_metrics(client, child, logs, prefix="train.", step=epoch)

        result = fit_fold(config, pd.read_parquet(prepared.raw), split.folds[fold], fold,
                          FeatureSpec.load(prepared.features), LabelSpec.load(prepared.labels),
                          hyperparameters=hyperparameters, on_epoch=on_epoch)
        tracking.log_metrics(client, child, result.metrics, prefix="val.")
        tracking.log_metrics(client, child, {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run},
                             prefix="train.")
    except BaseException as exc:
        tracking.fail_run(client, child, exc)
        raise
    client.set_terminated(child, "FINISHED")
    return asdict(result)


@task(name="summarize-folds", retries=0, cache_policy=NO_CACHE)
def summarize_folds(run_id: str, config: PipelineConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Logs the folds' mean and standard deviation and the out-of-fold predictions.

    Metrics go to the pipeline run as `cv.<metric>.mean` and
    `cv.<metric>.std`; artifacts are `cv/oof_predictions.csv` and
    `cv/folds.csv`.

    Returns:
        `{"epochs": refit epoch count, "folds": k, "summary": {metric: {mean, std}}}`.
    """
    import pandas as pd

    from kerasflow.training.cv import FoldResult, out_of_fold_predictions, refit_epochs
    from kerasflow.training.cv import summarize_folds as summarize

    folds = sorted((FoldResult(**r) for r in results), key=lambda r: r.fold)
    summary = summarize(folds)
    client = tracking.configure(config.registry.tracking_uri)
    flat = {f"{name}.{stat}": value for name, stats in summary.items() for stat, value in stats.items()}
    tracking.log_metrics(client, run_id, flat, prefix="cv.")
    with tempfile.TemporaryDirectory() as tmp:
        out_of_fold_predictions(folds).to_csv(Path(tmp) / "oof_predictions.csv", index=False)
        client.log_artifact(run_id, str(Path(tmp) / "oof_predictions.csv"), "cv")
        table = [{"fold": r.fold, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run, **r.metrics} for r in folds]
        pd.DataFrame(table).to_csv(Path(tmp) / "folds.csv", index=False)
        client.log_artifact(run_id, str(Path(tmp) / "folds.csv"), "cv")
    return {"epochs": refit_epochs(folds), "folds": len(folds), "summary": summary}
