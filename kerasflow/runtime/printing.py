"""What the commands print: a flow's typed result (`kerasflow.flows.results`), and the addresses of a stack.

Nothing here imports a flow (`kerasflow.flows.results` imports only
`dataclasses`): the modules behind the flows (Prefect, MLflow, TensorFlow)
stay off `kerasflow --help`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from kerasflow.flows.results import PredictResult, RetrainResult, TrainResult, TuneResult, ValidateResult
from kerasflow.schemas.config import PipelineConfig, RegistryConfig
from kerasflow.secrets import mask


def print_train(result: TrainResult, cfg: PipelineConfig, server: Any = None) -> None:
    """Prints a training run: its test metrics, its MLflow run, its registered version and the UI links.

    Args:
        result: The flow's result.
        cfg: The pipeline config.
        server: The Prefect server the command used, if any. Default none.
    """
    from kerasflow.tracking import tracking_uri

    typer.echo("")
    typer.echo(f"pipeline {cfg.name}: test metrics")
    shown = {k: v for k, v in result.metrics.items()  # per-class scores (`[<output>.]class.*`) stay in MLflow
             if not (k.startswith("class.") or ".class." in k)}
    width = max([14, *(len(k) for k in shown)])
    for name, value in shown.items():
        typer.echo(f"  {name:<{width}} {value:.4f}{beside_baseline(result, name)}")
    typer.echo(f"MLflow run:  {result.run_id}  (experiment {result.experiment_id}, "
               f"store {mask(tracking_uri(cfg.registry.tracking_uri))})")
    if result.version:
        blessed = "blessed as @candidate" if result.blessed else "not blessed"
        typer.echo(f"model:       models:/{cfg.model_name}/{result.version}  ({blessed})")
        for reason in result.reasons:
            typer.echo(f"  gate: {reason}")
    print_links(result, cfg.registry, server)


def beside_baseline(result: TrainResult, metric: str) -> str:
    """What follows a test metric's value: the baseline's score on the same rows, or nothing.

    A baseline fitted on a sample of the training rows (`evaluation.baseline_rows`) says so:
    `(HistGradientBoosting 0.8760 on the same test rows, fitted on 100,000 of 800,000 training rows)`.
    """
    if result.baseline is None or metric not in result.baseline_metrics:
        return ""
    score = f"{result.baseline} {result.baseline_metrics[metric]:.4f}"
    if not result.baseline_sampled_from:
        return f"  ({score} on the same rows)"
    return (f"  ({score} on the same test rows, fitted on {result.baseline_rows:,} of "
            f"{result.baseline_sampled_from:,} training rows)")


def print_links(result: TrainResult, registry: RegistryConfig, server: Any = None) -> None:
    """Prints the run's pages in the MLflow and Prefect UIs, at the addresses actually in use (`registry.tracking_uri`)."""
    from kerasflow.tracking import run_url, tracking_uri

    uri = tracking_uri(registry.tracking_uri)
    url = result.mlflow_url or run_url(result.experiment_id, result.run_id, uri)
    local = not uri.startswith(("http://", "https://")) and "KERASFLOW_MLFLOW_UI_URL" not in os.environ
    typer.echo(f"MLflow UI:   {url}" + ("  (start it with `kerasflow ui`)" if local else ""))
    if result.prefect_url:
        typer.echo(f"Prefect UI:  {result.prefect_url}")
    elif server is not None and server.shared:
        typer.echo(f"Prefect UI:  {server.ui_url}/runs")


def print_search(result: TuneResult, cfg: PipelineConfig) -> None:
    """Prints a search: its trials, the best score and values, and its MLflow run."""
    resumed = len(result.trials) - result.new_trials
    typer.echo("")
    typer.echo(f"pipeline {cfg.name}: {cfg.tuning.tuner} search, {len(result.trials)} trials "
               f"({result.new_trials} new, {resumed} resumed from {result.directory})")
    typer.echo(result.summary)
    typer.echo(f"best {result.objective}: {result.score:.4f} after {result.epochs} epochs")
    for name, value in result.hyperparameters.items():
        typer.echo(f"  {name} = {value}")
    typer.echo(f"MLflow run:  {result.run_id}  (experiment {result.experiment_id})")


def print_validation(result: ValidateResult, cfg: PipelineConfig) -> None:
    """Prints a validation's verdict and its MLflow run."""
    if cfg.validation.suite:
        verdict = "passed" if result.passed else "failed (on_failure: warn)"
        typer.echo(f"data {verdict} the expectations of suite {cfg.validation.suite}")
    elif cfg.data.image is None:
        typer.echo("data passed the data contract (no expectation suite configured)")
    if cfg.data.image is not None:
        typer.echo("images passed their checks (counts per class and sizes: images/report.json in the run)")
    typer.echo(f"MLflow run: {result.run_id}")


def print_retrain(result: RetrainResult, cfg: PipelineConfig) -> None:
    """Prints a retraining: challenger against champion, the drift, the decision and its reasons."""
    where = f"v{result.champion}" if result.champion else "none yet"
    if result.outcome == "skipped":
        typer.echo(f"\nmodel {cfg.model_name}: nothing changed since champion v{result.compared_with}")
        typer.echo(f"decision: skipped (no new data); @champion is {where}, nothing registered")
    else:
        typer.echo(f"\nmodel {cfg.model_name}: challenger v{result.version} vs champion "
                   f"{'v' + result.compared_with if result.compared_with else '(none)'}")
        typer.echo(f"drift:    {result.drift.summary.splitlines()[0]}")
        typer.echo(f"decision: {result.outcome} ({'promoted' if result.promoted else 'not promoted'}); "
                   f"@champion is {where}")
    for reason in result.reasons:
        typer.echo(f"  {reason}")
    typer.echo(f"MLflow run: {result.run_id}")


def print_prediction(result: PredictResult) -> None:
    """Prints where a batch prediction wrote its rows, and its model and MLflow run."""
    typer.echo(f"wrote {result.rows} rows with predictions to {result.output}")
    if result.validation:
        typer.echo(f"checked: {result.validation}")
    typer.echo(f"model: {result.model_uri}   MLflow run: {result.run_id}")


def print_stack(stack: Any, env_file: Path) -> None:
    """Prints the addresses of a started stack and how to use it."""
    settings = stack.settings
    team = getattr(stack, "postgres", None)
    if team is not None:
        typer.echo(f"PostgreSQL:  127.0.0.1:{settings.postgres_port}   (data in {team.data})")
        typer.echo(f"Prefect UI:  {settings.prefect_ui}   (database prefect)")
        typer.echo(f"MLflow UI:   {settings.mlflow_ui}   (database mlflow, artifacts in {settings.artifacts})")
        clone = stack.source
        typer.echo(f"work pool {settings.pool}; deployments: {', '.join(stack.deployed) or 'none'}; code from "
                   f"{clone['repository']} at {clone.get('branch') or clone.get('commit_sha')}")
        from kerasflow.runtime.team import source_notes

        for note in source_notes(settings.home, clone):
            typer.echo(note)
        if settings.auth:
            typer.echo(f"logins on: MLflow user admin and Prefect's auth string, in {env_file} (mode 0600; "
                       "docs/team.md adds users)")
        if settings.reachable_from_elsewhere:
            typer.echo(f"a worker on another host:  copy {stack.worker_env_file} there (PREFECT_API_URL="
                       f"{settings.public_api_url}, MLFLOW_TRACKING_URI={mask(settings.public_store)}"
                       f"{', the logins' if settings.auth else ''}), then: source worker.env && "
                       f"KERASFLOW_HOME=<its own folder> prefect worker start --pool {settings.pool}")
        else:
            typer.echo(f"the servers listen on {settings.host} only: no other host reaches them "
                       "(--host 0.0.0.0 or this machine's address lets workers elsewhere in)")
    else:
        started = stack.server is not None and stack.server.started
        typer.echo(f"Prefect UI:  {settings.prefect_ui}   (the shared server, "
                   f"{'started now' if started else 'already running'})")
        typer.echo(f"MLflow UI:   {settings.mlflow_ui}   (store {mask(settings.store)})")
        typer.echo(f"work pool {settings.pool}; deployments: {', '.join(stack.deployed) or 'none'}")
    typer.echo(f"in another shell:  source {env_file} && prefect deployment run "
               f"'retrain/{stack.deployed_name('nightly')}'")
    if team is not None:
        typer.echo("Ctrl-C stops the worker and the servers" + (", and PostgreSQL" if stack.postgres_started else
                   "; PostgreSQL was already running and keeps running"))
    else:
        typer.echo("Ctrl-C stops the worker and the MLflow UI" + (", and the Prefect server" if started else
                   "; the shared Prefect server keeps running (`kerasflow server stop` stops it)"))
