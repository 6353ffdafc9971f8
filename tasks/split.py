"""Splitting rows into train/val/test or k folds with scikit-learn splitters."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.holdout import split_with_test, test_rows_of
from kerasflow.data.split import class_balance, split_holdout, split_kfold
from kerasflow.features.tabular import fit_labels
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tracking import Tracker


@task(name="split-data", retries=0, cache_policy=NO_CACHE)
def split_data(tracker: Tracker, config: PipelineConfig, raw_path: str, workdir: str) -> str:
    """Splits rows with scikit-learn and logs sizes and class balance.

    Returns:
        Path of the `Split` JSON.
    """
    import pandas as pd

    frame = pd.read_parquet(raw_path)
    labels = frame[config.data.target]
    s = config.split
    classify = fit_labels(labels, config.data.task).task == "classification"
    stratify = s.stratify and classify
    if test_rows_of(raw_path):  # data.test_source: its rows are the test set
        split = split_with_test(labels, test_rows_of(raw_path), kind=s.kind, val_fraction=s.val_fraction,
                                folds=s.folds, stratify=stratify, shuffle=s.shuffle, seed=s.seed)
    elif s.kind == "kfold":
        split = split_kfold(labels, folds=s.folds, test_fraction=s.test_fraction, stratify=stratify,
                            shuffle=s.shuffle, seed=s.seed)
    else:
        split = split_holdout(labels, test_fraction=s.test_fraction, val_fraction=s.val_fraction,
                              stratify=stratify, shuffle=s.shuffle, seed=s.seed)
    tracker.metrics(split.sizes(), prefix="split.")
    if classify:
        tracker.json(class_balance(labels, split), "split/class_balance.json")
    return str(split.save(Path(workdir) / "split.json"))
