"""K-fold cross-validation as a subflow whose folds run concurrently on the configured task runner."""

from __future__ import annotations

from typing import Any

from prefect import flow

from kerasflow.data.prepared import Prepared
from kerasflow.flows.runners import task_runner
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.cv import summarize_folds, train_fold
from kerasflow.tasks.outage import run_nested_flow
from kerasflow.tracking import Tracker
from kerasflow.training.cv import CVSummary


@flow(name="cross-validate", log_prints=False, validate_parameters=False)
def cross_validate_flow(tracker: Tracker, config: PipelineConfig, prepared: Prepared,
                        hyperparameters: dict[str, Any] | None = None, fresh: bool = False) -> CVSummary:
    """Trains one model per fold of the split, then logs the folds' summary.

    Pipelines call it through `cross_validate`, which picks the task runner
    (`runner`) and keeps the folds going through a Prefect API outage.

    Args:
        tracker: The pipeline run the fold runs nest under.
        config: The pipeline config (k-fold split).
        prepared: Paths from the data steps.
        hyperparameters: Fixed values from a search. Default none.
        fresh: Retrain every fold instead of reusing an interrupted run's. Default false.

    Returns:
        The `CVSummary` of `summarize_folds`.
    """
    futures = [train_fold.submit(tracker, config, prepared, fold, hyperparameters, fresh)
               for fold in range(config.split.folds)]
    return summarize_folds(tracker, config, [future.result() for future in futures])


def cross_validate(tracker: Tracker, config: PipelineConfig, prepared: Prepared,
                   hyperparameters: dict[str, Any] | None = None, fresh: bool = False) -> CVSummary:
    """Runs `cross_validate_flow` on the config's task runner (`runner`), nested in the current flow run.

    The folds' work does not depend on the Prefect API
    (`kerasflow.tasks.outage.run_nested_flow`): while it does not answer,
    they run as tasks of the current flow run, and a nested flow run cut
    off by an outage still hands on the folds' summary.

    Args:
        tracker: The pipeline run the fold runs nest under.
        config: The pipeline config (k-fold split).
        prepared: Paths from the data steps.
        hyperparameters: Fixed values from a search. Default none.
        fresh: Retrain every fold instead of reusing an interrupted run's. Default false.

    Returns:
        The `CVSummary` of `summarize_folds`.
    """
    cv_flow = cross_validate_flow.with_options(task_runner=task_runner(config.runner))
    return run_nested_flow(cv_flow, tracker, config, prepared, hyperparameters, fresh)
