"""Reading and validating the pipeline config: the first task of every flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import ValidationError

from kerasflow.data.expectations.run import start_validator
from kerasflow.lint.defaults import DEFAULTED, default_sections, describe_defaults, with_defaults
from kerasflow.lint.profile import profile_source
from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config, read_raw_config
from kerasflow.tasks.policies import step_logger


@task(name="read-config", retries=0, cache_policy=NO_CACHE)
def read_config(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads and validates the pipeline config (see `kerasflow.schemas.config.load_config`).

    Sections the config leaves out (`split`, `training`, `model`) are chosen
    from the data's size and task (`kerasflow.lint.defaults`), and the
    choice is shown. With an expectation suite configured, also starts the
    validation worker (`kerasflow.data.expectations.run`), so Great Expectations
    imports while the first steps run; the `kerasflow` CLI has usually
    started it already.
    """
    config = load_config(path, overrides)
    given = set(read_raw_config(path)) | {item.split("=", 1)[0].split(".")[0] for item in overrides or []}
    if not set(DEFAULTED) <= given:
        try:
            profile = profile_source(config)
        except Exception:  # unreadable or broken data: the load step reports it, with a FAILED run
            profile = None
        if profile is not None:
            chosen = default_sections(config, profile, given)
            try:
                config = with_defaults(config, chosen)
            except ValidationError as exc:
                raise ConfigError(path, [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (a default chosen from "
                                         f"the data for a section the config leaves out; set "
                                         f"{', '.join(sorted(chosen))} in the config)" for e in exc.errors()]) from None
            step_logger().info(describe_defaults(chosen, profile))
    if config.validation.suite is not None:
        start_validator()
    return config
