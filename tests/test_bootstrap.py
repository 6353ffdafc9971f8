"""The bootstrap intervals and the noise-aware champion/challenger comparison, on tiny arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from kerasflow.promotion.bootstrap import (
    RowOutputs,
    counts_of,
    metric_interval,
    metric_values,
    outputs_from_frame,
    paired_difference,
    read_outputs,
    resample_indices,
)
from kerasflow.promotion.compare import compare_models, gated_metrics, metric_intervals, with_comparison
from kerasflow.promotion.plan import decide_promotion, decision_description
from kerasflow.schemas.gate import ValueThreshold
from kerasflow.schemas.promotion import CompareConfig, PromotionConfig


def _classifier(truth, prediction, proba=None, classes=("a", "b")) -> RowOutputs:
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if proba is None:
        proba = np.eye(len(classes))[prediction]
    return RowOutputs("classification", truth, prediction, np.asarray(proba, dtype="float64"), tuple(classes))


def test_counts_are_the_resampled_rows():
    indices = np.array([[0, 0, 2], [1, 2, 2]])
    assert counts_of(indices, 3).tolist() == [[2, 0, 1], [0, 1, 2]]
    drawn = resample_indices(5, 7, np.random.default_rng(0))
    assert drawn.shape == (7, 5) and drawn.min() >= 0 and drawn.max() < 5


def test_metrics_with_unit_weights_equal_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    proba[np.arange(200), truth] += 0.3 * rng.random(200)
    proba /= proba.sum(axis=1, keepdims=True)
    rows = _classifier(truth, proba.argmax(axis=1), proba, ("x", "y", "z"))
    ones = np.ones((1, 200))
    pred = rows.prediction
    assert metric_values(rows, "accuracy", ones)[0] == pytest.approx(skm.accuracy_score(truth, pred))
    assert metric_values(rows, "f1_macro", ones)[0] == pytest.approx(skm.f1_score(truth, pred, average="macro"))
    assert metric_values(rows, "f1_weighted", ones)[0] == pytest.approx(
        skm.f1_score(truth, pred, average="weighted"))
    assert metric_values(rows, "class.y.recall", ones)[0] == pytest.approx(
        skm.recall_score(truth, pred, labels=[1], average=None)[0])
    assert metric_values(rows, "recall_min", ones)[0] == pytest.approx(
        skm.recall_score(truth, pred, average=None).min())
    assert metric_values(rows, "roc_auc_ovr", ones)[0] == pytest.approx(
        skm.roc_auc_score(truth, proba, multi_class="ovr"))
    binary = _classifier(truth % 2, (proba[:, 1] > 0.3).astype(int),
                         np.column_stack([1 - proba[:, 1], proba[:, 1]]))
    assert metric_values(binary, "roc_auc", ones)[0] == pytest.approx(skm.roc_auc_score(truth % 2, proba[:, 1]))
    y, p = rng.normal(size=50), rng.normal(size=50)
    reg = RowOutputs("regression", y, p)
    assert metric_values(reg, "mae", np.ones((1, 50)))[0] == pytest.approx(skm.mean_absolute_error(y, p))
    assert metric_values(reg, "rmse", np.ones((1, 50)))[0] == pytest.approx(skm.root_mean_squared_error(y, p))
    assert metric_values(reg, "r2", np.ones((1, 50)))[0] == pytest.approx(skm.r2_score(y, p))


def test_weights_equal_repeated_rows():
    """A resample's counts give the metric of the rows repeated that many times (AUC ties included)."""
    from sklearn import metrics as skm

    truth = np.array([0, 1, 1, 0, 1, 0])
    score = np.array([0.2, 0.8, 0.4, 0.4, 0.9, 0.1])
    rows = _classifier(truth, (score > 0.5).astype(int), np.column_stack([1 - score, score]))
    idx = np.array([[0, 1, 1, 2, 3, 3]])
    auc = metric_values(rows, "roc_auc", counts_of(idx, 6))[0]
    assert auc == pytest.approx(skm.roc_auc_score(truth[idx[0]], score[idx[0]]))


def test_interval_covers_the_truth_at_its_level():
    """Coverage: with a fixed seed, the 90% interval of accuracy holds the true rate in most samples."""
    rng = np.random.default_rng(11)
    held = 0
    for _ in range(100):
        correct = rng.random(200) < 0.8
        rows = _classifier(np.ones(200, dtype=int), correct.astype(int))
        interval = metric_interval(rows, "accuracy", confidence=0.9, resamples=400, seed=int(rng.integers(1e6)))
        held += interval.low <= 0.8 <= interval.high
    assert 80 <= held <= 98


def test_paired_difference_sees_a_clear_difference_and_not_noise():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 1000)
    good = np.where(rng.random(1000) < 0.95, truth, 1 - truth)
    worse = np.where(rng.random(1000) < 0.80, truth, 1 - truth)
    twin = np.where(rng.random(1000) < 0.95, truth, 1 - truth)
    clear = paired_difference(_classifier(truth, good), _classifier(truth, worse), "accuracy", seed=1)
    assert clear.low > 0.1 and clear.estimate == pytest.approx(np.mean(good == truth) - np.mean(worse == truth))
    noise = paired_difference(_classifier(truth, good), _classifier(truth, twin), "accuracy", seed=1)
    assert noise.low < 0 < noise.high
    again = paired_difference(_classifier(truth, good), _classifier(truth, twin), "accuracy", seed=1)
    assert (again.low, again.high) == (noise.low, noise.high)  # the seed fixes the interval


def test_lower_is_better_metrics_are_flipped():
    y = np.linspace(0, 10, 300)
    rng = np.random.default_rng(2)
    close, far = y + rng.normal(0, 0.1, 300), y + rng.normal(0, 2.0, 300)
    interval = paired_difference(RowOutputs("regression", y, close), RowOutputs("regression", y, far), "mae")
    assert interval.estimate > 0 and interval.low > 0  # the challenger's smaller error is an improvement


def test_paired_difference_needs_the_same_rows():
    rows = _classifier([0, 1, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="same test rows"):
        paired_difference(rows, _classifier([0, 1, 0], [0, 1, 0]), "accuracy")
    with pytest.raises(ValueError, match="different classes"):
        paired_difference(rows, _classifier([0, 1, 1], [0, 1, 0], classes=("a", "c")), "accuracy")


def test_outputs_are_read_from_prediction_files(tmp_path):
    frame = pd.DataFrame({"actual": ["b", "a", "z"], "prediction": ["b", "b", "a"], "proba_a": [0.1, 0.4, 0.7],
                          "proba_b": [0.9, 0.6, 0.3]})
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    rows = read_outputs(tmp_path)[""]
    assert rows.truth.tolist() == [1, 0, -1] and rows.prediction.tolist() == [1, 1, 0]
    assert metric_values(rows, "accuracy", np.ones((1, 3)))[0] == pytest.approx(1 / 3)
    (tmp_path / "price").mkdir()
    pd.DataFrame({"actual": [1.0, 2.0], "prediction": [1.5, 2.0]}).to_csv(tmp_path / "price" / "predictions.csv",
                                                                           index=False)
    (tmp_path / "predictions.csv").unlink()
    heads = read_outputs(tmp_path)
    assert list(heads) == ["price"] and heads["price"].task == "regression"
    intervals = metric_intervals(heads, ["price.mae", "loss"], confidence=0.95, resamples=200, seed=0)
    assert list(intervals) == ["price.mae"] and intervals["price.mae"].estimate == pytest.approx(0.25)
    assert outputs_from_frame(pd.DataFrame({"actual": [1.0], "prediction": [2.0]})).task == "regression"


def test_compare_config_names_row_metrics_only():
    assert CompareConfig(metric="head.accuracy").rule == "superiority"
    assert PromotionConfig().compare is None
    with pytest.raises(ValidationError, match="per-row form"):
        CompareConfig(metric="loss")


def _compare(truth, challenger, champion, **rule):
    config = CompareConfig(metric="accuracy", resamples=500, **rule)
    return compare_models({"": _classifier(truth, challenger)}, {"": _classifier(truth, champion)}, config, seed=7)


def test_the_rule_decides_and_the_decision_says_why():
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, truth, 1 - truth)
    twin = np.where(rng.random(400) < 0.9, truth, 1 - truth)
    noisy = _compare(truth, good, twin)
    assert not noisy.passed and "not significant, champion kept" in noisy.verdict()
    assert "95% CI" in noisy.verdict()
    assert _compare(truth, good, twin, rule="non_inferiority", margin=0.1).passed
    base = decide_promotion({"accuracy": 0.9}, {"accuracy": 0.89}, [ValueThreshold(metric="accuracy", min=0.5)], [])
    kept = with_comparison(base, noisy, configured=True)
    assert not kept.promote and kept.outcome == "rejected" and kept.reasons[0] == noisy.verdict()
    assert "compare: accuracy" in decision_description(kept, "1")
    worse = np.where(rng.random(400) < 0.6, truth, 1 - truth)
    clear = _compare(truth, good, worse)
    promoted = with_comparison(decide_promotion({}, {}, [], []), clear, configured=True)
    assert promoted.promote and promoted.outcome == "promoted" and "significantly better" in promoted.reasons[0]
    assert with_comparison(base, None, configured=False) is base
    first = with_comparison(decide_promotion({}, None, [], []), None, configured=True)
    assert first.promote and first.outcome == "first-champion"
    assert not with_comparison(decide_promotion({}, None, [], []), None, configured=False).promote


def test_gated_metrics_fall_back_to_the_primary_one():
    compare = CompareConfig(metric="f1_macro")
    assert gated_metrics({"accuracy": 0.9}, ["accuracy", "loss"], compare, {}) == ["accuracy", "loss", "f1_macro"]
    assert gated_metrics({}, [], None, {"loss": 1.0, "accuracy": 0.5}) == ["accuracy"]
    assert gated_metrics({}, [], None, {"loss": 1.0, "price.mae": 0.5}) == ["price.mae"]
