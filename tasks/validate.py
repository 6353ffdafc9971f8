"""Checking the raw data: the expectation suite (Great Expectations) and what the data kind checks (every image)."""

from __future__ import annotations

from prefect import task

from kerasflow.data.expectations.run import require_valid, run_validation, validate_file
from kerasflow.data.expectations.suites import load_suite
from kerasflow.heavy import prefetch_light
from kerasflow.models.families import pretrained_base
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, suite_file
from kerasflow.tasks.steplog import StepLog
from kerasflow.tracking import Tracker
from kerasflow.tracking.registry import check_base_reference
from kerasflow.training.kinds import FileCheck, kind_of


@task(name="validate-data", retries=0, cache_policy=StepInputs(sections=("data", "validation"), files=suite_file))
def validate_data(tracker: Tracker, config: PipelineConfig, raw_path: str, skip_columns: list[str] | None = None) -> bool:
    """Runs the Great Expectations suite and attaches its result and Data Docs.

    Returns:
        True when the data passed (or no suite is configured).

    Raises:
        DataValidationError: The data failed and `on_failure` is `fail`;
            the message lists every violated expectation.
    """

    check_files(tracker, config, raw_path)  # images: files by name, channels, class folders, sizes
    if config.validation.suite is None:
        return True
    report = run_validation(validate_file, raw_path, load_suite(config.validation.suite),
                            skip_columns=skip_columns or [], of_rows=kind_of(config.data).table_rows(raw_path),
                            while_waiting=prefetch_light)
    tracker.json(report.result, "validation/result.json")
    tracker.text(report.html, "validation/data_docs.html")
    tracker.text(report.summary(), "validation/summary.txt")
    tracker.counts({"expectations": report.evaluated, "failed": len(report.violations),
                                          "success": float(report.success)}, prefix="validation.")
    if config.validation.on_failure == "fail":
        require_valid(report)
    return report.success


def check_files(tracker: Tracker, config: PipelineConfig, raw_path: str) -> FileCheck:
    """Checks what the data kind checks before any training and logs the report (`DataKind.check`).

    Image folders (and a test folder, `data.test_source`): unreadable,
    corrupt and non-image files, files with another channel count, class
    folders without usable images and test classes the training folder has
    no images of are named one by one. Pixel tables: the column count must
    match the image shape, and pixels must be present and non-negative. A
    configured base model must exist. Counts per class and image-size
    statistics are logged as `images.*` metrics and `images/report.json`;
    warnings and skipped files (the first ten, by name) are shown on the
    terminal and in the Prefect UI. Tables: nothing beyond the suite.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config.
        raw_path: The listing or table from the load step.

    Returns:
        The kind's `FileCheck`.

    Raises:
        ImageDataError: Any rule is violated; every problem file is listed.
        BaseModelError: The configured base model cannot be found.
    """
    check = kind_of(config.data).check(config, raw_path)
    client = tracker.client
    check.log(StepLog(tracker))
    base = pretrained_base(config.model)
    if base is not None:
        tracker.tags({"kerasflow.base_model": check_base_reference(client, base)})
    check.require()
    return check
