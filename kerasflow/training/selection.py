"""Which trial of a finished search the final model takes: the best, unless its lead is within the noise.

A search ranks its trials by their mean validation score, and with a few
trials on a few hundred rows the top of that ranking is partly luck: the
trial that wins on the validation folds is often not the better model on
new rows (`docs/tabular-defaults.md`, session 18: mlc_churn's trial 1 beat the
configured values by 0.003 in validation loss and lost to them on the test
rows). `tuning.selection: one_se` (the default) applies the one-standard-error
rule (Breiman et al., "Classification and Regression Trees", 1984; Hastie,
Tibshirani and Friedman, "The Elements of Statistical Learning", section 7.10)
to the one trial with a claim to be the simpler choice, the configured
values (trial 0 of a `random` search, `kerasflow.training.first_trial`): the
best trial replaces them only when its gain over them, fold by fold, is
larger than one standard error of those paired gains. `best` takes the best
mean score, as Keras Tuner ranks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerasflow.training.trials import TrialRecord

MIN_FOLDS = 3  # a standard error needs a few paired scores; fewer keep the best trial


@dataclass(frozen=True)
class Choice:
    """The trial a search's final model takes, and why.

    Args:
        trial: The chosen trial.
        best: The trial with the best mean score.
        reason: One sentence for the run's output and the tuning summary.
    """

    trial: TrialRecord
    best: TrialRecord
    reason: str

    @property
    def kept_configured(self) -> bool:
        """True when the configured values were kept over a better-scoring trial."""
        return self.trial is not self.best


def paired_gain(best: TrialRecord, configured: TrialRecord, direction: str) -> tuple[float, float]:
    """The best trial's mean gain over the configured one on the same folds, and its standard error.

    Args:
        best: The best-scoring trial.
        configured: The configured values' trial, scored on the same folds.
        direction: `min` or `max`, the objective's.

    Returns:
        `(mean, standard error)` of the per-fold gains (positive: the best is better).

    Example:

    >>> a = TrialRecord("1", "COMPLETED", 0.30, {}, fold_scores=[0.30, 0.32, 0.28])
    >>> b = TrialRecord("0", "COMPLETED", 0.31, {}, fold_scores=[0.31, 0.31, 0.31])
    >>> [round(v, 4) for v in paired_gain(a, b, "min")]
    [0.01, 0.0115]
    """
    gains = np.asarray(configured.fold_scores, dtype="float64") - np.asarray(best.fold_scores, dtype="float64")
    if direction == "max":
        gains = -gains
    return float(gains.mean()), float(gains.std(ddof=1) / math.sqrt(gains.size))


def choose_trial(best: TrialRecord, configured: TrialRecord | None, direction: str, selection: str) -> Choice:
    """Applies `tuning.selection` to a finished search.

    Args:
        best: The trial with the best mean score (Keras Tuner's ranking).
        configured: The configured values' trial if it completed, else None.
        direction: `min` or `max`.
        selection: `one_se` or `best`.

    Returns:
        The `Choice`. The configured values are kept only with `one_se`,
        when both trials have the same `MIN_FOLDS` or more fold scores and
        the best one's mean gain is at most one standard error.
    """
    if selection != "one_se" or configured is None or configured.trial_id == best.trial_id:
        return Choice(best, best, f"trial {best.trial_id} scored best")
    folds = len(best.fold_scores)
    if folds < MIN_FOLDS or len(configured.fold_scores) != folds:
        return Choice(best, best, f"trial {best.trial_id} scored best (one_se needs {MIN_FOLDS} or more "
                                  f"folds to compare it with the configured values; the search had {folds})")
    gain, error = paired_gain(best, configured, direction)
    if gain > error:
        return Choice(best, best, f"trial {best.trial_id} beat the configured values (trial "
                                  f"{configured.trial_id}) by {gain:.4g} ± {error:.4g} over {folds} folds")
    return Choice(configured, best, f"kept the configured values (trial {configured.trial_id}): the best, "
                                    f"trial {best.trial_id}, beat them by {gain:.4g}, within one standard "
                                    f"error ({error:.4g}) over {folds} folds")
