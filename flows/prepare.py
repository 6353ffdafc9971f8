"""The data steps every pipeline starts with: load, validate, split, fit preprocessing."""

from __future__ import annotations

from typing import Any

from kerasflow.data.expectations.run import release_validator
from kerasflow.data.prepared import Prepared
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import run_step
from kerasflow.tasks.lint import lint_design
from kerasflow.tasks.load import load_data
from kerasflow.tasks.preprocess import fit_preprocessing
from kerasflow.tasks.split import split_data
from kerasflow.tasks.validate import validate_data
from kerasflow.tracking import PipelineRun


def prepare_data(run: PipelineRun, config: PipelineConfig, fresh: bool = False,
                 lint_as: str | None = None, read: Any = None) -> Prepared:
    """Loads the configured data, checks it, splits it and fits the preprocessing on training rows.

    Each step is cached (`kerasflow.tasks.caching`): a rerun with the same
    data, config sections and code reuses its result.

    Args:
        run: The pipeline run the steps log into.
        config: The validated pipeline config.
        fresh: Recompute every step instead of reusing cached results. Default false.
        lint_as: The config file's name: run the design lint on the loaded
            data, before anything else, naming this file. Default none (no lint).
        read: The rows the flow read already to choose the config's
            defaults (`Defaulted.read`), so the load step does not read the
            sources again. Default none (the load step reads them).

    Returns:
        The `Prepared` paths (raw rows, split, feature and label specs).

    Raises:
        BadInputError: The data cannot be read, fails its checks or cannot be
            split, or the config breaks a design rule marked `error`.
    """
    raw = run_step(load_data, run, config, read=read, fresh=fresh)
    del read  # the rows as read are in `raw` now: not held through the later steps
    if lint_as is not None:  # the design rules of thumb (docs/rules.md), before any check or split
        lint_design(run.tracker, config, raw, lint_as)
    try:
        run_step(validate_data, run, config, raw, fresh=fresh)
    finally:  # reused from the step cache, validation never used the warm worker: free it before training
        release_validator()
    split = run_step(split_data, run, config, raw, fresh=fresh)
    return run_step(fit_preprocessing, run, config, raw, split, fresh=fresh)
