"""Runs only the data-validation step of a pipeline."""

from __future__ import annotations

from prefect import flow

from kerasflow.flows.results import ValidateResult
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import run_step
from kerasflow.tasks.config import choose_data_defaults, read_config
from kerasflow.tasks.load import load_data
from kerasflow.tasks.runs import open_pipeline_run
from kerasflow.tasks.validate import validate_data


@flow(name="validate", log_prints=False)
def validate_flow(config_path: str, overrides: list[str] | None = None,
                  config: PipelineConfig | None = None) -> ValidateResult:
    """Loads the configured data and checks it against its expectation suite.

    Args:
        config_path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        config: The config already validated from `config_path` and
            `overrides` (the CLI's), so the file is not read again. Default
            none (read it).

    Returns:
        A `ValidateResult`: the run id and whether the data passed.
    """
    defaulted = choose_data_defaults(read_config(config_path, overrides, config), config_path)
    config = defaulted.config  # the run logs the config as every pipeline run does, defaults chosen
    with open_pipeline_run(config, "validate") as run:
        raw = run_step(load_data, run, config, read=defaulted.hand_over())
        passed = run_step(validate_data, run, config, raw)
    return ValidateResult(run_id=run.id, passed=passed)
