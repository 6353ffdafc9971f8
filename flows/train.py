"""The training pipeline: validate, split, fit preprocessing, train, evaluate, register."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from kerasflow.flows.cv import cross_validate_flow
from kerasflow import tracking
from kerasflow.flows.prepare import prepare_data
from kerasflow.flows.runners import task_runner
from kerasflow.tasks import steps, tune_steps


@flow(name="train", log_prints=False)
def train_flow(config_path: str, overrides: list[str] | None = None, fresh: bool = False) -> dict[str, Any]:
    """Runs the whole training pipeline for one config.

    With a `tuning` section the search runs (or resumes) first and the
    final model uses its best values; with a k-fold split every fold is
    trained and scored, then the final model is refitted on all non-test
    rows for the folds' mean best epoch count.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        fresh: Start a tuner search over instead of resuming it. Default false.

    Returns:
        The run id, test metrics, model URI and registered version.
    """
    config = steps.read_config(config_path, overrides)
    with tracking.pipeline_run(config, "train", flow_run.get_id()) as run:
        prepared = prepare_data(run, config)
        tuned = tune_steps.search_hyperparameters(run.id, config, prepared, fresh) if config.tuning else None
        best = tuned["hyperparameters"] if tuned else None
        cv = None
        if config.split.kind == "kfold":
            cv = cross_validate_flow.with_options(task_runner=task_runner(config.runner))(run.id, config, prepared, best)
        plan = tune_steps.refit_plan(config, tuned, cv)
        model = steps.train_model(run.id, config, prepared, run.workdir, best, **plan)
        metrics = steps.evaluate_model(run.id, config, prepared, model)
        registered = steps.register_model(run.id, config, prepared, model, metrics)
    return {"run_id": run.id, "experiment_id": run.experiment_id, "metrics": metrics, **registered}
