"""Infra validation: the registered version loads and answers in a fresh process before any alias moves."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.holdout import raw_rows, rows_at
from kerasflow.data.prepared import Prepared
from kerasflow.heavy import release_memory
from kerasflow.progress import status
from kerasflow.promotion.infra import SKIPPED, InfraReport, canary_positions, infra_mode, judge_probe
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import Tracker
from kerasflow.tracking.infra import probe_version, start_probe
from kerasflow.training.canary import evaluated_predictions, serving_rows, split_test_rows


@task(name="validate-infra", retries=0, cache_policy=NO_CACHE)
def validate_infra(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str,
                   registered: dict[str, Any]) -> InfraReport:
    """Loads the registered version from the registry in a fresh process and checks what it serves.

    With `promotion.infra_validation: load_and_query` (the default) the
    fresh process scores the logged input example and up to
    `promotion.canary_rows` test rows, and the canary predictions must equal
    the evaluation's (`kerasflow.training.canary.evaluated_predictions`)
    within `promotion.tolerance`; `load_only` checks the load alone (a
    config without the key follows `KERASFLOW_INFRA_VALIDATION`, see
    `kerasflow.promotion.infra.infra_mode`). Logs
    the metrics `infra/load_seconds` and `infra/row_ms`, the params `infra.rows` and `infra.passed`, and
    `infra/report.json`, tags the run and the version `kerasflow.infra`
    (`passed`, `failed` or `skipped`) with the details in
    `kerasflow.infra_details`.

    Args:
        tracker: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps.
        model_path: The `.keras` file the evaluation scored.
        registered: `register_model`'s result (`version` None when nothing was registered).

    Returns:
        The `InfraReport`; `passed` is false when an alias must not move.
    """
    mode, version = infra_mode(config.promotion), registered.get("version")
    if mode == "off" or version is None:
        report = InfraReport(mode=mode, status=SKIPPED)
    else:
        report = _validate(tracker, config, prepared, model_path, f"models:/{config.model_name}/{version}", mode)
        timings = report.metrics()
        tracker.metrics({k: v for k, v in timings.items() if k not in ("rows", "passed")}, prefix="infra.")
        tracker.counts({k: v for k, v in timings.items() if k in ("rows", "passed")}, prefix="infra.")
    step_logger().info(report.line())
    tracker.json(report.to_dict(), "infra/report.json")
    tracker.tags({"kerasflow.infra": report.status})
    if version is not None:
        for key, value in report.tags().items():
            tracker.client.set_model_version_tag(config.model_name, version, key, value)
    return report


LARGE_ROWS = 250_000
"""From this many raw rows the early process imports TensorFlow only once the version exists.

TensorFlow takes about 600 MB in the fresh process. Imported while a large
table trains, it sits beside the training's peak (1M rows: 1.56x the bare
script's peak instead of 1.2x); imported at the load, it costs the few
seconds of the import once, after the registration.
"""


def start_infra_validation(tracker: Tracker, config: PipelineConfig, prepared: Prepared | None = None) -> None:
    """Starts the fresh process of `validate_infra` early, when the run will validate a version.

    Call it before training: the process imports MLflow (and TensorFlow,
    unless the raw rows are `LARGE_ROWS` or more) while the model trains,
    then waits for the version (`kerasflow.tracking.infra.start_probe`).

    Args:
        tracker: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps (the raw rows are counted). Default none: a small run.
    """
    if infra_mode(config.promotion) != "off" and config.registry.enabled:
        rows = raw_rows(prepared.raw) if prepared is not None else None
        start_probe(tracker.uri, libraries=rows is None or rows < LARGE_ROWS)


def _validate(tracker: Tracker, config: PipelineConfig, prepared: Prepared, model_path: str,
              uri: str, mode: str) -> InfraReport:
    settings = config.promotion
    query = mode == "load_and_query"
    positions = canary_positions(split_test_rows(prepared.split), settings.canary_rows) if query else []
    rows = rows_at(prepared.raw, positions) if positions else None
    canary = serving_rows(prepared.features, rows) if rows is not None else None
    release_memory()  # the raw rows read for the canary (and the evaluation's): not beside the fresh process's

    def evaluate() -> object:  # in this process, while the fresh one loads
        return None if rows is None else evaluated_predictions(model_path, prepared.features, prepared.labels, rows)

    log = step_logger()
    log.info(f"infra validation ({mode}): loading {uri} in a fresh process, as `mlflow models serve` does")
    with status(f"validating {uri} in a fresh process"):  # what the heartbeat names while it waits
        probe = probe_version(uri, tracker.uri, canary, query, settings.timeout_seconds, meanwhile=evaluate,
                              tick=lambda waited: log.info(f"infra validation: the fresh process is still at work "
                                                           f"({waited:.0f} s: imports, then the model)"))
    evaluated = probe.meanwhile
    tracker.metrics({"process_seconds": probe.wall_seconds}, prefix="infra.")  # what validation added to the run
    return judge_probe(mode, uri, settings.tolerance, error=probe.error,
                       load_seconds=probe.load_seconds, predict_seconds=probe.predict_seconds,
                       outputs=probe.outputs, evaluated=evaluated)
