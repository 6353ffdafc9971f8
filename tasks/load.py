"""Loading the raw data (tables or image folders), fingerprinting it and logging it as the run's input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.holdout import append_test_rows, save_raw
from kerasflow.data.images import (
    FILE_COLUMN,
    fingerprint_listing,
    is_image_folder,
    scan_image_folder,
)
from kerasflow.data.load import fingerprint_frame, load_frame, resolve_source
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker


@task(name="load-data", retries=2, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def load_data(tracker: Tracker, config: PipelineConfig, workdir: str) -> str:
    """Loads the raw data, fingerprints it and logs it as the run's input.

    Returns:
        Path of the raw rows as Parquet in `workdir`.
    """

    if config.data.image is not None and is_image_folder(config.data.source):
        return load_image_folder(tracker, config, workdir)
    source = resolve_source(config.data.source)
    frame, test_rows = load_frame(source), 0
    if config.data.test_source:  # a given test file: its rows are appended and become the test split
        frame, test_rows, test_source = append_test_rows(frame, config.data.test_source)
    digest = fingerprint_frame(frame)
    tracker.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": source})
    tracker.metrics({"rows": len(frame), "columns": frame.shape[1]}, prefix="data.")
    if test_rows:
        tracker.tags({"kerasflow.test_source": test_source})
        tracker.metrics({"test_rows": test_rows}, prefix="data.")
    tracker.dataset(frame, source=source, digest=digest, target=config.data.target)
    path = Path(workdir) / "raw.parquet"
    if test_rows:
        save_raw(frame, path, test_rows)
    else:
        frame.to_parquet(path, index=False)
    return str(path)


SIDECAR_SUFFIX = ".images.json"


def load_image_folder(tracker: Tracker, config: PipelineConfig, workdir: str) -> str:
    """Lists and decodes every file of an image folder, fingerprints it and logs it as the run's input.

    With `on_corrupt: skip`, unusable files are left out of the listing
    here and reported by the image check; with `fail` they stay in it, so
    the check rejects them by name.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config (`data.source` is a folder).
        workdir: The run's scratch folder.

    Returns:
        Path of the listing (Parquet, one row per file), with a sidecar
        JSON holding the class folders and skipped files.

    Raises:
        ImageDataError: The folder is missing or unusable as a whole.
    """
    data, image = config.data, config.data.image
    folder = scan_image_folder(data.source, data.target, image.extensions)
    frame = folder.frame
    skipped = []
    if image.on_corrupt == "skip":
        bad = frame["problem"].notna()
        skipped = [f"{row.file}: {row.problem}" for row in frame[bad].itertuples()]
        frame = frame[~bad].reset_index(drop=True)
    digest = fingerprint_listing(folder.frame)
    tracker.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": folder.root})
    tracker.metrics({"rows": len(frame), "files": len(folder.frame),
                                          "classes": len(folder.classes)}, prefix="data.")
    tracker.dataset(frame[[FILE_COLUMN, data.target, "width", "height", "channels"]], source=folder.root, digest=digest, target=data.target)
    path = Path(workdir) / "raw.parquet"
    pd.DataFrame(frame).to_parquet(path, index=False)
    sidecar_path(path).write_text(json.dumps({"root": folder.root, "classes": folder.classes, "skipped": skipped}))
    return str(path)


def sidecar_path(raw_path: Path) -> Path:
    """Returns the JSON beside an image listing that holds its root, classes and skipped files."""
    return raw_path.with_suffix(SIDECAR_SUFFIX)
