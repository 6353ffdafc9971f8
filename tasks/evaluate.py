"""Scoring the model on the untouched test split."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from kerasflow.data.prepared import Prepared
from kerasflow.heavy import import_tensorflow, release_memory
from kerasflow.progress import status
from kerasflow.promotion.bootstrap import read_outputs
from kerasflow.promotion.compare import gated_metrics, metric_intervals
from kerasflow.promotion.slices import SLICES_ARTIFACT, WORST_SLICE_TAG
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.promotion import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from kerasflow.tasks.outage import to_prefect
from kerasflow.tasks.runs import artifact_key
from kerasflow.tracking import Tracker
from kerasflow.training.evaluate import charted_metrics, per_class_table
from kerasflow.training.final import evaluate_saved_model


@task(name="evaluate-model", retries=0, cache_policy=NO_CACHE)
def evaluate_model(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str,
                   keep: str | None = None) -> dict[str, float]:
    """Scores the model on the untouched test split and logs reports, plots and metric intervals.

    The gated test metrics (those `registry.thresholds`, `registry.gate`
    and `promotion.compare` name; else the primary one) also get a
    bootstrap confidence interval, logged as `test/<metric>.ci_low` and
    `test/<metric>.ci_high` and in `evaluation/intervals.json`.

    Args:
        keep: Folder to keep the reports in (the per-row predictions, for
            `promotion.compare`). Default none.

    Returns:
        The test metrics.
    """
    import_tensorflow()

    with tempfile.TemporaryDirectory() as tmp, status("evaluating the model on the test rows"):
        evaluation, files = evaluate_saved_model(config, prepared.raw, prepared.split, prepared.features,
                                                 prepared.labels, model_path, Path(tmp))
        for file in files:  # subfolders (one per output of a multi-output model) are kept
            tracker.artifact(str(file), str(Path("evaluation", file.parent.relative_to(tmp))))
        log_intervals(tracker, config, evaluation.metrics, tmp)
        if keep is not None:
            shutil.copytree(tmp, keep, dirs_exist_ok=True)
    if evaluation.classes:
        tracker.table(per_class_table(evaluation), "evaluation/per_class.json")
    tracker.metrics(charted_metrics(evaluation), prefix="test.")
    if evaluation.slices:
        log_slices(tracker, config, evaluation.slices, evaluation.worst)
    release_memory()  # the test rows read: not kept beside infra validation's fresh process, which it may overlap
    return evaluation.metrics


def log_intervals(tracker: Tracker, config: PipelineConfig, metrics: dict[str, float], reports: str) -> None:
    """Logs the bootstrap interval of each gated test metric, from the evaluation's per-row predictions.

    Args:
        tracker: The run's tracker.
        config: The pipeline config.
        metrics: The test metrics.
        reports: The evaluation's report folder.
    """
    compare = config.promotion.compare
    gate = config.registry.gate
    names = gated_metrics(config.registry.thresholds, [r.metric for r in [*gate.thresholds, *gate.changes]],
                          compare, metrics)
    seed = config.training.seed if compare is None or compare.seed is None else compare.seed
    intervals = metric_intervals(read_outputs(reports), names, seed=seed,
                                 confidence=compare.confidence if compare else DEFAULT_CONFIDENCE,
                                 resamples=compare.resamples if compare else DEFAULT_RESAMPLES)
    if not intervals:
        return
    bounds = {f"{name}.ci_{side}": getattr(i, side) for name, i in intervals.items() for side in ("low", "high")}
    tracker.metrics(bounds, prefix="test.")
    tracker.json({name: asdict(i) for name, i in intervals.items()}, "evaluation/intervals.json")


def log_slices(tracker: Tracker, config: PipelineConfig, rows: list[dict[str, Any]], worst: dict[str, str]) -> None:
    """Logs the slice table (`evaluation/slices.json`, a table in the MLflow UI and in Prefect) and the worst slices.

    Args:
        tracker: The pipeline run.
        config: The pipeline config.
        rows: The slice table, one row per slice.
        worst: The worst gated slice of each metric, tagged as
            `kerasflow.worst_slice.<metric>`.
    """
    tracker.table(pd.DataFrame(rows), SLICES_ARTIFACT)
    tracker.tags({f"{WORST_SLICE_TAG}{metric}": name for metric, name in worst.items()})
    shown = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()} for row in rows]
    small = sum(not row["gated"] for row in rows)
    to_prefect("the slices artifact", create_table_artifact, table=shown, key=artifact_key("slices", config.name),
               description=f"Test metrics by slice of {config.name}"
                           + (f"; {small} slice(s) under evaluation.min_slice_rows "
                              f"({config.evaluation.min_slice_rows}) are reported, not gated" if small else ""))
