"""K-fold cross-validation: folds of the non-test rows, one model per fold.

Each fold fits its own feature statistics on its training rows, trains a
`build_model` network with early stopping on its validation fold and scores
that fold with the same metrics as the test evaluation. The test rows are
never part of a fold. Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.split import Split, split_kfold
from kerasflow.features.labels import LabelSpec
from kerasflow.features.options import preprocessing_options
from kerasflow.features.tabular import FeatureSpec, fit_features
from kerasflow.models.families import build_model, fit_model_inputs
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.evaluate import evaluate_model
from kerasflow.training.final import fixed_hyperparameters, model_spec, search_space_of
from kerasflow.training.fitting import EpochHook, fit_model, set_seed
from kerasflow.training.rows import make_partition


@dataclass(frozen=True)
class CVSummary:
    """What k-fold cross-validation hands to the final fit.

    Args:
        epochs: The refit epoch count: the median of the folds' best epochs.
        folds: The number of folds.
        summary: `{metric: {"mean": ..., "std": ...}}` over the folds.
        models: The fold models' paths (for `split.final: ensemble`), else None each.
    """

    epochs: int
    folds: int
    summary: dict[str, dict[str, float]]
    models: list[str | None]


@dataclass
class FoldResult:
    """What one fold produced.

    Args:
        fold: Fold index.
        metrics: Validation-fold metrics (`loss`, `accuracy`, `f1_macro`, ...).
        best_epoch: 1-based epoch of the best monitored value.
        epochs_run: Epochs actually run.
        predictions: Out-of-fold predictions as columns: `row` (position in
            the raw data), `fold`, `actual`, `prediction` and, for
            classifiers, `proba_<class>`.
        model: The saved fold model (`.keras`), when asked for one.
    """

    fold: int
    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    predictions: dict[str, list[Any]] = field(default_factory=dict)
    model: str | None = None


def make_folds(labels: pd.Series, rows: list[int], *, folds: int, stratify: bool, shuffle: bool,
               seed: int) -> list[tuple[list[int], list[int]]]:
    """Divides some rows into k folds with scikit-learn's splitters.

    Args:
        labels: Label of every raw row.
        rows: Positions to divide (never the test rows).
        folds: Number of folds.
        stratify: Keep class proportions in each fold.
        shuffle: Shuffle before dividing.
        seed: Splitter seed.

    Returns:
        `(train, val)` position lists per fold, as positions of `labels`.

    Raises:
        SplitError: Too few rows or class members for the folds.
    """
    subset = labels.iloc[rows].reset_index(drop=True)
    inner = split_kfold(subset, folds=folds, test_fraction=0.0, stratify=stratify, shuffle=shuffle, seed=seed)
    index = np.asarray(rows)
    return [(sorted(index[t].tolist()), sorted(index[v].tolist())) for t, v in inner.folds]


def search_folds(config: PipelineConfig, frame: pd.DataFrame, split: Split,
                 labels: LabelSpec) -> list[tuple[list[int], list[int]]]:
    """Returns the folds a cross-validated search scores trials on, or [] for a holdout search.

    `tuning.cv_folds` divides the non-test rows into that many folds; a
    k-fold split without it reuses its own folds.

    Args:
        config: The pipeline config with a `tuning` section.
        frame: All raw rows.
        split: The pipeline's split.
        labels: Label spec (stratification is for classifiers only).

    Returns:
        `(train, val)` positions per fold.
    """
    k = config.tuning.cv_folds
    if k is None or (split.folds and k == len(split.folds)):
        return list(split.folds)
    s = config.split
    return make_folds(frame[labels.column], sorted(split.train + split.val), folds=k,
                      stratify=s.stratify and labels.task == "classification", shuffle=s.shuffle, seed=s.seed)


def fold_features(config: PipelineConfig, frame: pd.DataFrame, train_rows: list[int],
                  features: FeatureSpec, labels: LabelSpec) -> FeatureSpec:
    """Refits feature statistics on one fold's training rows.

    Args:
        config: The pipeline config (its `preprocessing` section).
        frame: All raw rows.
        train_rows: The fold's training positions.
        features: The pipeline's spec, for its column lists.
        labels: The label spec (the column target-aware bins are fitted on).

    Returns:
        A `FeatureSpec` with the same columns and the fold's statistics.
    """
    if not isinstance(features, FeatureSpec):  # an image spec refits its own statistics
        return features.refit(frame.iloc[train_rows])
    if features.text:  # text branches refit their vocabularies as well
        return fit_model_inputs(config, frame.iloc[train_rows]).features
    train = frame.iloc[train_rows]
    return fit_features(train, features.numeric, features.categorical, **preprocessing_options(config, train, labels))


def train_fold(config: PipelineConfig, frame: pd.DataFrame, fold_rows: tuple[list[int], list[int]], fold: int,
               features: FeatureSpec, labels: LabelSpec, *, hyperparameters: dict[str, Any] | None = None,
               on_epoch: EpochHook | None = None, checkpoint: str | Path | None = None,
               save_to: str | Path | None = None) -> FoldResult:
    """Trains and scores the model of one fold.

    The seed is set from `training.seed` before building, so a fold gives
    the same result whichever worker, thread or process runs it.

    Args:
        config: The pipeline config.
        frame: All raw rows.
        fold_rows: `(train, val)` positions of the fold.
        fold: The fold's index.
        features: The pipeline's feature spec (columns; statistics are refitted).
        labels: Label spec.
        hyperparameters: Fixed values of searched parameters. Default none.
        on_epoch: Per-epoch hook. Default none.
        checkpoint: Persistent folder of per-epoch checkpoints; an
            interrupted fold resumes from it. Default none.
        save_to: Save the trained fold model there (`.keras`), for an
            ensemble of the folds. Default none.

    Returns:
        The `FoldResult`.
    """
    train_rows, val_rows = fold_rows
    spec = fold_features(config, frame, train_rows, features, labels)
    train = make_partition(frame, train_rows, spec, labels)
    val = make_partition(frame, val_rows, spec, labels)
    set_seed(config.training.seed)
    model = build_model(fixed_hyperparameters(hyperparameters),
                        model_spec(config, spec, labels, search_space_of(hyperparameters)))
    result = fit_model(model, train.x, train.y, config.training, validation=(val.x, val.y), on_epoch=on_epoch,
                       checkpoint=checkpoint)
    evaluation, predictions = evaluate_model(model, val.x, val.raw_y, labels, val.y)
    if isinstance(labels, LabelSpec):  # a multi-output model's predictions carry `<output>.actual` already
        predictions.insert(0, "actual", val.raw_y.to_numpy())
    predictions.insert(0, "fold", fold)
    predictions.insert(0, "row", val_rows)
    if save_to is not None:
        model.save(save_to)
    return FoldResult(fold=fold, metrics=evaluation.metrics, best_epoch=result.best_epoch,
                      epochs_run=result.epochs_run, predictions=predictions.to_dict(orient="list"),
                      model=str(save_to) if save_to is not None else None)


def summarize_folds(results: list[FoldResult]) -> dict[str, dict[str, float]]:
    """Returns the mean and (population) standard deviation of every metric all folds report.

    Args:
        results: One result per fold.

    Returns:
        `{metric: {"mean": ..., "std": ...}}`, including `best_epoch`.
    """
    names = [n for n in results[0].metrics if all(n in r.metrics for r in results)]
    table = {n: np.array([r.metrics[n] for r in results], dtype="float64") for n in names}
    table["best_epoch"] = np.array([r.best_epoch for r in results], dtype="float64")
    summary = {n: {"mean": float(v.mean()), "std": float(v.std())} for n, v in table.items()}
    epochs = table["best_epoch"]
    summary["best_epoch"].update(median=float(np.median(epochs)), min=float(epochs.min()), max=float(epochs.max()))
    return summary


def refit_epochs(results: list[FoldResult]) -> int:
    """Returns the epoch count of a final refit: the median of the folds' best epochs.

    The median, not the mean: best epochs vary widely between folds (one
    fold stopping late pulls the mean up), and the median is the count
    most folds found good. Its spread is logged as `cv.best_epoch.min/max/std`.
    """
    return max(1, int(round(float(np.median([r.best_epoch for r in results])))))


def out_of_fold_predictions(results: list[FoldResult]) -> pd.DataFrame:
    """Stacks every fold's validation predictions, ordered by raw row position."""
    frame = pd.concat([pd.DataFrame(r.predictions) for r in results], ignore_index=True)
    return frame.sort_values("row", kind="stable").reset_index(drop=True)
