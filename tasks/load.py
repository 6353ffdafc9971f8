"""Loading the raw data (a table, a stream or an image folder), fingerprinting it and logging it as the input."""

from __future__ import annotations

from typing import Any

from prefect import task

from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import NOT_KEYED, StepInputs, data_files
from kerasflow.tasks.policies import transient
from kerasflow.tasks.steplog import StepLog
from kerasflow.tracking import Tracker
from kerasflow.training.kinds import kind_of


@task(name="load-data", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=StepInputs(sections=("data",), files=data_files, exclude=NOT_KEYED | {"read"}))
def load_data(tracker: Tracker, config: PipelineConfig, workdir: str, read: Any = None) -> str:
    """Loads the raw data, checks the data contract, fingerprints the rows and logs them as the run's input.

    How depends on the data kind (`kerasflow.training.kinds`): a table is
    read and checked in memory, a stream is scanned shard by shard (the
    contract on a sample), an image folder is listed and decoded file by file.
    Rows the flow already read (`read`, from `choose-defaults`) are not read
    again; they are the configured sources' rows, which the key covers.

    Returns:
        Path of the raw rows as Parquet in `workdir`.

    Raises:
        DataLoadError: A file cannot be read.
        DataContractError: The rows break the contract; the report is logged first.
        ImageDataError: An image folder is missing or unusable as a whole.
    """
    return kind_of(config.data).load(config, workdir, StepLog(tracker), read=read)
