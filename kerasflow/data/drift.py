"""Feature drift of new data against a model's training rows.

When a model is registered, `reference_stats` summarizes its training rows:
per numeric feature the quantile bin edges, the share of rows in each bin,
the missing share and a bounded random sample of values; per categorical
feature the level frequencies. The summary is stored with the model, so a
later `measure_drift` can compare fresh data with what the model learned
from, by population stability index (PSI) or the two-sample
Kolmogorov-Smirnov statistic, without the old rows. The preprocessing step
computes it (`training_reference`) where the training rows are already in
memory, and saves it as a `Reference` beside the fitted specs; registration
logs that file and reads no rows.

This module deliberately imports neither Prefect, MLflow nor TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.errors import BadInputError
from kerasflow.features.tabular import FeatureSpec, category_tokens

STATS_VERSION = 1
SAMPLE_SIZE = 2000
OTHER_LEVEL = "(other)"
MISSING_LEVEL = "(missing)"
_EPSILON = 1e-4


class DriftError(BadInputError):
    """New data drifted from the champion's training data and `on_drift` is `fail`.

    Args:
        report: The drift report; the message is its summary.
    """

    label = "new data drifted from the champion's training data"

    def __init__(self, report: "DriftReport") -> None:
        super().__init__(report.brief())  # the drifted features; every one is in drift/report.txt
        self.report = report

    def __reduce__(self) -> tuple[type["DriftError"], tuple["DriftReport"]]:
        return (type(self), (self.report,))


@dataclass
class FeatureDrift:
    """The drift statistic of one feature.

    Args:
        feature: Column name.
        kind: `numeric` or `categorical`.
        method: `psi` or `ks`.
        statistic: The PSI or KS statistic; None if the column is missing.
        drifted: Whether the statistic exceeds the threshold.
        p_value: The KS test's p-value (KS only).
        note: Why the statistic is unusual, e.g. the column is missing.
    """

    feature: str
    kind: str
    method: str
    statistic: float | None
    drifted: bool
    p_value: float | None = None
    note: str = ""

    def line(self) -> str:
        """Returns a one-line description."""
        value = "n/a" if self.statistic is None else f"{self.statistic:.4f}"
        p = f" (p={self.p_value:.3g})" if self.p_value is not None else ""
        flag = "DRIFT" if self.drifted else "ok"
        note = f"  [{self.note}]" if self.note else ""
        return f"{self.feature:<28} {self.kind:<11} {self.method} {value}{p} -> {flag}{note}"


@dataclass
class DriftReport:
    """Drift of every feature and the verdict for the whole data set.

    Args:
        method: `psi` or `ks` for numeric features.
        threshold: Per-feature drift threshold.
        max_drifted_share: The data drifts when more than this share of
            features drifted.
        reference_rows: Rows the reference statistics were computed on.
        current_rows: Rows of the new data.
        features: One entry per feature, the most drifted first.
    """

    method: str
    threshold: float
    max_drifted_share: float
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[FeatureDrift]:
        """The features whose statistic exceeds the threshold."""
        return [f for f in self.features if f.drifted]

    @property
    def drifted_share(self) -> float:
        """Share of features that drifted."""
        return len(self.drifted) / len(self.features) if self.features else 0.0

    @property
    def detected(self) -> bool:
        """True when the share of drifted features exceeds `max_drifted_share`."""
        return bool(self.drifted) and self.drifted_share > self.max_drifted_share

    def headline(self) -> str:
        """Returns the verdict, the count of drifted features, the threshold and the row counts, on one line."""
        verdict = "DRIFT DETECTED" if self.detected else "no significant drift"
        return (f"{verdict}: {len(self.drifted)} of {len(self.features)} features drifted "
                f"({self.drifted_share:.1%}; allowed share {self.max_drifted_share:.1%}); "
                f"{self.method} threshold {self.threshold:g}; "
                f"reference {self.reference_rows} rows, current {self.current_rows} rows")

    def summary(self) -> str:
        """Returns a readable report: the verdict, then one line per feature."""
        return "\n".join([self.headline(), *(f"  {f.line()}" for f in self.features)])

    def brief(self, limit: int = 10) -> str:
        """Returns the verdict, then the drifted features only: the first `limit` and a count of the rest.

        Args:
            limit: Drifted features listed. Default 10.

        Returns:
            The text; every feature's line is in `summary()`.
        """
        shown = [f"  {f.line()}" for f in self.drifted[:limit]]
        rest = len(self.drifted) - limit
        more = [f"  ... and {rest} more drifted features (all in drift/report.txt)"] if rest > 0 else []
        return "\n".join([self.headline(), *shown, *more])

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as JSON-serializable data."""
        return {**asdict(self), "detected": self.detected, "drifted_share": self.drifted_share,
                "drifted_features": [f.feature for f in self.drifted]}


def reference_stats(frame: pd.DataFrame, numeric: list[str], categorical: list[str], text: list[str] | None = None,
                    *, bins: int = 10, sample_size: int = SAMPLE_SIZE, seed: int = 0) -> dict[str, Any]:
    """Summarizes training rows for later drift checks.

    Args:
        frame: The training rows.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        text: Free-text columns, summarized by their word counts. Default none.
        bins: Quantile bins per numeric feature. Default 10.
        sample_size: Values kept per numeric feature for the KS test. Default 2000.
        seed: Seed of the sample. Default 0.

    Returns:
        JSON-serializable statistics: `rows`, and per feature under
        `numeric` (and `text`, for word counts) its `edges`, `proportions`
        (one per bin, then missing) and `sample`; under `categorical` its
        level `frequencies`.
    """
    rng = np.random.default_rng(seed)
    stats: dict[str, Any] = {"version": STATS_VERSION, "rows": int(len(frame)), "numeric": {}, "categorical": {},
                             "text": {}}
    for column in numeric:
        stats["numeric"][column] = _distribution(_numbers(frame[column]), bins, sample_size, rng)
    for column in text or []:
        stats["text"][column] = _distribution(_word_counts(frame[column]), bins, sample_size, rng)
    for column in categorical:
        stats["categorical"][column] = {"frequencies": _level_shares(frame[column], None)}
    return stats


@dataclass(frozen=True)
class Reference:
    """The drift reference of a run's training rows: their statistics, or why there are none.

    Args:
        stats: `reference_stats` of the training rows, with the `target`
            column's name; None when they could not be computed.
        error: Why there are no statistics (`TypeName: message`); empty
            when there are.
    """

    stats: dict[str, Any] | None = None
    error: str = ""

    def save(self, path: str | Path) -> Path:
        """Writes the reference as JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Reference":
        """Reads a reference written by `save`."""
        return cls(**json.loads(Path(path).read_text()))


def training_reference(train: pd.DataFrame, features: Any, target: str, *, bins: int = 10,
                       seed: int = 0) -> Reference:
    """The drift reference of the training rows, for the columns a fitted spec reads.

    Called where the training rows are in memory (fitting the
    preprocessing), so that registering the model reads no rows. Statistics
    that cannot be computed give a reference with an `error` instead of
    raising: a registration is never blocked on drift statistics.

    Args:
        train: The training rows.
        features: The fitted `FeatureSpec` (numeric, categorical and text
            columns), or an image spec (its `drift_columns()`: pixels or file
            sizes).
        target: The label column (`data.target`), recorded with the statistics.
        bins: Quantile bins per numeric feature (`registry.drift.bins`). Default 10.
        seed: Seed of the kept sample (`split.seed`). Default 0.

    Returns:
        The `Reference`.
    """
    try:
        numeric, categorical = (features.numeric, features.categorical) if isinstance(features, FeatureSpec) \
            else features.drift_columns()  # an image spec (kerasflow/features/images.py): pixels or file sizes
        text = getattr(features, "text_columns", [])  # free text: drift of word counts
        stats = reference_stats(train, numeric, categorical, text, bins=bins, seed=seed)
    except (ValueError, TypeError, KeyError) as exc:
        return Reference(error=f"{type(exc).__name__}: {exc}"[:4000])
    return Reference({**stats, "target": target})


def measure_drift(frame: pd.DataFrame, reference: dict[str, Any], *, method: str = "psi",
                  threshold: float = 0.2, max_drifted_share: float = 0.0) -> DriftReport:
    """Compares new rows with a model's reference statistics.

    Args:
        frame: The new rows.
        reference: Statistics from `reference_stats`.
        method: `psi` (default) or `ks` for numeric features; categorical
            features always use PSI.
        threshold: A feature drifts when its statistic exceeds this. Default 0.2.
        max_drifted_share: Share of drifted features above which the data
            set drifts. Default 0 (any drifted feature).

    Returns:
        A `DriftReport`, the most drifted features first. A reference
        feature missing from `frame` counts as drifted.
    """
    features: list[FeatureDrift] = []
    for column, ref in reference.get("numeric", {}).items():
        features.append(_numeric_drift(frame, column, ref, method, threshold))
    for column, ref in reference.get("text", {}).items():
        features.append(_numeric_drift(frame, column, ref, method, threshold, kind="text"))
    for column, ref in reference.get("categorical", {}).items():
        features.append(_categorical_drift(frame, column, ref, threshold))
    features.sort(key=lambda f: (not f.drifted, -(f.statistic if f.statistic is not None else math.inf)))
    return DriftReport(method=method, threshold=threshold, max_drifted_share=max_drifted_share,
                       reference_rows=int(reference.get("rows", 0)), current_rows=int(len(frame)), features=features)


def population_stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    """Returns the PSI of two share vectors over the same bins.

    Args:
        expected: Reference shares (summing to 1).
        actual: Current shares (summing to 1).

    Returns:
        `sum((a - e) * ln(a / e))`, with empty bins smoothed to 1e-4.
    """
    e = np.clip(np.asarray(expected, dtype="float64"), _EPSILON, None)
    a = np.clip(np.asarray(actual, dtype="float64"), _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_drift(frame: pd.DataFrame, column: str, ref: dict[str, Any], method: str, threshold: float,
                   kind: str = "numeric") -> FeatureDrift:
    """Drift of a numeric column, or of a text column's word counts (`kind="text"`)."""
    if column not in frame.columns:
        return FeatureDrift(column, kind, method, None, True, note="column missing from the new data")
    values = _word_counts(frame[column]) if kind == "text" else _numbers(frame[column])
    note = "word counts" if kind == "text" else ""
    if method == "ks":
        from scipy.stats import ks_2samp

        present, sample = values[np.isfinite(values)], np.asarray(ref["sample"], dtype="float64")
        if present.size == 0 or sample.size == 0:
            return FeatureDrift(column, kind, "ks", None, True, note="no values to compare")
        result = ks_2samp(sample, present)
        statistic = float(result.statistic)
        return FeatureDrift(column, kind, "ks", statistic, statistic > threshold, p_value=float(result.pvalue),
                            note=note)
    psi = population_stability_index(np.asarray(ref["proportions"]), _bin_shares(values, np.asarray(ref["edges"])))
    return FeatureDrift(column, kind, "psi", psi, psi > threshold, note=note)


def _distribution(values: np.ndarray, bins: int, sample_size: int, rng: np.random.Generator) -> dict[str, Any]:
    """Quantile bin edges, the share of values per bin (then missing), and a random sample."""
    present = values[np.isfinite(values)]
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if present.size else np.array([])
    edges = np.unique(quantiles)
    sample = rng.choice(present, size=min(sample_size, present.size), replace=False) if present.size else present
    return {"edges": edges.tolist(), "proportions": _bin_shares(values, edges).tolist(),
            "sample": [float(v) for v in sample]}


def _word_counts(series: pd.Series) -> np.ndarray:
    """Whitespace-separated word count of each text value; NaN where missing."""
    counts = series.astype(object).map(lambda v: float(len(str(v).split())) if isinstance(v, str) else np.nan)
    return counts.to_numpy(dtype="float64", na_value=np.nan)


def _categorical_drift(frame: pd.DataFrame, column: str, ref: dict[str, Any], threshold: float) -> FeatureDrift:
    if column not in frame.columns:
        return FeatureDrift(column, "categorical", "psi", None, True, note="column missing from the new data")
    expected = ref["frequencies"]
    current = _level_shares(frame[column], set(expected))
    levels = sorted(set(expected) | set(current))
    psi = population_stability_index(np.array([expected.get(k, 0.0) for k in levels]),
                                     np.array([current.get(k, 0.0) for k in levels]))
    unseen = current.get(OTHER_LEVEL, 0.0)
    note = f"{unseen:.1%} of rows have levels unseen in training" if unseen and OTHER_LEVEL not in expected else ""
    return FeatureDrift(column, "categorical", "psi", psi, psi > threshold, note=note)


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of values in the bins `(-inf, e0], (e0, e1], ..., (ek, inf)` and then missing."""
    finite = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[finite], side="left"), minlength=len(edges) + 1)
    counts = np.append(counts, int((~finite).sum())).astype("float64")
    return counts / max(len(values), 1)


def _numbers(series: pd.Series) -> np.ndarray:
    """Numeric values as float64; text and missing values become NaN (counted as missing)."""
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _level_shares(series: pd.Series, known: set[str] | None) -> dict[str, float]:
    tokens = pd.Series(category_tokens(series, missing=MISSING_LEVEL))
    if known is not None:
        tokens = tokens.where(tokens.isin(known) | (tokens == MISSING_LEVEL), OTHER_LEVEL)
    shares = tokens.value_counts(normalize=True)
    return {str(k): float(v) for k, v in shares.items()}
