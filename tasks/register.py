"""Logging the pyfunc model and registering a new version behind the thresholds gate."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.holdout import raw_head
from kerasflow.data.prepared import Prepared
from kerasflow.heavy import import_tensorflow
from kerasflow.progress import status
from kerasflow.promotion.gate import GateResult, check_registration, threshold_description
from kerasflow.promotion.infra import InfraReport, blessing_description
from kerasflow.promotion.inputs import CANDIDATE
from kerasflow.promotion.slices import name_worst_slices, worst_from_tags
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import log_reference
from kerasflow.tracking.notes import OUTCOME_TAG
from kerasflow.training.baseline import Baseline
from kerasflow.training.slices import SUMMARY_PREFIXES


@task(name="register-model", retries=1, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def register_model(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str) -> dict[str, Any]:
    """Logs the pyfunc model with a signature and registers a new version.

    No alias moves here: `bless_candidate` gives a version that meets every
    `registry.thresholds` entry (and, with `registry.beats_baseline`, does
    not lose to `baseline`) the `candidate` alias once it passed infra
    validation (`kerasflow.tasks.infra_validate`). The run also
    gets `reference/stats.json` (training-row drift statistics, computed by
    the preprocessing step: registration reads no rows) and
    `reference/suite.json` (the expectation suite) for retraining and batch
    prediction.

    Returns:
        `{"model_uri", "version", "blessed", "reasons"}`; `blessed` is false
        and `reasons` empty until `bless_candidate` checks the gate once.

    Raises:
        IncompatibleInputsError: The registered name's versions take other
            input columns; no version is created.
    """
    import_tensorflow()
    from kerasflow.tracking.models import log_model, register_version  # deferred: imports mlflow.pyfunc

    example = raw_head(prepared.raw, 5)  # the first row group, not the whole table
    name = config.model_name if config.registry.enabled else None
    with status("logging the model to MLflow"):
        info = log_model(tracker.run_id, model_path, prepared.features, prepared.labels, example)
    client = tracker.client
    with status("logging the reference statistics"):
        log_reference(client, tracker.run_id, config, prepared.reference)  # computed by the preprocessing: no rows read
    outcome = {"model_uri": info.model_uri, "version": None, "blessed": False, "reasons": []}
    if name is None:
        return outcome
    version = register_version(client, name, info, tracker.run_id)
    outcome.update(version=version)
    client.set_model_version_tag(name, version, "kerasflow.run_id", tracker.run_id)
    tracker.tags({"kerasflow.model_name": name, "kerasflow.model_version": version})
    return outcome


@task(name="bless-candidate", retries=1, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def bless_candidate(tracker: Tracker, config: PipelineConfig, metrics: dict[str, float], registered: dict[str, Any],
                    infra: InfraReport | None = None, baseline: Baseline | None = None) -> dict[str, Any]:
    """Gives a registered version the `candidate` alias if it met every threshold and passed infra validation.

    Nothing else in the registry is touched. The version gets the tag
    `kerasflow.blessed` and a description naming every threshold with its
    expected and observed values, and the infra verdict; the run logs the
    description as `gate/description.txt` (the head of the model card).

    Args:
        tracker: The pipeline run.
        config: The pipeline config.
        metrics: The test metrics.
        registered: `register_model`'s result.
        infra: `validate_infra`'s report. Default none (not validated).
        baseline: `fit_baseline`'s result, for `registry.beats_baseline`. Default none.

    Returns:
        `registered` with `blessed` and `reasons` updated: a version that
        failed infra validation is not blessed, and the failure is a reason.
    """
    name, version = config.model_name, registered.get("version")
    if version is None:
        return registered
    gate = named_gate(tracker, config, metrics, baseline)
    blessed = gate.passed and (infra is None or infra.passed)
    reasons = [*gate.reasons, *([] if infra is None or infra.passed else [infra.line()])]
    description = blessing_description(threshold_description(gate, tracker.run_id), gate.passed, infra,
                                       tracker.run_id)
    client = tracker.client
    client.set_model_version_tag(name, version, "kerasflow.blessed", str(blessed).lower())
    client.update_model_version(name, version, description=description)
    tracker.text(description + "\n", "gate/description.txt")
    if blessed:
        client.set_registered_model_alias(name, CANDIDATE, version)
    tracker.tags({OUTCOME_TAG: "promoted" if blessed else "rejected"})  # to @candidate; a retraining's gate overrides
    return {**registered, "blessed": blessed, "reasons": reasons}


def named_gate(tracker: Tracker, config: PipelineConfig, metrics: dict[str, float],
               baseline: Baseline | None = None) -> GateResult:
    """Checks `registry.thresholds` and `registry.beats_baseline`, naming the worst slice in each `slice_min.*`/`slice_max.*` line.

    Returns:
        The `GateResult`; the worst slices are read from the run's
        `kerasflow.worst_slice.*` tags (set by the evaluation).
    """
    gate = check_registration(metrics, config.registry.thresholds, config.registry.beats_baseline, baseline)
    if not any(name.startswith(SUMMARY_PREFIXES) for name in config.registry.thresholds):
        return gate
    return name_worst_slices(gate, worst_from_tags(tracker.client.get_run(tracker.run_id).data.tags))
