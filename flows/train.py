"""The training pipeline: validate, split, fit preprocessing, train, evaluate, register."""

from __future__ import annotations

from prefect import flow

from kerasflow.flows.final import evaluate_and_register, fit_final_model
from kerasflow.flows.prepare import prepare_data
from kerasflow.flows.results import TrainResult
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.baseline import finish_baseline, start_baseline
from kerasflow.tasks.card import write_model_card
from kerasflow.tasks.concurrency import side_by_side
from kerasflow.tasks.config import choose_data_defaults, read_config
from kerasflow.tasks.register import bless_candidate
from kerasflow.tasks.runs import flow_run_url, mlflow_run_url, open_pipeline_run, publish_summary


@flow(name="train", log_prints=False)
def train_flow(config_path: str, overrides: list[str] | None = None, fresh: bool = False,
               lint: bool = True, config: PipelineConfig | None = None) -> TrainResult:
    """Runs the whole training pipeline for one config.

    With a `tuning` section the search runs (or resumes) first and the
    final model uses its best values; with a k-fold split every fold is
    trained and scored, then the final model is their average
    (`split.final: ensemble`) or is refitted on all non-test rows for the
    folds' median best epoch count (`refit`). A scikit-learn baseline is
    fitted on the same training rows and scored on the same test rows
    (`evaluation.baseline`).

    Steps that do not depend on each other overlap on the flow's task
    runner (`kerasflow.tasks.concurrency.side_by_side`): the baseline
    beside the final model's training (`kerasflow.tasks.baseline.start_baseline`),
    the evaluation beside the registration and infra validation
    (`kerasflow.flows.final.evaluate_and_register`); a table of
    `LARGE_ROWS` raw rows or more runs them one at a time, for memory
    (`kerasflow.tasks.concurrency.fits_beside`). The gate
    (`bless_candidate`) waits for all of them.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        fresh: Start over instead of resuming or reusing: recompute every
            cached step, and restart the tuner search, the k-fold folds and
            the final fit. Default false.
        lint: Check the design lint first: errors stop the run, warnings are logged. Default true.
        config: The config already validated from `config_path` and
            `overrides` (the CLI's), so the file is not read again. Default
            none (read it).

    Returns:
        A `TrainResult`: the run id, test metrics, the baseline's, model URI and registered version.
    """
    defaulted = choose_data_defaults(read_config(config_path, overrides, config), config_path)
    config = defaulted.config
    with open_pipeline_run(config, "train") as run:
        prepared = prepare_data(run, config, fresh, lint_as=config_path if lint else None, read=defaulted.hand_over())
        with side_by_side(prepared) as side:  # independent steps overlap (below LARGE_ROWS raw rows)
            started = start_baseline(side, run, config, prepared, fresh=fresh)  # beside the training
            model = fit_final_model(run, config, prepared, search=config.tuning is not None, fresh=fresh)
            metrics, registered, infra = evaluate_and_register(run, config, prepared, model, side)
            baseline = finish_baseline(started, run, config, prepared, fresh=fresh)
        registered = bless_candidate(run.tracker, config, metrics, registered, infra, baseline)
        write_model_card(run.tracker, config, registered)
        publish_summary(run, config, metrics, registered, baseline)
    fitted = baseline if baseline is not None and baseline.model else None
    return TrainResult(run_id=run.id, experiment_id=run.experiment_id, metrics=metrics,
                       mlflow_url=mlflow_run_url(run), prefect_url=flow_run_url(),
                       baseline=fitted.name if fitted else None, baseline_metrics=fitted.metrics if fitted else {},
                       baseline_rows=fitted.train_rows if fitted else 0,
                       baseline_sampled_from=fitted.sampled_from if fitted else 0, **registered)
