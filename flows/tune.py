"""The tuning pipeline: the data steps, then only the hyperparameter search."""

from __future__ import annotations

from prefect import flow

from kerasflow.flows.prepare import prepare_data
from kerasflow.flows.results import TuneResult
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.config import choose_data_defaults, read_config
from kerasflow.tasks.runs import open_pipeline_run
from kerasflow.tasks.tune import search_hyperparameters


@flow(name="tune", log_prints=False)
def tune_flow(config_path: str, overrides: list[str] | None = None, fresh: bool = False,
              lint: bool = True, config: PipelineConfig | None = None) -> TuneResult:
    """Validates, splits and preprocesses the data, then runs or resumes the search.

    Args:
        config_path: Pipeline YAML with a `tuning` section.
        overrides: `section.key=value` overrides. Default none.
        fresh: Discard saved tuner state and start over. Default false.
        lint: Check the design lint first: errors stop the run, warnings are logged. Default true.
        config: The config already validated from `config_path` and
            `overrides` (the CLI's), so the file is not read again. Default
            none (read it).

    Returns:
        A `TuneResult`: the run id and the search outcome (best values, score, trials).
    """
    defaulted = choose_data_defaults(read_config(config_path, overrides, config), config_path)
    config = defaulted.config
    with open_pipeline_run(config, "tune") as run:
        prepared = prepare_data(run, config, fresh, lint_as=config_path if lint else None, read=defaulted.hand_over())
        tuned = search_hyperparameters(run.tracker, config, prepared, fresh)
    return TuneResult(run_id=run.id, experiment_id=run.experiment_id, **tuned)
