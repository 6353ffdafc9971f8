"""Champion/challenger promotion rules and drift statistics, as plain functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.drift import DriftError, measure_drift, population_stability_index, reference_stats
from kerasflow.data.load import load_frame
from kerasflow.promotion.plan import (
    CHAMPION,
    PREVIOUS,
    ROLLED_BACK,
    PromotionError,
    decide_promotion,
    decision_markdown,
    decision_tags,
    plan_promotion,
    plan_rollback,
    value_thresholds,
)
from kerasflow.schemas.config import ConfigError, load_config
from kerasflow.schemas.registry import ChangeThreshold, ValueThreshold

ACCURACY_MIN = [ValueThreshold(metric="accuracy", min=0.9), ValueThreshold(metric="loss", max=0.5)]
NO_WORSE = [ChangeThreshold(metric="accuracy", direction="higher", min_delta=-0.005),
            ChangeThreshold(metric="loss", direction="lower", min_relative_delta=-0.05)]
CHAMPION_METRICS = {"accuracy": 0.93, "loss": 0.30}


def test_first_model_becomes_champion_when_value_thresholds_hold() -> None:
    decision = decide_promotion({"accuracy": 0.95, "loss": 0.2}, None, ACCURACY_MIN, NO_WORSE)
    assert decision.promote and decision.outcome == "first-champion"
    assert [c.kind for c in decision.checks] == ["threshold", "threshold"], "change rules need a champion"
    assert "first champion" in decision.reasons[0]


def test_first_model_below_a_value_threshold_is_rejected() -> None:
    decision = decide_promotion({"accuracy": 0.85, "loss": 0.2}, None, ACCURACY_MIN, NO_WORSE)
    assert not decision.promote and decision.outcome == "rejected"
    assert decision.violations[0].line() == "accuracy: expected >= 0.9, observed 0.8500 -> FAIL"


def test_better_challenger_is_promoted() -> None:
    decision = decide_promotion({"accuracy": 0.95, "loss": 0.25}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert decision.promote and decision.outcome == "promoted"
    assert len(decision.checks) == 4 and not decision.violations


def test_slightly_worse_within_tolerance_is_promoted() -> None:
    decision = decide_promotion({"accuracy": 0.926, "loss": 0.314}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert decision.promote, decision.summary()


def test_worse_challenger_is_rejected_with_every_violation() -> None:
    decision = decide_promotion({"accuracy": 0.91, "loss": 0.45}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert not decision.promote and decision.outcome == "rejected"
    assert [c.metric for c in decision.violations] == ["accuracy", "loss"]
    lines = [c.line() for c in decision.violations]
    assert "challenger 0.9100 vs champion 0.9300 (improvement -0.0200)" in lines[0]
    assert "relative improvement >= -5.00%" in lines[1] and "lower is better" in lines[1]
    assert "2 of 4 gate rules failed" in decision.reasons[0]


def test_challenger_worse_on_one_metric_is_rejected() -> None:
    decision = decide_promotion({"accuracy": 0.96, "loss": 0.40}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert not decision.promote
    assert [(c.kind, c.metric) for c in decision.violations] == [("change", "loss")]


def test_no_thresholds_promotes_nothing() -> None:
    for champion in (None, CHAMPION_METRICS):
        decision = decide_promotion({"accuracy": 0.99, "loss": 0.01}, champion, [], [])
        assert not decision.promote and decision.outcome == "not-gated"
        assert "nothing is promoted automatically" in decision.reasons[0]


def test_missing_metric_fails_its_rule() -> None:
    decision = decide_promotion({"accuracy": 0.95}, {"accuracy": 0.9}, [ValueThreshold(metric="f1_macro", min=0.5)],
                                [ChangeThreshold(metric="loss", min_delta=0)])
    assert [c.metric for c in decision.violations] == ["f1_macro", "loss"]
    assert "metric not produced" in decision.violations[0].line()


def test_direction_defaults_from_the_metric_name() -> None:
    rule = [ChangeThreshold(metric="mae", min_delta=0.0)]
    assert decide_promotion({"mae": 40.0}, {"mae": 45.0}, [], rule).promote
    assert not decide_promotion({"mae": 50.0}, {"mae": 45.0}, [], rule).promote


def test_legacy_thresholds_become_value_thresholds() -> None:
    rules = value_thresholds([], {"accuracy": 0.9, "mae": 50})
    assert [(r.metric, r.min, r.max) for r in rules] == [("accuracy", 0.9, None), ("mae", None, 50)]
    assert value_thresholds(ACCURACY_MIN, {"accuracy": 0.1}) == ACCURACY_MIN


def test_decision_is_recorded_in_tags_and_markdown() -> None:
    decision = decide_promotion({"accuracy": 0.91, "loss": 0.2}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    tags = decision_tags(decision, "3")
    assert tags["kerasflow.decision"] == "rejected" and tags["kerasflow.promoted"] == "false"
    assert tags["kerasflow.compared_with"] == "3"
    assert "observed challenger 0.9100 vs champion 0.9300" in tags["kerasflow.gate.change.accuracy"]
    assert tags["kerasflow.gate.threshold.loss"].endswith("-> pass")
    markdown = decision_markdown(decision, "iris", "4", "3", "no significant drift")
    assert "| change | `accuracy` |" in markdown and "**FAIL**" in markdown and "no significant drift" in markdown


def test_promotion_keeps_the_previous_champion() -> None:
    assert plan_promotion({}, "1").set == {CHAMPION: "1"}
    plan = plan_promotion({CHAMPION: "1", PREVIOUS: "0", "candidate": "2"}, "2")
    assert plan.set == {CHAMPION: "2", PREVIOUS: "1"} and not plan.delete
    assert plan_promotion({CHAMPION: "2"}, "2").set == {CHAMPION: "2"}


def test_rollback_moves_champion_back() -> None:
    plan = plan_rollback({CHAMPION: "5", PREVIOUS: "3"})
    assert plan.set == {CHAMPION: "3", ROLLED_BACK: "5"} and plan.delete == [PREVIOUS]
    with pytest.raises(PromotionError, match="no `previous-champion`"):
        plan_rollback({CHAMPION: "5"})
    with pytest.raises(PromotionError, match="no `champion`"):
        plan_rollback({})


def test_gate_config_validates_with_paths(tmp_path: Path) -> None:
    good = {"name": "t", "data": {"source": "iris", "target": "target"}, "registry": {
        "gate": {"thresholds": [{"metric": "accuracy", "min": 0.9}],
                 "changes": [{"metric": "loss", "direction": "lower", "min_relative_delta": -0.05}]},
        "drift": {"method": "ks", "threshold": 0.1, "on_drift": "ignore"}}}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    cfg = load_config(tmp_path / "good.yaml")
    assert cfg.registry.gate.changes[0].min_relative_delta == -0.05 and cfg.registry.drift.method == "ks"
    bad = {**good, "registry": {"gate": {"thresholds": [{"metric": "accuracy"}],
                                         "changes": [{"metric": "loss", "direction": "down", "min_delta": 0}]},
                                "drift": {"on_drift": "panic", "colour": 1}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml")
    text = "\n".join(err.value.problems)
    assert "registry.gate.thresholds.0: threshold on 'accuracy' needs `min`, `max` or both" in text
    assert "registry.gate.changes.0.direction" in text and "registry.drift.on_drift" in text
    assert "registry.drift.colour: unknown key (allowed: bins, max_drifted_share, method" in text


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_frame("penguins").sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_same_distribution_does_not_drift(penguins: pd.DataFrame) -> None:
    reference = reference_stats(penguins.iloc[:200], ["bill_length_mm", "body_mass_g"], ["island", "sex"])
    report = measure_drift(penguins.iloc[200:], reference)
    assert not report.detected, report.summary()
    assert {f.feature for f in report.features} == {"bill_length_mm", "body_mass_g", "island", "sex"}


def test_shifted_feature_drifts_by_psi_and_ks(penguins: pd.DataFrame) -> None:
    reference = reference_stats(penguins.iloc[:200], ["bill_length_mm", "body_mass_g"], ["island", "sex"])
    shifted = penguins.iloc[200:].assign(body_mass_g=lambda f: f["body_mass_g"] + 800)
    for method, threshold in (("psi", 0.2), ("ks", 0.2)):
        report = measure_drift(shifted, reference, method=method, threshold=threshold)
        assert report.detected and [f.feature for f in report.drifted] == ["body_mass_g"]
        assert report.features[0].feature == "body_mass_g", "most drifted first"
    assert report.features[0].p_value < 1e-6
    lenient = measure_drift(shifted, reference, max_drifted_share=0.5)
    assert not lenient.detected and len(lenient.drifted) == 1


def test_unseen_levels_and_missing_columns_drift(penguins: pd.DataFrame) -> None:
    reference = reference_stats(penguins.iloc[:200], ["bill_length_mm"], ["island"])
    new = penguins.iloc[200:].drop(columns="bill_length_mm").assign(island="Atlantis")
    report = measure_drift(new, reference)
    by_name = {f.feature: f for f in report.features}
    assert by_name["bill_length_mm"].drifted and "missing" in by_name["bill_length_mm"].note
    assert by_name["island"].drifted and "unseen in training" in by_name["island"].note
    assert "DRIFT DETECTED: 2 of 2 features drifted" in DriftError(report).args[0]


def test_psi_is_zero_for_equal_shares() -> None:
    shares = np.array([0.2, 0.3, 0.5])
    assert population_stability_index(shares, shares) == pytest.approx(0.0)
    assert population_stability_index(shares, np.array([0.5, 0.3, 0.2])) > 0.2


def test_text_columns_drift_by_word_counts() -> None:
    reviews = pd.read_csv(Path(__file__).resolve().parents[1] / "data/fine_foods/train.csv").head(400)
    reference = reference_stats(reviews.iloc[:250], [], [], ["review"])
    assert not measure_drift(reviews.iloc[250:], reference).detected
    longer = reviews.iloc[250:].assign(review=lambda f: f["review"] + " and then some more words" * 20)
    (feature,) = measure_drift(longer, reference).features
    assert feature.drifted and feature.kind == "text" and feature.note == "word counts"


def test_a_champion_that_moved_meanwhile_blocks_the_promotion() -> None:
    from kerasflow.promotion.plan import recheck_champion

    decision = decide_promotion({"accuracy": 0.95, "loss": 0.2}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert recheck_champion(decision, "3", "3") is decision
    stale = recheck_champion(decision, "3", "4")
    assert not stale.promote and stale.outcome == "rejected" and "champion changed during this run" in stale.reasons[-1]
    first = decide_promotion({"accuracy": 0.95, "loss": 0.2}, None, ACCURACY_MIN, [])
    assert not recheck_champion(first, None, "1").promote
