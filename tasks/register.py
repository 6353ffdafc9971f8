"""Logging the pyfunc model and registering a new version behind the thresholds gate."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.prepared import Prepared
from kerasflow.heavy import import_tensorflow
from kerasflow.promotion.gate import check_registration, threshold_description
from kerasflow.promotion.inputs import CANDIDATE
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import log_reference
from kerasflow.training.baseline import Baseline


@task(name="register-model", retries=1, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def register_model(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str,
                   metrics: dict[str, float], baseline: Baseline | None = None) -> dict[str, Any]:
    """Logs the pyfunc model with a signature and registers a new version.

    A version that meets every `registry.thresholds` entry (and, with
    `registry.beats_baseline`, does not lose to `baseline`) gets the
    `candidate` alias; nothing else in the registry is touched. The run also
    gets `reference/stats.json` (training-row drift statistics) and
    `reference/suite.json` (the expectation suite) for retraining and batch
    prediction.

    Returns:
        `{"model_uri", "version", "blessed", "reasons"}`.

    Raises:
        IncompatibleInputsError: The registered name's versions take other
            input columns; no version is created.
    """
    import_tensorflow()
    from kerasflow.tracking.models import log_model, register_version  # deferred: imports mlflow.pyfunc

    example = pd.read_parquet(prepared.raw).head(5)
    name = config.model_name if config.registry.enabled else None
    info = log_model(tracker.run_id, model_path, prepared.features, prepared.labels, example)
    client = tracker.client

    log_reference(client, tracker.run_id, config, prepared.raw, prepared.split, prepared.features)
    outcome = {"model_uri": info.model_uri, "version": None, "blessed": False, "reasons": []}
    if name is None:
        return outcome
    version = register_version(client, name, info, tracker.run_id)
    gate = check_registration(metrics, config.registry.thresholds, config.registry.beats_baseline, baseline)
    outcome.update(version=version, blessed=gate.passed, reasons=gate.reasons)
    client.set_model_version_tag(name, version, "kerasflow.run_id", tracker.run_id)
    client.set_model_version_tag(name, version, "kerasflow.blessed", str(gate.passed).lower())
    client.update_model_version(name, version, description=threshold_description(gate, tracker.run_id))
    if gate.passed:
        client.set_registered_model_alias(name, CANDIDATE, version)
    tracker.tags({"kerasflow.model_version": version})
    return outcome
