"""Splitting rows into train/val/test or k folds with scikit-learn splitters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task

from kerasflow.data.holdout import split_rows, test_rows_of
from kerasflow.data.split import class_balance
from kerasflow.data.stream import MANIFEST, StreamManifest, manifest_beside, split_stream
from kerasflow.features.labels import fit_labels
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs
from kerasflow.tracking import Tracker


@task(name="split-data", retries=0, cache_policy=StepInputs(sections=("data", "split")))
def split_data(tracker: Tracker, config: PipelineConfig, raw_path: str, workdir: str) -> str:
    """Splits rows with scikit-learn and logs sizes and class balance.

    Returns:
        Path of the `Split` JSON.
    """
    stream = manifest_beside(raw_path)
    if stream is not None:  # a hash split of every row; the sample is split by the same rule
        return split_streamed(tracker, config, stream, workdir)
    frame = pd.read_parquet(raw_path)
    labels = frame[config.data.target]
    classify = fit_labels(labels, config.data.task).task == "classification"
    split = split_rows(labels, config.split, classify=classify, test_rows=test_rows_of(raw_path))
    tracker.metrics(split.sizes(), prefix="split.")
    if classify:
        tracker.json(class_balance(labels, split), "split/class_balance.json")
    return str(split.save(Path(workdir) / "split.json"))


def split_streamed(tracker: Tracker, config: PipelineConfig, stream: StreamManifest, workdir: str) -> str:
    """Splits a streamed table by a hash of each row number (`kerasflow.data.stream.split_stream`).

    Returns:
        Path of the sample's `Split` JSON, with the stream's manifest (now holding the rule) beside it.
    """
    s = config.split
    ruled, split = split_stream(stream, s.seed, s.test_fraction, s.val_fraction)
    tracker.metrics(ruled.sizes, prefix="split.")
    path = split.save(Path(workdir) / "split.json")
    ruled.save(path.with_name(MANIFEST))
    return str(path)
