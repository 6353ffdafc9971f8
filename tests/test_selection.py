"""`tuning.selection`: the best trial, or the configured values when the best one's lead is within the noise.

The one-standard-error rule on paired fold scores, checked on hand-made
records against the arithmetic, then on a real cross-validated Keras Tuner
search of wine, where the choice must follow the trials' own fold scores and
re-choosing with `selection: best` resumes the finished search without
training a trial again.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kerasflow.data.load import load_frame
from kerasflow.training.selection import choose_trial, paired_gain
from kerasflow.training.trials import TrialRecord

ROOT = Path(__file__).resolve().parents[1]


def _trial(trial_id: str, folds: list[float]) -> TrialRecord:
    return TrialRecord(trial_id, "COMPLETED", float(np.mean(folds)), {"model.units": int(trial_id)},
                       best_epoch=int(trial_id) + 1, fold_scores=folds)


def test_the_gain_is_the_mean_of_the_paired_fold_differences_with_its_standard_error() -> None:
    best, configured = _trial("3", [0.40, 0.45, 0.38, 0.41]), _trial("0", [0.42, 0.44, 0.43, 0.42])
    gains = np.array([0.02, -0.01, 0.05, 0.01])
    mean, error = paired_gain(best, configured, "min")
    assert mean == pytest.approx(gains.mean()) and error == pytest.approx(gains.std(ddof=1) / math.sqrt(4))
    assert paired_gain(configured, best, "max") == pytest.approx((mean, error))  # accuracy: higher is better


def test_a_lead_within_one_standard_error_keeps_the_configured_values() -> None:
    configured = _trial("0", [0.42, 0.44, 0.43, 0.42])
    noisy = _trial("3", [0.40, 0.47, 0.38, 0.43])  # mean gain 0.0075, standard error 0.0197
    choice = choose_trial(noisy, configured, "min", "one_se")
    assert choice.trial is configured and choice.best is noisy and choice.kept_configured
    assert "kept the configured values (trial 0)" in choice.reason and "within one standard error" in choice.reason
    steady = _trial("5", [0.40, 0.42, 0.41, 0.40])  # 0.02 better on every fold: standard error 0
    assert choose_trial(steady, configured, "min", "one_se").trial is steady
    assert choose_trial(noisy, configured, "min", "best").trial is noisy
    assert choose_trial(configured, configured, "min", "one_se").reason == "trial 0 scored best"
    assert choose_trial(noisy, None, "min", "one_se").trial is noisy  # no configured trial (not a random search)


def test_fewer_than_three_folds_take_the_best_and_say_why() -> None:
    choice = choose_trial(_trial("2", [0.3, 0.5]), _trial("0", [0.4, 0.41]), "min", "one_se")
    assert choice.trial.trial_id == "2" and not choice.kept_configured and "needs 3 or more folds" in choice.reason


def test_a_cross_validated_search_chooses_by_its_own_fold_scores_and_rechooses_without_training(
        tmp_path: Path) -> None:
    from kerasflow.data.split import split_holdout
    from kerasflow.features.labels import fit_labels
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import fit_features, select_columns
    from kerasflow.schemas.config import load_config
    from kerasflow.training.search import run_search, search_data, search_fingerprint

    overrides = ["training.epochs=3", "training.early_stopping.patience=2", "tuning.tuner=random",
                 "tuning.max_trials=3", "tuning.cv_folds=3", "tuning.seed=3"]
    config = load_config(str(ROOT / "configs/wine_tuned.yaml"), overrides)
    rechosen = load_config(str(ROOT / "configs/wine_tuned.yaml"), overrides + ["tuning.selection=best"])
    assert config.tuning.selection == "one_se" and rechosen.tuning.selection == "best"
    assert search_fingerprint(config, "d") == search_fingerprint(rechosen, "d")  # the same search, resumable
    # a search saved before `selection` and `preprocessing.numeric_bin_edges` existed resumes (kerasflow 8c00a65
    # computed this digest); a new config key that changes it refuses every saved search with exit status 2
    assert search_fingerprint(load_config(str(ROOT / "configs/wine_tuned.yaml")), "d") == (
        "da7bb8f38b1ba594724d52c8c281a14dc0485e8c026eea7f5bd11511f8a1f765")
    assert search_fingerprint(load_config(str(ROOT / "configs/wine_tuned.yaml"), [
        "preprocessing.numeric_bin_edges=target"]), "d") != search_fingerprint(load_config(
            str(ROOT / "configs/wine_tuned.yaml")), "d")
    frame = load_frame("wine")
    split = split_holdout(frame["target"], test_fraction=0.2, val_fraction=0.15, seed=0)
    numeric, categorical = select_columns(frame, "target")
    labels = fit_labels(frame.iloc[split.train]["target"])
    features = fit_features(frame.iloc[split.train], numeric, categorical, **preprocessing_options(config))
    data = search_data(config, frame, split, features, labels)
    result = run_search(config, data, tmp_path / "search", fingerprint="f")
    trials = result.trials
    assert [len(t.fold_scores) for t in trials] == [3, 3, 3]
    best = max(trials, key=lambda t: t.score)  # val_accuracy, maximized
    chosen = trials[0] if best is not trials[0] and paired_gain(best, trials[0], "max")[0] <= paired_gain(
        best, trials[0], "max")[1] else best
    assert result.best_values == chosen.values and result.best_score == pytest.approx(chosen.score)
    assert result.chosen.startswith(("kept the configured values", "trial"))

    again = run_search(rechosen, data, tmp_path / "search", fingerprint="f")
    assert again.new_trials == 0 and again.best_values == best.values
