"""The `fit_features` keywords a pipeline config's `preprocessing` section asks for.

The table kind, the k-fold and search folds and the text/functional inputs
fit their feature specs with the same keywords (`preprocessing_options`),
so a new encoding option is added here once.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kerasflow.features.tabular import NUMERIC_EMBEDDING, FeatureError


def preprocessing_options(config: Any, train: pd.DataFrame | None = None, labels: Any = None) -> dict[str, Any]:
    """The `fit_features` keywords of a pipeline config's `preprocessing` section.

    Piecewise-linear bins are fitted when the section asks for them or the
    search space (`tuning.space`) may choose them; with
    `numeric_bin_edges: target`, on the label of `train` that `labels` names.

    Args:
        config: The `PipelineConfig`.
        train: The training rows, for target-aware bins.
        labels: The fitted label spec (its column and task), for target-aware bins.

    Returns:
        `impute`, `normalize`, `max_categories`, `numeric_embedding`, `bins`,
        `n_bins` and `categorical_embedding`, and `label` and `task` for
        target-aware bins.

    Raises:
        FeatureError: Target-aware bins are asked for without one label
            column (a model with several outputs).
    """
    p = config.preprocessing
    searched = (config.tuning.space or {}).get(NUMERIC_EMBEDDING) if config.tuning is not None else None
    choices = getattr(searched, "values", None) or []
    return {"impute": p.impute, "normalize": p.normalize, "max_categories": p.max_categories,
            "numeric_embedding": p.numeric_embedding,
            "bins": "piecewise_linear" in [p.numeric_embedding, *choices], "n_bins": p.numeric_bins,
            "categorical_embedding": p.categorical_embedding, **_bin_label(p, train, labels)}


def _bin_label(section: Any, train: pd.DataFrame | None, labels: Any) -> dict[str, Any]:
    if section.numeric_bin_edges != "target" or train is None:
        return {}
    if labels.task not in ("classification", "regression"):
        raise FeatureError("preprocessing.numeric_bin_edges: target fits its bins on one label column, and the "
                           "model has several output heads; use quantile")
    return {"label": train[labels.column], "task": labels.task}
