"""Splitting rows into train/val/test or k folds with scikit-learn splitters (a stream: by a hash of each row)."""

from __future__ import annotations

from prefect import task

from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs
from kerasflow.tasks.steplog import StepLog
from kerasflow.tracking import Tracker
from kerasflow.training.kinds import kind_of


@task(name="split-data", retries=0, cache_policy=StepInputs(sections=("data", "split")))
def split_data(tracker: Tracker, config: PipelineConfig, raw_path: str, workdir: str) -> str:
    """Splits rows with scikit-learn and logs sizes and class balance.

    A streamed table is split by a hash of each row number; the sample is
    split by the same rule (`kerasflow.training.kinds.stream`).

    Returns:
        Path of the `Split` JSON.
    """
    return kind_of(config.data).split(config, raw_path, workdir, StepLog(tracker))
