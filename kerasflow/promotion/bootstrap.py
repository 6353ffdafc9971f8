"""Bootstrap confidence intervals of test metrics, and of a paired champion/challenger difference.

A finite test set gives a noisy metric: 0.2 points of accuracy on 1,000
rows is well inside the noise. The intervals here are percentile
bootstrap intervals computed from per-row outputs (true and predicted
labels, class probabilities, regression values), vectorized with NumPy:
the row indices of every resample are drawn once as an integer matrix
`(n_resamples, n_rows)` (in blocks of resamples, so a large test set
does not need one huge matrix), turned into per-row counts, and every
metric of a resample is then a weighted sum over the rows. Metrics that
are not row averages (F1, per-class recall, ROC AUC, R²) are computed per
resample from the same counts, vectorized over the resamples.

A paired comparison resamples the same rows for both models, so the
interval is of the difference on identical test rows.

Plain NumPy (and pandas to read the prediction files): no MLflow, no
Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kerasflow.promotion.gate import lower_is_better
from kerasflow.schemas.promotion import comparable_metric

BLOCK_CELLS = 1 << 22  # resample-by-row cells per block: ~32 MB of int64 counts at a time


@dataclass
class RowOutputs:
    """Per-row outputs of one model (one head) on the test rows.

    Args:
        task: `classification` or `regression`.
        truth: Class codes (index into `classes`, -1 for a class the model
            does not know) or true values.
        prediction: Predicted class codes, or predicted values.
        proba: Class probabilities `(n_rows, n_classes)`, or None.
        classes: Class names, in code order (classification only).
    """

    task: str
    truth: np.ndarray
    prediction: np.ndarray
    proba: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.truth)


@dataclass
class Interval:
    """A metric (or a difference of metrics) with its bootstrap confidence interval.

    Args:
        metric: The metric's name.
        estimate: The value on all test rows.
        low: The interval's lower bound.
        high: The interval's upper bound.
        confidence: Its level, e.g. 0.95.
        resamples: Resamples the bounds come from (those where the metric is defined).
    """

    metric: str
    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int

    def text(self) -> str:
        """`accuracy +0.004 (95% CI -0.003…+0.011)`."""
        return (f"{self.metric} {self.estimate:+.4g} ({self.confidence * 100:g}% CI "
                f"{self.low:+.4g}…{self.high:+.4g})")


def outputs_from_frame(frame: pd.DataFrame) -> RowOutputs:
    """Reads per-row outputs from an evaluation's predictions (`predictions.csv`).

    Args:
        frame: `actual`, `prediction` and, for a classifier, one
            `proba_<class>` column per class (`save_reports` writes them).

    Returns:
        The `RowOutputs`.
    """
    probas = [c for c in frame.columns if str(c).startswith("proba_")]
    if not probas:
        return RowOutputs("regression", frame["actual"].to_numpy(dtype="float64"),
                          frame["prediction"].to_numpy(dtype="float64"))
    classes = tuple(str(c).removeprefix("proba_") for c in probas)
    codes = {name: code for code, name in enumerate(classes)}
    truth = np.array([codes.get(str(v), -1) for v in frame["actual"]], dtype="int64")
    prediction = np.array([codes.get(str(v), -1) for v in frame["prediction"]], dtype="int64")
    return RowOutputs("classification", truth, prediction, frame[probas].to_numpy(dtype="float64"), classes)


def read_outputs(folder: str | Path) -> dict[str, RowOutputs]:
    """Reads the per-row outputs an evaluation wrote into a folder.

    Args:
        folder: The evaluation's report folder: `predictions.csv` for a
            single-output model, `<head>/predictions.csv` per head otherwise.

    Returns:
        `{"": outputs}` for one output, `{head: outputs}` for several; empty
        when the folder holds no predictions.
    """
    root = Path(folder)
    if (root / "predictions.csv").is_file():
        return {"": outputs_from_frame(_read_predictions(root / "predictions.csv"))}
    return {sub.name: outputs_from_frame(_read_predictions(sub / "predictions.csv"))
            for sub in sorted(root.iterdir()) if (sub / "predictions.csv").is_file()} if root.is_dir() else {}


def _read_predictions(path: Path) -> pd.DataFrame:
    """Reads a predictions file, labels as text (class names are compared as the evaluation wrote them)."""
    return pd.read_csv(path, dtype={"actual": str, "prediction": str}, keep_default_na=False).pipe(_numeric_values)


def _numeric_values(frame: pd.DataFrame) -> pd.DataFrame:
    if any(str(c).startswith("proba_") for c in frame.columns):
        return frame
    return frame.assign(actual=pd.to_numeric(frame["actual"], errors="coerce"),
                        prediction=pd.to_numeric(frame["prediction"], errors="coerce"))


def locate(outputs: dict[str, RowOutputs], metric: str) -> tuple[RowOutputs, str] | None:
    """Finds the outputs a metric is computed from, and its name within them.

    Args:
        outputs: Per-row outputs by head (`""` for a single output).
        metric: `accuracy`, `class.3.recall`, or `<head>.<metric>`.

    Returns:
        `(outputs, name)`, or None when no outputs can give the metric
        (e.g. `loss`, which is Keras's and has no per-row form here).
    """
    head, _, rest = metric.partition(".")
    if "" not in outputs and head in outputs and rest:
        rows, name = outputs[head], rest
    elif "" in outputs:
        rows, name = outputs[""], metric
    else:
        return None
    if not comparable_metric(name) or _metric_task(name) not in (None, rows.task) or not len(rows):
        return None
    return rows, name


def resample_indices(n_rows: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Draws the row indices of `resamples` bootstrap resamples at once.

    Returns:
        An integer matrix `(resamples, n_rows)`.
    """
    return rng.integers(0, n_rows, size=(resamples, n_rows))


def counts_of(indices: np.ndarray, n_rows: int) -> np.ndarray:
    """Turns a matrix of resampled row indices into per-row counts `(resamples, n_rows)`."""
    resamples = indices.shape[0]
    offsets = indices + (np.arange(resamples, dtype="int64") * n_rows)[:, None]
    return np.bincount(offsets.ravel(), minlength=resamples * n_rows).reshape(resamples, n_rows)


def resample_counts(n_rows: int, resamples: int, seed: int):
    """Yields the per-row counts of every resample, a block of resamples at a time (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, BLOCK_CELLS // max(n_rows, 1)))
    for start in range(0, resamples, block):
        yield counts_of(resample_indices(n_rows, min(block, resamples - start), rng), n_rows)


def metric_values(rows: RowOutputs, metric: str, weights: np.ndarray) -> np.ndarray:
    """Computes a metric for each row weighting (one bootstrap resample per weighting).

    Args:
        rows: Per-row outputs.
        metric: The metric's name within these outputs (`accuracy`, `mae`,
            `f1_macro`, `class.<name>.recall`, `roc_auc`, ...).
        weights: Per-row counts `(resamples, n_rows)`; a row of ones gives
            the metric on the test rows themselves.

    Returns:
        One value per weighting; NaN where the metric is undefined (e.g.
        ROC AUC on a resample holding one class only).

    Raises:
        ValueError: The metric cannot be computed from per-row outputs.
    """
    w = np.asarray(weights, dtype="float64")
    total = w.sum(axis=1)
    if rows.task == "regression":
        return _regression(rows, metric, w, total)
    if metric == "accuracy":
        return w @ (rows.truth == rows.prediction).astype("float64") / total
    if metric in ("roc_auc", "roc_auc_ovr"):
        return _auc(rows, w) if metric == "roc_auc" else _auc_ovr(rows, w)
    return _from_counts(rows, metric, w, total)


def _regression(rows: RowOutputs, metric: str, w: np.ndarray, total: np.ndarray) -> np.ndarray:
    error = rows.prediction - rows.truth
    if metric == "mae":
        return w @ np.abs(error) / total
    if metric in ("mse", "rmse"):
        mse = w @ (error**2) / total
        return np.sqrt(mse) if metric == "rmse" else mse
    if metric == "r2":
        mean = w @ rows.truth / total
        sst = w @ (rows.truth**2) - total * mean**2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sst > 0, 1.0 - (w @ (error**2)) / sst, np.nan)
    raise ValueError(f"{metric!r} cannot be computed from a regression model's per-row outputs")


def _class_counts(rows: RowOutputs, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted and true counts per class: three `(resamples, n_classes)` arrays."""
    n_classes = len(rows.classes)
    truth = np.eye(n_classes + 1)[rows.truth][:, :n_classes]  # unknown class (-1): the padding column, dropped
    predicted = np.eye(n_classes + 1)[rows.prediction][:, :n_classes]
    return w @ (truth * predicted), w @ predicted, w @ truth


def _from_counts(rows: RowOutputs, metric: str, w: np.ndarray, total: np.ndarray) -> np.ndarray:
    tp, predicted, support = _class_counts(rows, w)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero division gives 0, as scikit-learn's zero_division=0
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(predicted + support > 0, 2 * tp / (predicted + support), 0.0)
    if metric == "f1_macro":
        return f1.mean(axis=1)
    if metric == "f1_weighted":
        return (f1 * support).sum(axis=1) / np.maximum(support.sum(axis=1), 1e-300)
    if metric == "recall_min":
        return np.where(support > 0, recall, np.inf).min(axis=1)
    if metric.startswith("class."):
        name, _, score = metric.removeprefix("class.").rpartition(".")
        safe = [_safe(c) for c in rows.classes]
        if name in safe and score in ("precision", "recall", "f1"):
            return {"precision": precision, "recall": recall, "f1": f1}[score][:, safe.index(name)]
    raise ValueError(f"{metric!r} cannot be computed from a classifier's per-row outputs")


def _weighted_auc(positive: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Binary ROC AUC (ties count one half) per row weighting, vectorized over the weightings."""
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # groups of tied scores
    pos = positive[order].astype("float64")
    wp = np.add.reduceat(w[:, order] * pos, starts, axis=1)
    wn = np.add.reduceat(w[:, order] * (1.0 - pos), starts, axis=1)
    below = np.cumsum(wn, axis=1) - wn
    p_total, n_total = wp.sum(axis=1), wn.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((p_total > 0) & (n_total > 0), (wp * (below + 0.5 * wn)).sum(axis=1) / (p_total * n_total),
                        np.nan)


def _auc(rows: RowOutputs, w: np.ndarray) -> np.ndarray:
    if len(rows.classes) != 2:
        raise ValueError("roc_auc is the binary ROC AUC; a classifier of more classes gives roc_auc_ovr")
    return _weighted_auc(rows.truth == 1, rows.proba[:, 1], w)


def _auc_ovr(rows: RowOutputs, w: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest ROC AUC, as scikit-learn's `multi_class="ovr"`: undefined unless every class is present."""
    aucs = np.stack([_weighted_auc(rows.truth == c, rows.proba[:, c], w) for c in range(len(rows.classes))], axis=1)
    return aucs.mean(axis=1)  # NaN when a class is missing from the resample


def _safe(name: str) -> str:
    """A class name as the evaluation writes it in `class.<name>.<score>` metric names."""
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))


def _metric_task(metric: str) -> str | None:
    if metric in ("mae", "mse", "rmse", "r2"):
        return "regression"
    return None if metric == "" else "classification"


def _bounds(values: np.ndarray, confidence: float) -> tuple[float, float, int]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan"), 0
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high), int(len(finite))


def metric_interval(rows: RowOutputs, metric: str, *, confidence: float = 0.95, resamples: int = 1000,
                    seed: int = 0, label: str | None = None) -> Interval:
    """Returns a metric on the test rows with its percentile bootstrap interval.

    Args:
        rows: Per-row outputs.
        metric: The metric's name within `rows`.
        confidence: The interval's level. Default 0.95.
        resamples: Bootstrap resamples. Default 1000.
        seed: Seed of the resampling. Default 0.
        label: The name the interval carries. Default `metric`.

    Returns:
        The `Interval`.
    """
    estimate = float(metric_values(rows, metric, np.ones((1, len(rows))))[0])
    values = np.concatenate([metric_values(rows, metric, w) for w in resample_counts(len(rows), resamples, seed)])
    low, high, used = _bounds(values, confidence)
    return Interval(label or metric, estimate, low, high, confidence, used)


def paired_difference(challenger: RowOutputs, champion: RowOutputs, metric: str, *, confidence: float = 0.95,
                      resamples: int = 1000, seed: int = 0, label: str | None = None) -> Interval:
    """Returns the challenger's improvement over the champion on the same rows, with its paired bootstrap interval.

    Both models are scored on the same resampled rows, so the interval is
    of the difference itself, not of two independent estimates. The
    improvement is `challenger - champion` when higher is better and
    `champion - challenger` for losses and errors (`mae`, `rmse`, ...).

    Args:
        challenger: The challenger's per-row outputs.
        champion: The champion's per-row outputs on the same rows, in the same order.
        metric: The metric's name within the outputs.
        confidence: The interval's level. Default 0.95.
        resamples: Bootstrap resamples. Default 1000.
        seed: Seed of the resampling. Default 0.
        label: The name the interval carries. Default `metric`.

    Returns:
        The `Interval` of the improvement.

    Raises:
        ValueError: The two models were not scored on the same rows.
    """
    if challenger.classes != champion.classes:
        raise ValueError(f"champion and challenger know different classes ({list(champion.classes)} and "
                         f"{list(challenger.classes)}): their outputs cannot be compared row by row")
    if len(challenger) != len(champion) or not np.array_equal(challenger.truth, champion.truth, equal_nan=True):
        raise ValueError(f"champion and challenger were not scored on the same test rows "
                         f"({len(champion)} and {len(challenger)} rows, or different labels)")
    sign = -1.0 if lower_is_better(metric) else 1.0

    def improvement(w: np.ndarray) -> np.ndarray:
        return sign * (metric_values(challenger, metric, w) - metric_values(champion, metric, w))

    estimate = float(improvement(np.ones((1, len(challenger))))[0])
    values = np.concatenate([improvement(w) for w in resample_counts(len(challenger), resamples, seed)])
    low, high, used = _bounds(values, confidence)
    return Interval(label or metric, estimate, low, high, confidence, used)
