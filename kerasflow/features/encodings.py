"""What the tabular encodings fit on training rows: quantiles, piecewise-linear bins, embedding sizes.

NumPy (and scikit-learn's decision trees for target-aware bins), so fitting a
feature spec does not load TensorFlow; the Keras
layers that apply these statistics inside the model are in
`kerasflow.features.numeric_embeddings` (which re-exports
`fit_quantile_bins` and `fit_quantiles`). From Gorishniy et al., "On
Embeddings for Numerical Features in Tabular Deep Learning" (NeurIPS 2022)
and "TabM" (ICLR 2025).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

# scikit-learn's QuantileTransformer bounds: values within 1e-7 of the extreme quantiles map to
# the extremes, whose normal scores are clipped to norm.ppf(1e-7 - eps) and its opposite
BOUNDS_THRESHOLD = 1e-7
NORMAL_CLIP = 5.199337582605575
N_BINS = 48  # piecewise-linear bins per numeric column (the papers' default)
TREE_LEAF_CAP = 64  # the largest leaf of a target-aware bin tree (rtdl_num_embeddings' example)
TREE_MIN_DECREASE = 1e-4  # the smallest impurity decrease a target-aware bin tree splits for
TREE_ROWS = 100_000  # the most rows a target-aware bin tree is fitted on (a fixed sample of larger tables)
EMBEDDING_CAP = 16  # the largest `dim: auto` of a categorical embedding


def fit_quantile_bins(values, n_bins: int = N_BINS) -> list[list[float]]:
    """Quantile bin edges of each numeric column, for `PiecewiseLinearEncoding`.

    Edges are the `n_bins + 1` quantiles of the column's non-missing values
    with duplicates removed, so a column with ties or few distinct values
    gets fewer bins. A constant column gets the single bin `[c, c + 1]`; an
    all-missing column `[0, 1]`.

    Args:
        values: Training rows only, shape `(n_rows, n_features)`.
        n_bins: The largest number of bins per column.

    Returns:
        One sorted list of at least two edges per column.

    Raises:
        ValueError: If `values` is not two-dimensional or `n_bins < 1`.
    """
    values = np.asarray(values, dtype="float64")
    if values.ndim != 2 or n_bins < 1:
        raise ValueError(f"values must be 2-D and n_bins >= 1, got shape {values.shape} and n_bins={n_bins}")
    levels = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for column in values.T:
        column = column[np.isfinite(column)]
        edges = np.quantile(column, levels) if column.size else np.array([0.0])
        bins.append(_strict_edges(edges))
    return bins


def fit_target_bins(values, label, n_bins: int = N_BINS, task: str = "classification",
                    max_rows: int = TREE_ROWS) -> list[list[float]]:
    """Target-aware bin edges of each numeric column: the thresholds of a decision tree on the column and the label.

    Gorishniy et al. (NeurIPS 2022, section 3.2, "target-aware bins"): for
    each column alone, a decision tree with at most `n_bins` leaves is
    fitted to predict the label; its split thresholds, with the column's
    smallest and largest training value, are the edges. Bins then follow
    where the label changes instead of where the rows are dense, so a few
    wide bins cover a flat stretch and narrow ones a steep one. A leaf holds
    at least `min(64, max(1, rows // n_bins))` rows, and a split must
    lower the impurity by 1e-4 (the reference implementation's example
    settings, with the leaf scaled down for small tables; a regression
    label is standardized first, so the threshold does not depend on its
    units). A table of more than `max_rows` rows fits its trees on a fixed
    random sample of that many (seed 0; one column of a million rows takes
    about 0.9 s whole, once per fold), its edges still spanning every row's range.

    Args:
        values: Training rows only, shape `(n_rows, n_features)`; NaN is
            left out of each column's tree.
        label: The training rows' labels, `(n_rows,)`: class labels, or
            numbers for regression.
        n_bins: The largest number of bins per column.
        task: `classification` (Gini trees) or `regression` (squared-error trees).
        max_rows: The most rows a tree is fitted on. Default 100,000.

    Returns:
        One sorted list of at least two edges per column.

    Raises:
        ValueError: If `values` is not two-dimensional, `n_bins < 1`, or
            `label` does not have one value per row.
    """
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    values, label = np.asarray(values, dtype="float64"), np.asarray(label)
    if values.ndim != 2 or n_bins < 1 or label.shape != (values.shape[0],):
        raise ValueError(f"values must be 2-D with one label per row and n_bins >= 1, got shapes {values.shape}, "
                         f"{label.shape} and n_bins={n_bins}")
    tree_class = DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier
    if task == "regression":  # the impurity threshold is in the label's units: standardize it
        label = (label.astype("float64") - label.mean()) / (label.std() or 1.0)
    rows = np.sort(np.random.default_rng(0).choice(len(label), max_rows, replace=False)) if (
        len(label) > max_rows) else slice(None)
    sampled = label[rows]
    bins = []
    for column in values.T:
        x = column[rows]
        finite = np.isfinite(x)
        x, y = x[finite], sampled[finite]
        if x.size < 2 or n_bins < 2:
            bins.append(_strict_edges(_range(column) if x.size else [0.0]))
            continue
        tree = tree_class(max_leaf_nodes=n_bins, min_samples_leaf=min(TREE_LEAF_CAP, max(1, x.size // n_bins)),
                          min_impurity_decrease=TREE_MIN_DECREASE, random_state=0)
        fitted = tree.fit(x[:, None], y).tree_
        splits = fitted.threshold[fitted.children_left != fitted.children_right]
        bins.append(_strict_edges([*_range(column), *splits]))
    return bins


def _range(column: np.ndarray) -> list[float]:
    """The smallest and largest finite value of a column."""
    finite = column[np.isfinite(column)]
    return [float(finite.min()), float(finite.max())]


def fit_quantiles(values, n_quantiles: int = 1000) -> np.ndarray:
    """Quantiles of each numeric column, as `QuantileTransformer.fit` computes them.

    Args:
        values: Training rows only, shape `(n_rows, n_features)`; NaN is ignored.
        n_quantiles: The number of quantiles; at most the number of rows is used.

    Returns:
        A float64 array `(n_features, n_used_quantiles)`, non-decreasing along its last axis.
    """
    values = np.asarray(values, dtype="float64")
    count = max(1, min(int(n_quantiles), values.shape[0]))
    quantiles = np.nanpercentile(values, np.linspace(0.0, 1.0, count) * 100, axis=0).T
    return np.maximum.accumulate(quantiles, axis=1)


def quantile_count(rows: int) -> int:
    """The number of quantiles of `normalize: quantile`: `rows // 30` within [10, 1000] (the TabM paper's rule)."""
    return int(min(max(rows // 30, 10), 1000))


def quantile_normal(values, quantiles) -> np.ndarray:
    """NumPy twin of `QuantileNormalization`: maps each column through its quantiles to a standard normal.

    Args:
        values: `(n_rows, n_features)`, no NaN.
        quantiles: `(n_features, n_quantiles)` from `fit_quantiles`.

    Returns:
        The float64 normal scores, clipped to ±`NORMAL_CLIP`.
    """
    values, quantiles = np.asarray(values, dtype="float64"), np.asarray(quantiles, dtype="float64")
    levels = np.linspace(0.0, 1.0, quantiles.shape[1])
    ranks = np.empty_like(values)
    for j, (x, q) in enumerate(zip(values.T, quantiles)):
        if q.size == 1:
            rank = np.zeros_like(x)
        else:
            rank = 0.5 * (np.interp(x, q, levels) - np.interp(-x, -q[::-1], -levels[::-1]))
        rank = np.where(x + BOUNDS_THRESHOLD > q[-1], 1.0, rank)
        ranks[:, j] = np.where(x - BOUNDS_THRESHOLD < q[0], 0.0, rank)
    normal = NormalDist()
    scores = [[normal.inv_cdf(r) if 0.0 < r < 1.0 else math.copysign(NORMAL_CLIP, r - 0.5) for r in row]
              for row in ranks]
    return np.clip(np.asarray(scores, dtype="float64").reshape(values.shape), -NORMAL_CLIP, NORMAL_CLIP)


def normalized_bins(filled, normalize: str, mean=None, scale=None, quantiles=None,
                    n_bins: int = N_BINS, label=None, task: str = "classification") -> list[list[float]]:
    """Piecewise-linear bin edges of the values the embedding receives: after imputation and normalization.

    The edges are the quantiles of the filled training values (or, given
    `label`, the target-aware edges of `fit_target_bins`) mapped through the
    column's normalization (a monotone map, so quantiles stay the
    quantiles of the normalized values), with edges that the map merges
    (the clipped tails of `quantile`) removed.

    Args:
        filled: Training rows after imputation, `(n_rows, n_features)`.
        normalize: `standard`, `quantile` or `none`.
        mean: Column means (`standard`).
        scale: Column standard deviations, zeros replaced by one (`standard`).
        quantiles: `(n_features, n_quantiles)` (`quantile`).
        n_bins: The largest number of bins per column.
        label: The training labels for target-aware edges, or None (default) for quantile edges.
        task: `classification` or `regression`, with `label`.

    Returns:
        One strictly increasing list of at least two edges per column.
    """
    bins = fit_quantile_bins(filled, n_bins) if label is None else fit_target_bins(filled, label, n_bins, task)
    if normalize == "none":
        return bins
    mapped = []
    for j, edges in enumerate(bins):
        edges = np.asarray(edges, dtype="float64")
        if normalize == "standard":
            edges = (edges - mean[j]) / scale[j]
        else:
            edges = quantile_normal(edges[:, None], np.asarray(quantiles[j])[None, :])[:, 0]
        mapped.append(_strict_edges(edges))
    return mapped


def embedding_size(cardinality: int, dim: int | str = "auto") -> int:
    """The width of a categorical column's embedding.

    `auto` is fastai's rule of thumb, `round(1.6 * cardinality ** 0.56)`
    (Howard and Gugger, "fastai", Information 2020), rounded up and capped at
    `EMBEDDING_CAP` (16).

    Args:
        cardinality: Rows of the embedding table: the column's training
            levels plus the out-of-vocabulary slot.
        dim: A fixed width, or `auto`.

    Returns:
        The embedding width, at least 1.
    """
    if dim != "auto":
        return int(dim)
    return max(1, min(EMBEDDING_CAP, math.ceil(1.6 * cardinality**0.56)))


def embedded_columns(vocabularies: dict[str, list[str]], embedding: Any) -> dict[str, int]:
    """The categorical columns embedded instead of one-hot encoded, with their widths.

    Args:
        vocabularies: Training levels of each categorical column.
        embedding: The `preprocessing.categorical_embedding` section (`above`,
            `dim`), or None for one-hot everywhere.

    Returns:
        `{column: width}` of the columns with more than `above` levels.
    """
    if embedding is None:
        return {}
    return {column: embedding_size(len(levels) + 1, embedding.dim)
            for column, levels in vocabularies.items() if len(levels) > embedding.above}


def _strict_edges(edges) -> list[float]:
    """Sorted distinct edges, at least two: a single value `c` becomes the bin `[c, c + 1]`."""
    edges = np.unique(np.asarray(edges, dtype="float64"))
    if edges.size < 2:
        edges = np.array([edges[0], edges[0] + 1.0])
    return [float(edge) for edge in edges]


def normalization(normalize: bool | str) -> str:
    """`normalize` as one of `standard`, `quantile`, `none` (the booleans of older configs and specs mapped)."""
    if isinstance(normalize, bool):
        return "standard" if normalize else "none"
    return str(normalize)


def safe_variance(variance) -> list[float]:
    """Variances with the (near-)zero ones of constant columns replaced by one, so z-scores stay finite."""
    return [float(v) if v > 1e-12 else 1.0 for v in variance]


def fit_numeric_encoding(values, filled, mean, variance, normalize: str, bins: bool,
                         n_bins: int = N_BINS, label=None, task: str = "classification") -> dict[str, Any]:
    """The statistics of `normalize: quantile` and of piecewise-linear embeddings, fitted on training rows.

    Args:
        values: Training rows of the numeric columns, NaN where missing, `(n_rows, n_features)`.
        filled: The same rows after imputation.
        mean: Column means of `filled`.
        variance: Column variances of `filled`.
        normalize: `standard`, `quantile` or `none`.
        bins: Fit piecewise-linear bin edges.
        n_bins: The largest number of bins per column.
        label: The training labels for target-aware bin edges (`fit_target_bins`), or None for quantile edges.
        task: `classification` or `regression`, with `label`.

    Returns:
        `{"quantiles": ..., "bins": ...}` as lists (empty when not asked for):
        `quantile_count(rows)` quantiles per column, and the bin edges of the
        normalized values (`normalized_bins`).
    """
    values = np.asarray(values, dtype="float64")
    quantiles = fit_quantiles(values, quantile_count(values.shape[0])) if normalize == "quantile" else None
    edges = normalized_bins(filled, normalize, np.asarray(mean), np.sqrt(safe_variance(variance)),
                            quantiles, n_bins, label, task) if bins else []
    return {"quantiles": [] if quantiles is None else quantiles.tolist(), "bins": edges}
