"""How the final model is refitted after a search or k-fold cross-validation."""

from __future__ import annotations

from typing import Any

from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.cv import CVSummary


def refit_plan(config: PipelineConfig, tuned: dict[str, Any] | None, cv: CVSummary | None) -> dict[str, Any]:
    """Decides how the final model is trained after a search and/or cross-validation.

    Args:
        config: The pipeline config.
        tuned: Output of `search_hyperparameters`, or None.
        cv: The `CVSummary` of cross-validation, or None.

    Returns:
        `train_model` keyword arguments `refit` and `epochs`: k-fold ends
        with `ensemble` (the fold models averaged; no training) or, with
        `split.final: refit`, refits on all non-test rows for the median of
        the folds' best epochs; a search follows `tuning.refit` with the
        best trial's epoch count; otherwise the training rows with early
        stopping.
    """
    if cv is not None and config.split.final == "ensemble":
        return {"refit": "ensemble", "epochs": None}
    if cv is not None:
        return {"refit": "train+val", "epochs": cv.epochs}
    if tuned is not None:
        return {"refit": config.tuning.refit, "epochs": tuned["epochs"]}
    return {"refit": "train", "epochs": None}
