"""Scheduled retraining: fresh data, drift check, challenger, champion/challenger gate, promotion."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from kerasflow import tracking
from kerasflow.flows.prepare import prepare_data
from kerasflow.tasks.champion import (
    check_retrain_config,
    choose_hyperparameters,
    find_champion,
    score_champion,
)
from kerasflow.tasks.config import read_config
from kerasflow.tasks.drift import check_drift
from kerasflow.tasks.evaluate import evaluate_model
from kerasflow.tasks.promote import gate_challenger, promote_challenger
from kerasflow.tasks.register import register_model
from kerasflow.tasks.train import train_model
from kerasflow.tasks.tune import search_hyperparameters
from kerasflow.training.refit import refit_plan


@flow(name="retrain", log_prints=False)
def retrain_flow(config_path: str, overrides: list[str] | None = None, source: str | None = None) -> dict[str, Any]:
    """Retrains on the newest data and promotes the challenger only if it passes the gate.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        source: Data source (path or glob; the newest match is used),
            overriding `data.source`. Default: the config's.

    Returns:
        The run id, the challenger's test metrics and version, the
        champion's metrics, the drift verdict and the decision.
    """
    extra = [f"data.source={source}"] if source else []
    config = read_config(config_path, [*(overrides or []), *extra])
    check_retrain_config(config_path, config)
    with tracking.pipeline_run(config, "retrain", flow_run.get_id()) as run:
        champion = find_champion(run.tracker, config, run.workdir)
        prepared = prepare_data(run, config)
        drift = check_drift(run.tracker, config, prepared.raw, champion)
        retune = drift["action"] == "retune"
        tuned = search_hyperparameters(run.tracker, config, prepared, True) if retune else None
        hyper = choose_hyperparameters(run.tracker, config, champion, tuned)
        model = train_model(run.tracker, config, prepared, run.workdir, hyper,
                                  **refit_plan(config, tuned, None))
        metrics = evaluate_model(run.tracker, config, prepared, model)
        champion_metrics = score_champion(run.tracker, config, prepared, champion)
        registered = register_model(run.tracker, config, prepared, model, metrics)
        decision = gate_challenger(run.tracker, config, metrics, champion_metrics)
        outcome = promote_challenger(run.tracker, config, decision, registered["version"], champion,
                                                   drift["summary"] if drift["checked"] else None)
    return {"run_id": run.id, "experiment_id": run.experiment_id, "metrics": metrics,
            "champion_metrics": champion_metrics, "version": registered["version"],
            "compared_with": champion.version if champion else None, "drift": drift, **outcome}
