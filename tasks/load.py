"""Loading the raw data (tables or image folders), fingerprinting it and logging it as the run's input."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from kerasflow.data.contract import (
    ContractReport,
    check_contract,
    dropped_metadata,
    label_columns,
    read_sources,
    require_contract,
    unreadable_report,
)
from kerasflow.data.holdout import save_raw
from kerasflow.data.images import (
    FILE_COLUMN,
    ImageFolder,
    fingerprint_listing,
    is_image_folder,
    scan_image_folders,
)
from kerasflow.data.load import DataLoadError, Table, fingerprint_frame, resolve_source
from kerasflow.data.stream import (
    MANIFEST,
    StreamManifest,
    check_scan,
    sample_stride,
    scan_stream,
    stream_files,
)
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, data_files
from kerasflow.tasks.policies import step_logger, transient
from kerasflow.tracking import Tracker


@task(name="load-data", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=StepInputs(sections=("data",), files=data_files))
def load_data(tracker: Tracker, config: PipelineConfig, workdir: str) -> str:
    """Loads the raw data, checks the data contract, fingerprints the rows and logs them as the run's input.

    Returns:
        Path of the raw rows as Parquet in `workdir`.

    Raises:
        DataLoadError: A file cannot be read.
        DataContractError: The rows break the contract; the report is logged first.
    """

    if config.data.image is not None and is_image_folder(config.data.source):
        return load_image_folder(tracker, config, workdir)
    if config.data.streaming:
        return load_stream(tracker, config, workdir)
    try:
        tables = read_sources(config)
    except DataLoadError as exc:  # unreadable: the report still says which file and what to do
        log_contract(tracker, unreadable_report(exc))
        raise
    report = check_contract(config, *tables)
    log_contract(tracker, report)
    frame, test_rows = require_contract(report).frame, report.test_rows
    source = report_source(config)
    digest = fingerprint_frame(frame)
    tracker.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": source})
    tracker.metrics({"rows": len(frame), "columns": frame.shape[1]}, prefix="data.")
    if test_rows:
        tracker.tags({"kerasflow.test_source": resolve_source(config.data.test_source)})
        tracker.metrics({"test_rows": test_rows}, prefix="data.")
    tracker.dataset(frame, source=source, digest=digest, target=label_columns(config)[0][0])
    path = Path(workdir) / "raw.parquet"
    save_raw(frame, path, test_rows, dropped_metadata(report.dropped))
    return str(path)


def load_stream(tracker: Tracker, config: PipelineConfig, workdir: str) -> str:
    """Scans a streamed table once: exact counts over every row, the contract on an evenly spaced sample.

    Returns:
        Path of the sample as Parquet in `workdir`, with the stream's
        manifest beside it (`kerasflow.data.stream`).

    Raises:
        DataLoadError: No Parquet shards, or the label column is missing.
        DataContractError: The sample breaks the contract, or the full pass
            finds missing labels, one class or (under `non_finite: fail`)
            infinite values; the report is logged first.
    """
    files = stream_files(config.data.source)
    scan, sample = scan_stream(files, config.data.target)
    report = check_contract(config, Table(sample, source=config.data.source))
    report.findings += check_scan(scan, config.data.target, config.data.task, config.preprocessing.non_finite,
                                  config.data.source)
    log_contract(tracker, report)
    frame = require_contract(report).frame
    digest = scan.digest
    tracker.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": config.data.source,
                  "kerasflow.streaming": "true"})
    tracker.metrics({"rows": scan.rows, "columns": frame.shape[1], "files": len(files), "sample_rows": len(frame)},
                    prefix="data.")
    tracker.dataset(frame, source=config.data.source, digest=digest, target=config.data.target, rows=scan.rows)
    manifest = StreamManifest(files=files, scan=scan, stride=sample_stride(scan.rows))
    path = Path(workdir) / "raw.parquet"
    save_raw(frame, path, 0, dropped_metadata(report.dropped))
    manifest.save(path.with_name(MANIFEST))
    return str(path)


def log_contract(tracker: Tracker, report: ContractReport) -> None:
    """Logs the contract report (`contract/report.json` and `.txt`) and shows its warnings.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        report: The contract report.
    """
    tracker.json(report.as_dict(), "contract/report.json")
    tracker.text(report.summary(), "contract/report.txt")
    tracker.metrics({"errors": len(report.errors), "warnings": len(report.warnings)}, prefix="contract.")
    logger = step_logger()
    for finding in report.warnings:
        logger.warning(str(finding))


def report_source(config: PipelineConfig) -> str:
    """The resolved `data.source`: the built-in name or the file read."""
    return resolve_source(config.data.source)


SIDECAR_SUFFIX = ".images.parquet"


def load_image_folder(tracker: Tracker, config: PipelineConfig, workdir: str) -> str:
    """Lists and decodes every file of an image folder (and test folder), fingerprints them and logs the input.

    With `data.test_source` (a folder of the same class subfolders), its
    files follow the training files and are recorded as the test rows, so
    the split makes exactly them the test set. With `on_corrupt: skip`,
    unusable files are left out of the raw rows here and reported by the
    image check; with `fail` they stay in, so the check rejects them by
    name. The full listing is kept beside the raw rows for the check.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config (`data.source` is a folder).
        workdir: The run's scratch folder.

    Returns:
        Path of the raw rows (Parquet, one row per file, test files last).

    Raises:
        ImageDataError: A folder is missing or unusable as a whole.
    """
    data, image = config.data, config.data.image
    folder = scan_image_folders(data.source, data.target, image.extensions, test_source=data.test_source)
    rows = folder.usable() if image.on_corrupt == "skip" else folder
    digest = fingerprint_listing(folder.frame)
    tracker.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": folder.root})
    tracker.metrics({"rows": len(rows.frame), "files": len(folder.frame), "classes": len(folder.classes)},
                    prefix="data.")
    if folder.test_root is not None:
        log_test_folder(tracker, folder, rows.test_rows)
    tracker.dataset(rows.frame[[FILE_COLUMN, data.target, "width", "height", "channels"]], source=folder.root,
                    digest=digest, target=data.target)
    path = Path(workdir) / "raw.parquet"
    save_raw(rows.frame, path, rows.test_rows)
    folder.save(sidecar_path(path))
    return str(path)


def sidecar_path(raw_path: Path) -> Path:
    """Returns the full image listing kept beside the raw rows (every file found, with its folders and classes)."""
    return raw_path.with_suffix(SIDECAR_SUFFIX)


def log_test_folder(tracker: Tracker, folder: ImageFolder, test_rows: int) -> None:
    """Records the test folder of an image listing: its path as a tag, its file and row counts as metrics.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        folder: The full listing, with `test_root` set.
        test_rows: Usable test files, which make the test split.
    """
    tracker.tags({"kerasflow.test_source": folder.test_root})
    tracker.metrics({"test_rows": test_rows, "test_files": folder.test_rows}, prefix="data.")
