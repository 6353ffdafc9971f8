"""The data steps every pipeline starts with: load, validate, split, fit preprocessing."""

from __future__ import annotations

from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks import steps
from kerasflow.tasks.steps import Prepared
from kerasflow.tracking import PipelineRun


def prepare_data(run: PipelineRun, config: PipelineConfig) -> Prepared:
    """Loads the configured data, checks it, splits it and fits the preprocessing on training rows.

    Args:
        run: The pipeline run the steps log into.
        config: The validated pipeline config.

    Returns:
        The `Prepared` paths (raw rows, split, feature and label specs).

    Raises:
        BadInputError: The data cannot be read, fails its checks or cannot be split.
    """
    raw = steps.load_data(run.id, config, run.workdir)
    steps.validate_data(run.id, config, raw)
    split = steps.split_data(run.id, config, raw, run.workdir)
    return steps.fit_preprocessing(run.id, config, raw, split, run.workdir)
