"""The model a pipeline ends with, for `run` and `retrain` alike: a search or not, k folds or not, then the refit;
then its evaluation beside its registration and infra validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kerasflow.data.prepared import Prepared
from kerasflow.flows.cv import cross_validate
from kerasflow.promotion.infra import InfraReport
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import run_step
from kerasflow.tasks.concurrency import Side
from kerasflow.tasks.evaluate import evaluate_model
from kerasflow.tasks.infra_validate import start_infra_validation, validate_infra
from kerasflow.tasks.register import register_model
from kerasflow.tasks.train import assemble_ensemble, train_model
from kerasflow.tasks.tune import search_hyperparameters
from kerasflow.tracking import PipelineRun
from kerasflow.training.refit import refit_plan

Chooser = Callable[[dict[str, Any] | None], dict[str, Any] | None]


def best_found(tuned: dict[str, Any] | None) -> dict[str, Any] | None:
    """The search's best values, or None without a search (the config's values).

    Args:
        tuned: Output of `search_hyperparameters`, or None.

    Returns:
        `{dotted_name: value}`, or None.
    """
    return tuned["hyperparameters"] if tuned else None


def fit_final_model(run: PipelineRun, config: PipelineConfig, prepared: Prepared, *, search: bool,
                    fresh: bool = False, choose: Chooser = best_found) -> str:
    """Searches (or not), cross-validates a k-fold split, then trains or assembles the final model.

    With a k-fold split every fold is trained and scored (the
    `cross-validate` subflow, one nested run per fold), then the final model
    is their average (`split.final: ensemble`) or is refitted on all
    non-test rows for the folds' median best epoch count (`refit`); a
    search alone follows `tuning.refit`; otherwise the training rows with
    early stopping (`kerasflow.training.refit.refit_plan`). The fresh
    process of infra validation is started before the final model trains,
    so its imports overlap the training, evaluation and registration.

    Args:
        run: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps.
        search: Run the config's tuner search first.
        fresh: Start over: a new search, every fold and the final fit
            trained again. Default false (resume or reuse).
        choose: Picks the values to train with from the search's output
            (None without a search). Default the search's best values.

    Returns:
        Path of the final `.keras` model.
    """
    tuned = search_hyperparameters(run.tracker, config, prepared, fresh) if search else None
    hyperparameters = choose(tuned)
    cv = None
    if config.split.kind == "kfold":
        cv = cross_validate(run.tracker, config, prepared, hyperparameters, fresh)
    plan = refit_plan(config, tuned, cv)
    start_infra_validation(run.tracker, config, prepared)  # its fresh process imports while the model trains
    if plan["refit"] == "ensemble":
        return assemble_ensemble(run.tracker, config, cv.models, run.workdir)
    return run_step(train_model, run, config, prepared, hyperparameters=hyperparameters, **plan, fresh=fresh)


def evaluate_and_register(run: PipelineRun, config: PipelineConfig, prepared: Prepared, model: str, side: Side,
                          keep: str | None = None) -> tuple[dict[str, float], dict[str, Any], InfraReport]:
    """Evaluates the final model on the flow's task runner, beside its registration and infra validation.

    Each depends on the model alone. A table of `LARGE_ROWS` raw rows or
    more (`Side.beside` false, `kerasflow.tasks.concurrency.fits_beside`) runs them one
    after the other in this thread instead (`Side.task` runs the evaluation at once): at a million rows the
    evaluation beside infra validation's fresh process raised the run's
    peak from 1.25x the bare script's to 1.31x, and beside the registration
    alone (0.5 s) it saved no time but kept its memory in the worker
    thread's allocator (1.29x; `benchmarks/scale.py --suite`).

    Args:
        run: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps.
        model: Path of the final `.keras` model.
        side: The flow's `side_by_side` block.
        keep: Folder to keep the evaluation's reports in (`evaluate_model`). Default none.

    Returns:
        `(metrics, registered, infra)`: the test metrics, `register_model`'s
        result and `validate_infra`'s report.
    """
    evaluated = side.task(evaluate_model, run.tracker, config, prepared, model, keep=keep)
    registered = register_model(run.tracker, config, prepared, model)
    infra = validate_infra(run.tracker, config, prepared, model, registered)
    return evaluated.result(), registered, infra
