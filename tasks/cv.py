"""K-fold cross-validation: one task per fold and their summary."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.data.load import fingerprint_frame
from kerasflow.data.prepared import Prepared
from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.heavy import import_tensorflow
from kerasflow.progress import status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger
from kerasflow.tasks.progress import EpochProgress
from kerasflow.tasks.train import announce_resume
from kerasflow.tracking import Tracker
from kerasflow.training.cv import CVSummary, FoldResult, out_of_fold_predictions, refit_epochs
from kerasflow.training.cv import summarize_folds as summarize
from kerasflow.training.cv import train_fold as fit_fold
from kerasflow.training.resume import (
    FOLD_MODEL,
    checkpoint_root,
    clear,
    fold_checkpoint,
    in_use,
    load_fold_result,
    save_fold_result,
    writing,
)


@task(name="train-fold", retries=0, cache_policy=NO_CACHE)
def train_fold(tracker: Tracker, config: PipelineConfig, prepared: Prepared, fold: int,
               hyperparameters: dict[str, Any] | None = None, fresh: bool = False) -> dict[str, Any]:
    """Trains and scores one fold of a k-fold split as a nested run.

    Safe to run on any task runner: it reads its inputs from paths, seeds
    itself, and logs into its own nested run. The fold checkpoints every
    epoch and keeps its result under `.kerasflow/checkpoints/` (see
    `kerasflow.training.resume`): after a kill, a rerun reuses a finished
    fold and resumes an unfinished one at its last completed epoch.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config.
        prepared: Paths from the data steps; the split has `folds`.
        fold: The fold's index.
        hyperparameters: Fixed values from a search. Default none.
        fresh: Delete the fold's saved result and checkpoint first. Default false.

    Returns:
        The fold's `kerasflow.training.cv.FoldResult` as a dict.
    """
    import_tensorflow()

    split = Split.load(prepared.split)
    train_rows, val_rows = split.folds[fold]
    frame = pd.read_parquet(prepared.raw)
    checkpoint = fold_checkpoint(checkpoint_root(config.name, fingerprint_frame(frame), config.fingerprint()),
                                 fold, hyperparameters)
    if fresh and not in_use(checkpoint):  # never the folder another live run trains in
        clear(checkpoint)
    name = f"fold {fold + 1}/{len(split.folds)}"
    with tracking.nested_run(tracker, f"fold-{fold}", "fold", {"kerasflow.fold": str(fold)}) as child:
        child.params({"fold": fold, "train_rows": len(train_rows), "val_rows": len(val_rows), **(hyperparameters or {})})
        saved = load_fold_result(checkpoint)
        ensemble = config.split.final == "ensemble"
        if saved is not None and ensemble and not Path(saved[0].get("model") or "").is_file():
            saved = None  # the fold's model is needed for the ensemble: train it again
        if saved is not None:
            result = FoldResult(**saved[0])
            step_logger().info(f"{name} reused from the interrupted run {saved[1]}".rstrip())
            child.tags({"kerasflow.reused_from": saved[1]})
        else:
            with writing(checkpoint, child.run_id, notice=step_logger().warning) as (folder, resumed):
                announce_resume(child, resumed, config.training.epochs, f"{name} ")
                progress = EpochProgress(lambda epoch, logs: child.metrics(logs, prefix="train.", step=epoch),
                                         config.training.epochs, name, concurrent=concurrent_folds(config))
                try:
                    with status(f"training {name}"):  # named by the heartbeat while no epoch line comes
                        result = fit_fold(config, frame, split.folds[fold], fold,
                                          FeatureSpec.load(prepared.features), LabelSpec.load(prepared.labels),
                                          hyperparameters=hyperparameters, checkpoint=folder, on_epoch=progress,
                                          save_to=folder / FOLD_MODEL if ensemble else None)
                finally:
                    progress.close()
                save_fold_result(folder, asdict(result), child.run_id)
        child.metrics(result.metrics, prefix="val.")
        child.metrics({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run}, prefix="train.")
    return asdict(result)


def concurrent_folds(config: PipelineConfig) -> int:
    """How many folds train at once in this process, whose progress lines share the terminal.

    Args:
        config: The pipeline config (`runner`, `split.folds`).

    Returns:
        `runner.n_workers`, at most the fold count, when the folds run in threads of this process
        (`kind: local`, or a local Dask cluster of threads); 1 when each runs in a worker process.
    """
    runner = config.runner
    threads = runner.kind == "local" or (not runner.processes and not runner.address)
    return min(runner.n_workers, config.split.folds) if threads else 1


@task(name="summarize-folds", retries=0, cache_policy=NO_CACHE)
def summarize_folds(tracker: Tracker, config: PipelineConfig, results: list[dict[str, Any]]) -> CVSummary:
    """Logs the folds' mean and standard deviation and the out-of-fold predictions.

    Metrics go to the pipeline run as `cv.<metric>.mean` and
    `cv.<metric>.std`; artifacts are `cv/oof_predictions.csv` and
    `cv/folds.csv`.

    Returns:
        A `CVSummary`: the refit epoch count (median best epoch), k, each
        metric's mean and std, and the fold models' paths (for
        `split.final: ensemble`, else None each).
    """
    folds = sorted((FoldResult(**r) for r in results), key=lambda r: r.fold)
    summary = summarize(folds)
    flat = {f"{name}.{stat}": value for name, stats in summary.items() for stat, value in stats.items()}
    tracker.metrics(flat, prefix="cv.")
    with tempfile.TemporaryDirectory() as tmp:
        out_of_fold_predictions(folds).to_csv(Path(tmp) / "oof_predictions.csv", index=False)
        tracker.artifact(str(Path(tmp) / "oof_predictions.csv"), "cv")
        table = [{"fold": r.fold, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run, **r.metrics} for r in folds]
        pd.DataFrame(table).to_csv(Path(tmp) / "folds.csv", index=False)
        tracker.artifact(str(Path(tmp) / "folds.csv"), "cv")
    return CVSummary(epochs=refit_epochs(folds), folds=len(folds), summary=summary, models=[r.model for r in folds])
