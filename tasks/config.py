"""Reading and validating the pipeline config: the first task of every flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.isolation import start_validator
from kerasflow.schemas.config import PipelineConfig, load_config


@task(name="read-config", retries=0, cache_policy=NO_CACHE)
def read_config(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads and validates the pipeline config (see `kerasflow.schemas.config.load_config`).

    With an expectation suite configured, also starts the validation worker
    (`kerasflow.data.isolation`), so Great Expectations imports while the first
    steps run; the `kerasflow` CLI has usually started it already.
    """
    config = load_config(path, overrides)
    if config.validation.suite is not None:
        start_validator()
    return config
