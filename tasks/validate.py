"""Checking the raw data: the expectation suite (Great Expectations) and, for images, every file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task

from kerasflow.data.images import (
    ImageFolder,
    ImageReport,
    check_image_folder,
    check_pixel_frame,
    is_image_folder,
    require_valid_images,
)
from kerasflow.data.isolation import run_validation
from kerasflow.data.validate import load_suite, require_valid, validate_file
from kerasflow.models.families import pretrained_base
from kerasflow.quiet import prefetch_light
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, suite_file
from kerasflow.tasks.load import sidecar_path
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import Tracker
from kerasflow.tracking.registry import check_base_reference


@task(name="validate-data", retries=0, cache_policy=StepInputs(sections=("data", "validation"), files=suite_file))
def validate_data(tracker: Tracker, config: PipelineConfig, raw_path: str, skip_columns: list[str] | None = None) -> bool:
    """Runs the Great Expectations suite and attaches its result and Data Docs.

    Returns:
        True when the data passed (or no suite is configured).

    Raises:
        DataValidationError: The data failed and `on_failure` is `fail`;
            the message lists every violated expectation.
    """

    if config.data.image is not None:  # files by name, channels, class folders, sizes (kerasflow/data/images.py)
        check_images(tracker, config, raw_path)
    if config.validation.suite is None:
        return True
    report = run_validation(validate_file, raw_path, load_suite(config.validation.suite),
                            skip_columns=skip_columns or [], while_waiting=prefetch_light)
    tracker.json(report.result, "validation/result.json")
    tracker.text(report.html, "validation/data_docs.html")
    tracker.text(report.summary(), "validation/summary.txt")
    tracker.metrics({"expectations": report.evaluated, "failed": len(report.violations),
                                          "success": float(report.success)}, prefix="validation.")
    if config.validation.on_failure == "fail":
        require_valid(report)
    return report.success


def check_images(tracker: Tracker, config: PipelineConfig, raw_path: str) -> ImageReport:
    """Checks image data before any training and logs the report and statistics.

    Folder sources (and a test folder, `data.test_source`): unreadable,
    corrupt and non-image files, files with another channel count, class
    folders without usable images and test classes the training folder has
    no images of are named one by one. Pixel tables: the column count must
    match the image shape, and pixels must be present and non-negative. A
    configured base model must exist. Counts per class and image-size
    statistics are logged as `images.*` metrics and `images/report.json`;
    warnings and skipped files (the first ten, by name) are shown on the
    terminal and in the Prefect UI.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config with `data.image`.
        raw_path: The listing or table from the load step.

    Returns:
        The `ImageReport`.

    Raises:
        ImageDataError: Any rule is violated; every problem file is listed.
        BaseModelError: The configured base model cannot be found.
    """
    data, image = config.data, config.data.image
    if is_image_folder(data.source):
        folder = ImageFolder.load(sidecar_path(Path(raw_path)))
        report = check_image_folder(folder, image.channels, on_corrupt=image.on_corrupt,
                                    on_channel_mismatch=image.on_channel_mismatch)
        where = folder.root
    else:
        frame = pd.read_parquet(raw_path)
        columns = data.features or [c for c in frame.columns if c != data.target]
        report = check_pixel_frame(frame, data.target, columns, image.shape)
        where = data.source
    client = tracker.client
    _log_report(tracker, report)
    base = pretrained_base(config.model)
    if base is not None:
        tracker.tags({"kerasflow.base_model": check_base_reference(client, base)})
    require_valid_images(report, where)
    return report


def _log_report(tracker: Tracker, report: ImageReport) -> None:
    stats = report.statistics
    tracker.json({"passed": report.passed, "problems": report.problems, "warnings": report.warnings,
                  "skipped": report.skipped, "statistics": stats}, "images/report.json")
    tracker.text(report.summary(), "images/summary.txt")
    metrics = {"images": stats.get("images", len(report.kept)), "problems": len(report.problems),
               "skipped": len(report.skipped), "warnings": len(report.warnings),
               "classes": len(stats.get("classes", {}))}
    metrics.update({f"class.{_safe(name)}": count for name, count in stats.get("classes", {}).items()})
    for dim in ("width", "height"):
        if isinstance(stats.get(dim), dict):
            metrics.update({f"{dim}_{key}": value for key, value in stats[dim].items()})
    if "test" in stats:
        metrics["test_images"] = stats["test"]["images"]
    tracker.metrics(metrics, prefix="images.")
    logger = step_logger()
    for notice in report.notices():
        logger.warning(notice)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))
