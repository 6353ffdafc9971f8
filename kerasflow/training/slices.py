"""Sliced evaluation: the test rows cut by a column's values or quantile bins, each slice scored like the whole set.

In the manner of TensorFlow Model Analysis's slicing specs: a categorical
column gives one slice per value, a numeric one a slice per quantile bin of
its training rows. Each slice gets the metrics of the whole test set; the
worst slice with at least `evaluation.min_slice_rows` rows gives the summary
metric `slice_min.<metric>` (`slice_max.<metric>` for losses and errors),
which the gate may bound. Plain functions: the scoring itself is a callable
the caller passes (`kerasflow.training.rows`), so this holds no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from kerasflow.schemas.evaluation import DEFAULT_BINS, EvaluationConfig, SliceSpec

MISSING = "missing"
SUMMARY_PREFIXES = ("slice_min.", "slice_max.")
LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")  # as `kerasflow.promotion.gate`, which sits above


@dataclass(frozen=True)
class Slice:
    """The test rows of one value (or bin) of one column.

    Args:
        column: The column.
        value: The value or the bin, as text (`female`, `[30, 42)`, `missing`).
        mask: Which test rows belong to it (booleans, in test-row order).
    """

    column: str
    value: str
    mask: np.ndarray

    @property
    def name(self) -> str:
        """The slice's name, `column=value`."""
        return f"{self.column}={self.value}"


def make_slices(test: pd.DataFrame, train: pd.DataFrame, specs: list[SliceSpec],
                categorical: list[str] | None = None) -> list[Slice]:
    """Cuts the test rows into slices, column by column.

    Args:
        test: The raw test rows.
        train: The raw training rows (numeric bins are cut at their quantiles).
        specs: The slices of `evaluation.slices`.
        categorical: `data.categorical`: numeric columns sliced by value
            unless a spec gives `bins`. Default none.

    Returns:
        The non-empty slices, in the order of `specs`, then of the values
        (sorted) or bins (ascending), missing values last.

    Raises:
        KeyError: A column is not in the rows.
    """
    slices: list[Slice] = []
    for spec in specs:
        values = test[spec.column]
        by_bins = spec.bins is not None or (_is_numeric(values) and spec.column not in (categorical or []))
        if by_bins:
            slices += _binned(spec.column, values, train[spec.column], spec.bins or DEFAULT_BINS)
        else:
            slices += _by_value(spec.column, values)
    return [s for s in slices if s.mask.any()]


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _by_value(column: str, values: pd.Series) -> list[Slice]:
    text = values.astype("string")
    present = values.notna().to_numpy()
    slices = [Slice(column, str(v), (text == v).fillna(False).to_numpy(dtype=bool)) for v in sorted(text.dropna().unique())]
    return slices + [Slice(column, MISSING, ~present)]


def _binned(column: str, values: pd.Series, train: pd.Series, bins: int) -> list[Slice]:
    """Quantile bins of the training values; the lowest and highest bins are open-ended."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    reference = pd.to_numeric(train, errors="coerce").dropna().to_numpy(dtype="float64")
    if not len(reference):
        reference = numbers[~np.isnan(numbers)]
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1]) if len(reference) else np.array([])
    present = ~np.isnan(numbers)
    codes = np.searchsorted(edges, numbers, side="right")
    bounds = [-np.inf, *edges, np.inf]
    slices = [Slice(column, _bin_label(bounds[i], bounds[i + 1]), present & (codes == i)) for i in range(len(edges) + 1)]
    return slices + [Slice(column, MISSING, ~present)]


def _bin_label(low: float, high: float) -> str:
    if np.isinf(low) and np.isinf(high):
        return "all"
    if np.isinf(low):
        return f"< {high:.4g}"
    if np.isinf(high):
        return f">= {low:.4g}"
    return f"[{low:.4g}, {high:.4g})"


def slice_table(slices: list[Slice], score: Callable[[np.ndarray], dict[str, float]],
                min_rows: int) -> list[dict[str, Any]]:
    """Scores every slice.

    Args:
        slices: The slices (`make_slices`).
        score: Scores the test rows a mask selects, as the whole set is
            scored; returns the metrics by name.
        min_rows: Slices with fewer rows are reported with `gated` false.

    Returns:
        One row per slice: `slice`, `column`, `value`, `rows`, `gated`,
        then its metrics (per-class metrics left out).
    """
    rows = []
    for item in slices:
        count = int(item.mask.sum())
        metrics = {k: float(v) for k, v in score(item.mask).items() if not _per_class(k)}
        rows.append({"slice": item.name, "column": item.column, "value": item.value, "rows": count,
                     "gated": count >= min_rows, **metrics})
    return rows


def _per_class(metric: str) -> bool:
    return metric.startswith("class.") or ".class." in metric


def lower_is_better(metric: str) -> bool:
    """Returns True for losses and errors (the worst slice is the one with the largest value)."""
    last = metric.split(".")[-1]
    return any(token in last for token in LOWER_IS_BETTER)


def summarize(rows: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, str]]:
    """Finds the worst gated slice of every metric.

    Args:
        rows: The slice table (`slice_table`).

    Returns:
        `(metrics, worst)`: `{"slice_min.accuracy": 0.81, "slice_max.loss": ...}`
        over the gated slices, and the worst slice of each metric by metric
        name, e.g. `{"accuracy": "sex=female (n=41)"}`. Metrics a slice
        could not produce (NaN, or missing: ROC AUC of a one-class slice)
        are skipped for that slice.
    """
    gated = [r for r in rows if r["gated"]]
    names = list(dict.fromkeys(k for r in gated for k in r if k not in ("slice", "column", "value", "rows", "gated")))
    metrics, worst = {}, {}
    for name in names:
        scored = [r for r in gated if isinstance(r.get(name), float) and np.isfinite(r[name])]
        if not scored:
            continue
        high = lower_is_better(name)
        row = (max if high else min)(scored, key=lambda r: r[name])
        metrics[f"{'slice_max' if high else 'slice_min'}.{name}"] = row[name]
        worst[name] = f"{row['slice']} (n={row['rows']})"
    return metrics, worst


def evaluate_slices(evaluation: Any, section: EvaluationConfig, test: pd.DataFrame, train: pd.DataFrame,
                    score: Callable[[np.ndarray], dict[str, float]], categorical: list[str] | None = None) -> Any:
    """Adds the slice table, the `slice_min.*`/`slice_max.*` metrics and the worst slices to an evaluation.

    Args:
        evaluation: The whole test set's `Evaluation`.
        section: The `evaluation` section (its `slices`, `min_slice_rows`).
        test: The raw test rows, in the order `score`'s masks index.
        train: The raw training rows.
        score: Scores the test rows a mask selects.
        categorical: `data.categorical`. Default none.

    Returns:
        The evaluation with `slices`, `worst` and the summary metrics; the
        evaluation unchanged when no slice is configured.
    """
    if not section.slices:
        return evaluation
    rows = slice_table(make_slices(test, train, section.slice_specs, categorical), score, section.min_slice_rows)
    metrics, worst = summarize(rows)
    return replace(evaluation, metrics={**evaluation.metrics, **metrics}, slices=rows, worst=worst)
