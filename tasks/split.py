"""Splitting rows into train/val/test or k folds with scikit-learn splitters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task

from kerasflow.data.holdout import split_rows, test_rows_of
from kerasflow.data.split import class_balance
from kerasflow.features.tabular import fit_labels
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs
from kerasflow.tracking import Tracker


@task(name="split-data", retries=0, cache_policy=StepInputs(sections=("data", "split")))
def split_data(tracker: Tracker, config: PipelineConfig, raw_path: str, workdir: str) -> str:
    """Splits rows with scikit-learn and logs sizes and class balance.

    Returns:
        Path of the `Split` JSON.
    """
    frame = pd.read_parquet(raw_path)
    labels = frame[config.data.target]
    classify = fit_labels(labels, config.data.task).task == "classification"
    split = split_rows(labels, config.split, classify=classify, test_rows=test_rows_of(raw_path))
    tracker.metrics(split.sizes(), prefix="split.")
    if classify:
        tracker.json(class_balance(labels, split), "split/class_balance.json")
    return str(split.save(Path(workdir) / "split.json"))
