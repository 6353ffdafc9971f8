"""Trial records and reports of a search: one record per trial, the trials table, the score plot and summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.training.plots import pyplot, save_figure

_TUNER_KEYS = "tuner/"
FOLD_METRIC = "fold_score_"  # the metric of one fold's (or execution's) score in a trial's metrics


@dataclass
class TrialRecord:
    """One trial of a search.

    Args:
        trial_id: Keras Tuner's trial id.
        status: `COMPLETED`, `FAILED`, `INVALID`, `RUNNING` or `STOPPED`.
        score: The objective value (mean over folds and executions), or None.
        values: The trial's hyperparameter values (active ones only).
        best_epoch: Epoch count at the best objective value, averaged.
        fold_scores: Score of each fold (or execution).
        message: Error text of a failed trial.
        new: True when the trial ran in this search call, not a resumed one.
    """

    trial_id: str
    status: str
    score: float | None
    values: dict[str, Any]
    best_epoch: int | None = None
    fold_scores: list[float] = field(default_factory=list)
    message: str = ""
    new: bool = False


def trial_records(tuner: Any, new_ids: set[str] | None = None) -> list[TrialRecord]:
    """Returns a record of every trial the tuner knows, in start order.

    Args:
        tuner: A tuner built by `build_tuner`.
        new_ids: Ids of trials run by this call. Default none.

    Returns:
        The `TrialRecord`s.
    """
    oracle = tuner.oracle
    order = [tid for tid in oracle.start_order if tid in oracle.trials]
    order += [tid for tid in sorted(oracle.trials) if tid not in order]
    return [record_of(oracle.trials[tid], tid in (new_ids or set())) for tid in order]


def trials_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """Tabulates trials: id, status, score, best epoch, fold scores and one column per hyperparameter."""
    names = sorted({name for r in records for name in r.values})
    folds = max((len(r.fold_scores) for r in records), default=0)
    rows = []
    for r in records:
        row = {"trial_id": r.trial_id, "status": r.status, "score": r.score, "best_epoch": r.best_epoch,
               "new": r.new}
        row.update({f"fold_{k}_score": (r.fold_scores[k] if k < len(r.fold_scores) else None) for k in range(folds)})
        row.update({name: r.values.get(name) for name in names})
        rows.append(row)
    return pd.DataFrame(rows, columns=["trial_id", "status", "score", "best_epoch", "new",
                                       *(f"fold_{k}_score" for k in range(folds)), *names])


def plot_scores(records: list[TrialRecord], objective: str, direction: str, path: str | Path) -> Path:
    """Saves a PNG of each trial's score in start order, with the best so far.

    Args:
        records: Trials in start order.
        objective: Objective name, the y label.
        direction: `min` or `max`.
        path: PNG path to write.

    Returns:
        The path written.
    """
    plt = pyplot()
    scores = np.array([r.score if r.score is not None else np.nan for r in records], dtype="float64")
    best = (np.fmin if direction == "min" else np.fmax).accumulate(scores)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(1, len(records) + 1)
    ax.plot(x, scores, "o", label="trial")
    ax.plot(x, best, "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend()
    return save_figure(fig, path)


def summary_table(records: list[TrialRecord], objective: str, direction: str) -> str:
    """Formats trials as a plain-text table, best first."""
    frame = trials_frame(records)
    if frame.empty:
        return "(no trials)"
    frame = frame.sort_values("score", ascending=direction == "min", na_position="last")
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("fold_")] + ["new"])
    frame = frame.rename(columns={"score": objective})
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")

def record_of(trial: Any, new: bool) -> TrialRecord:
    """The `TrialRecord` of a Keras Tuner trial; `new` says it ran in this search call."""
    metrics = trial.metrics
    best_epoch = metrics.get_best_value("best_epoch") if metrics.exists("best_epoch") else None
    count = sum(1 for name in metrics.metrics if name.startswith(FOLD_METRIC))
    folds = [metrics.get_last_value(f"{FOLD_METRIC}{k}") for k in range(count)]
    return TrialRecord(trial_id=trial.trial_id, status=str(trial.status), score=_finite(trial.score),
                       values=public_values(trial.hyperparameters.values),
                       best_epoch=int(round(best_epoch)) if best_epoch is not None else None,
                       fold_scores=[float(s) for s in folds], message=trial.message or "", new=new)


def public_values(values: dict[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameter values without keras-tuner's own (`tuner/...`), as plain Python values."""
    return {k: _plain(v) for k, v in values.items() if not k.startswith(_TUNER_KEYS)}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None
