"""The training pipeline: validate, split, fit preprocessing, train, evaluate, register."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from kerasflow import tracking
from tasks import steps


@flow(name="train", log_prints=False)
def train_flow(config_path: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Runs the whole training pipeline for one config.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.

    Returns:
        The run id, test metrics, model URI and registered version.
    """
    config = steps.read_config(config_path, overrides)
    with tracking.pipeline_run(config, "train", flow_run.get_id()) as run:
        raw = steps.load_data(run.id, config, run.workdir)
        steps.validate_data(run.id, config, raw)
        split = steps.split_data(run.id, config, raw, run.workdir)
        prepared = steps.fit_preprocessing(run.id, config, raw, split, run.workdir)
        model = steps.train_model(run.id, config, prepared, run.workdir)
        metrics = steps.evaluate_model(run.id, config, prepared, model)
        registered = steps.register_model(run.id, config, prepared, model, metrics)
    return {"run_id": run.id, "experiment_id": run.experiment_id, "metrics": metrics, **registered}
