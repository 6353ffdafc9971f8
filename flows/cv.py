"""K-fold cross-validation as a subflow whose folds run concurrently on the configured task runner."""

from __future__ import annotations

from typing import Any

from prefect import flow

from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks import tune_steps
from kerasflow.tasks.steps import Prepared


@flow(name="cross-validate", log_prints=False, validate_parameters=False)
def cross_validate_flow(run_id: str, config: PipelineConfig, prepared: Prepared,
                        hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Trains one model per fold of the split, then logs the folds' summary.

    Run it with `cross_validate_flow.with_options(task_runner=...)` to pick
    where the folds run (see `kerasflow.flows.runners.task_runner`).

    Args:
        run_id: The pipeline run the fold runs nest under.
        config: The pipeline config (k-fold split).
        prepared: Paths from the data steps.
        hyperparameters: Fixed values from a search. Default none.

    Returns:
        `{"epochs", "folds", "summary"}` from `tune_steps.summarize_folds`.
    """
    futures = [tune_steps.train_fold.submit(run_id, config, prepared, fold, hyperparameters)
               for fold in range(config.split.folds)]
    return tune_steps.summarize_folds(run_id, config, [future.result() for future in futures])
