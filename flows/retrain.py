"""Scheduled retraining: fresh data, drift check, challenger, champion/challenger gate, promotion."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from kerasflow import tracking
from kerasflow.flows.prepare import prepare_data
from kerasflow.tasks import retrain_steps, steps, tune_steps


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
    config = steps.read_config(config_path, [*(overrides or []), *extra])
    retrain_steps.check_retrain_config(config_path, config)
    with tracking.pipeline_run(config, "retrain", flow_run.get_id()) as run:
        champion = retrain_steps.find_champion(run.id, config, run.workdir)
        prepared = prepare_data(run, config)
        drift = retrain_steps.check_drift(run.id, config, prepared.raw, champion)
        retune = drift["action"] == "retune"
        tuned = tune_steps.search_hyperparameters(run.id, config, prepared, True) if retune else None
        hyper = retrain_steps.choose_hyperparameters(run.id, config, champion, tuned)
        model = steps.train_model(run.id, config, prepared, run.workdir, hyper,
                                  **tune_steps.refit_plan(config, tuned, None))
        metrics = steps.evaluate_model(run.id, config, prepared, model)
        champion_metrics = retrain_steps.score_champion(run.id, config, prepared, champion)
        registered = steps.register_model(run.id, config, prepared, model, metrics)
        decision = retrain_steps.gate_challenger(run.id, config, metrics, champion_metrics)
        outcome = retrain_steps.promote_challenger(run.id, config, decision, registered["version"], champion,
                                                   drift["summary"] if drift["checked"] else None)
    return {"run_id": run.id, "experiment_id": run.experiment_id, "metrics": metrics,
            "champion_metrics": champion_metrics, "version": registered["version"],
            "compared_with": champion.version if champion else None, "drift": drift, **outcome}
