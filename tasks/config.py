"""The pipeline config: validated once per command, then completed from one read of the data."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.expectations.run import start_validator
from kerasflow.lint.choose import Defaulted, choose_defaults, needs_defaults
from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config
from kerasflow.tasks.policies import step_logger


@task(name="read-config", retries=0, cache_policy=NO_CACHE)
def read_config(path: str, overrides: list[str] | None = None,
                config: PipelineConfig | None = None) -> PipelineConfig:
    """Reads and validates the pipeline config (see `kerasflow.schemas.config.load_config`).

    With an expectation suite configured, also starts the validation worker
    (`kerasflow.data.expectations.run`), so Great Expectations imports while
    the first steps run; the `kerasflow` CLI has usually started it already.

    Args:
        path: Pipeline YAML.
        overrides: `section.key=value` overrides. Default none.
        config: The config already validated from `path` and `overrides`
            (the CLI validates it before starting the flow): used as it is,
            the file is not read again. Default none (read the file).

    Returns:
        The validated `PipelineConfig`, as written (no data-driven defaults yet: `choose_data_defaults`).

    Raises:
        ConfigError: The file is missing or invalid.
    """
    if config is None:
        config = load_config(path, overrides)
    if config.validation.suite is not None:
        start_validator()
    return config


def choose_data_defaults(config: PipelineConfig, path: str) -> Defaulted:
    """Completes the config from its data with the `choose-defaults` step, or as it is when nothing is left out.

    A config that sets every section (and every `data` value its kind can
    infer) runs no step and reads nothing.

    Args:
        config: The validated config, as written.
        path: The config file's name, for errors.

    Returns:
        The `Defaulted` config (see `choose_defaults_step`).

    Raises:
        ConfigError: A chosen section does not fit the rest of the config.
    """
    if not needs_defaults(config):
        return Defaulted(config)
    return choose_defaults_step(config, path)


@task(name="choose-defaults", retries=0, cache_policy=NO_CACHE)
def choose_defaults_step(config: PipelineConfig, path: str) -> Defaulted:
    """Chooses the sections the config leaves out (`split`, `training`, `model`) from its data, and says which.

    The data are read once here (`kerasflow.lint.choose.choose_defaults`);
    pass `Defaulted.read` to the load step, which then does not read them
    again.

    Args:
        config: The validated config, as written.
        path: The config file's name, for errors.

    Returns:
        The `Defaulted` config (the config itself when its data cannot be
        read: the load step then reports why).

    Raises:
        ConfigError: A chosen section does not fit the rest of the config.
    """
    try:
        defaulted = choose_defaults(config, path)
    except ConfigError:
        raise
    except Exception:  # unreadable or broken data: the load step reports it, with a FAILED run
        return Defaulted(config)
    line = defaulted.describe()
    if line:
        step_logger().info(line)
    return defaulted
