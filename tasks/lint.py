"""The design lint step: the rules of thumb of docs/rules.md checked before any training."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.holdout import test_rows_of
from kerasflow.lint import DesignLintError, lint_config, profile_frame
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import Tracker


@task(name="lint-design", retries=0, cache_policy=NO_CACHE)
def lint_design(tracker: Tracker, config: PipelineConfig, raw_path: str, config_file: str) -> dict[str, Any]:
    """Checks the config against the data's profile and logs `lint/report.json` and `lint/report.txt`.

    Warnings and notes are shown and logged; errors stop the run.

    Returns:
        The number of findings per severity.

    Raises:
        DesignLintError: A rule marked `error` is broken; the report is logged first.
    """
    report = lint_config(config, profile_frame(config, pd.read_parquet(raw_path), test_rows_of(raw_path)))
    tracker.json(report.as_dict(), "lint/report.json")
    tracker.text(report.summary(), "lint/report.txt")
    counts = report.as_dict()["counts"]
    tracker.counts(counts, prefix="lint.")
    logger = step_logger()
    for finding in report.findings:
        if finding.severity != "error":
            (logger.warning if finding.severity == "warning" else logger.info)(str(finding))
    if report.errors:
        raise DesignLintError(config_file, report)
    return counts
