"""Scoring the model on the untouched test split."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.prepared import Prepared
from kerasflow.heavy import import_tensorflow
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tracking import Tracker
from kerasflow.training.evaluate import charted_metrics, per_class_table
from kerasflow.training.final import evaluate_saved_model


@task(name="evaluate-model", retries=0, cache_policy=NO_CACHE)
def evaluate_model(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str) -> dict[str, float]:
    """Scores the model on the untouched test split and logs reports and plots.

    Returns:
        The test metrics.
    """
    import_tensorflow()

    with tempfile.TemporaryDirectory() as tmp:
        evaluation, files = evaluate_saved_model(config, prepared.raw, prepared.split, prepared.features,
                                                 prepared.labels, model_path, Path(tmp))
        for file in files:  # subfolders (one per output of a multi-output model) are kept
            tracker.artifact(str(file), str(Path("evaluation", file.parent.relative_to(tmp))))
    if evaluation.classes:
        tracker.table(per_class_table(evaluation), "evaluation/per_class.json")
    tracker.metrics(charted_metrics(evaluation), prefix="test.")
    return evaluation.metrics
