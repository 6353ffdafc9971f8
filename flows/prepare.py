"""The data steps every pipeline starts with: load, validate, split, fit preprocessing."""

from __future__ import annotations

from kerasflow.data.prepared import Prepared
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.load import load_data
from kerasflow.tasks.preprocess import fit_preprocessing
from kerasflow.tasks.split import split_data
from kerasflow.tasks.validate import validate_data
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
    raw = load_data(run.tracker, config, run.workdir)
    validate_data(run.tracker, config, raw)
    split = split_data(run.tracker, config, raw, run.workdir)
    return fit_preprocessing(run.tracker, config, raw, split, run.workdir)
