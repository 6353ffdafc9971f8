"""Champion/challenger promotion rules and drift statistics, as plain functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
from kerasflow.schemas.gate import ChangeThreshold, ValueThreshold

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
    assert lines[1] == "loss: -50% relative (0.45 vs 0.3), needs >= -5% (lower is better) -> FAIL"
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
    markdown = decision_markdown(decision, "iris", "4", "3", "no significant drift", "http://mlflow/#/experiments/1/runs/r")
    assert "| change | `accuracy` |" in markdown and "**FAIL**" in markdown and "no significant drift" in markdown
    assert "[MLflow run](http://mlflow/#/experiments/1/runs/r)" in markdown


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
    brief = lenient.brief().splitlines()  # what the decision artifact shows: the drifted features and a count
    assert brief[0].startswith("no significant drift: 1 of 4 features drifted") and len(brief) == 2
    assert brief[1].strip().startswith("body_mass_g") and brief[1].endswith("-> DRIFT")
    assert len(lenient.summary().splitlines()) == 5, "drift/report.txt keeps every feature"
    capped = measure_drift(shifted, reference, threshold=0.0).brief(limit=2).splitlines()
    assert len(capped) == 4 and capped[-1] == "  ... and 2 more drifted features (all in drift/report.txt)"


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


def test_relative_rule_shows_the_relative_change_it_judged() -> None:
    rule = [ChangeThreshold(metric="accuracy", min_relative_delta=0.02)]
    (check,) = decide_promotion({"accuracy": 0.912}, {"accuracy": 0.901}, [], rule).checks
    assert check.line() == "accuracy: +1.22% relative (0.912 vs 0.901), needs >= +2% (higher is better) -> FAIL"
    both = [ChangeThreshold(metric="loss", min_delta=0.0, min_relative_delta=0.1)]
    (check,) = decide_promotion({"loss": 0.2}, {"loss": 0.25}, [], both).checks
    assert check.line() == ("loss: +20% relative (0.2 vs 0.25), needs >= +10%; improvement +0.05, needs >= +0 "
                            "(lower is better) -> pass")


def test_decision_names_the_final_state_and_fills_the_description() -> None:
    from kerasflow.promotion.plan import decision_description, recheck_champion, state_of

    rejected = decide_promotion({"accuracy": 0.91, "loss": 0.45}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    name, message = state_of(rejected, "4")
    assert name == "Rejected" and message == "rejected v4: " + rejected.violations[0].line()
    text = decision_description(rejected, "3")
    assert text.startswith("Gate decision: rejected (not promoted); compared with champion v3")
    assert "- threshold: accuracy: expected >= 0.9, observed 0.9100 -> pass" in text
    assert "- change: loss: -50% relative (0.45 vs 0.3), needs >= -5%" in text
    promoted = decide_promotion({"accuracy": 0.95, "loss": 0.25}, CHAMPION_METRICS, ACCURACY_MIN, NO_WORSE)
    assert state_of(promoted, "4") == ("Promoted", "promoted: v4 is now @champion")
    stale = recheck_champion(promoted, "3", "5")
    assert state_of(stale, "4")[0] == "Rejected" and "champion changed during this run" in state_of(stale, "4")[1]
    assert state_of(decide_promotion({"accuracy": 1.0}, None, [], []), "1")[0] == "Not gated"


def test_unchanged_lineage_means_nothing_to_retrain() -> None:
    from kerasflow.promotion.lineage import Lineage, differences, lineage_of, skip_reason, unchanged

    tags = {"kerasflow.data_fingerprint": "d" * 64, "kerasflow.config_hash": "c1", "mlflow.source.git.commit": "abc"}
    mine = lineage_of(tags, "0.1.0")
    assert mine == Lineage("d" * 64, "c1", "git:abc")
    assert unchanged(mine, lineage_of(tags)) and not differences(mine, lineage_of(tags))
    no_git = {k: v for k, v in tags.items() if not k.startswith("mlflow.")}
    assert lineage_of(no_git, "0.1.0").code == "kerasflow 0.1.0"
    assert not unchanged(lineage_of(no_git, "0.1.0"), lineage_of(no_git)), "a champion without a code version"
    assert unchanged(lineage_of(no_git, "0.1.0"), lineage_of({**no_git, "kerasflow.code_version": "kerasflow 0.1.0"}))
    moved = lineage_of({**tags, "kerasflow.config_hash": "c2"})
    assert differences(moved, mine) == ["config hash c1 -> c2"] and not unchanged(moved, mine)
    assert not unchanged(Lineage(None, None, None), Lineage(None, None, None)), "unknown is never unchanged"
    assert skip_reason(mine, "3", "r1").startswith("skipped (no new data): data fingerprint dddddddddddd…")


RACER = """
import json, os, sys, time
from pathlib import Path
import mlflow
from kerasflow.tracking.registry import promote, promote_if_champion

uri, name, version, expected, go = sys.argv[1:6]
client = mlflow.MlflowClient(uri, uri)
Path(go + "." + version + ".ready").touch()
while not Path(go).exists():
    time.sleep(0.001)
if expected == "-":
    plan, current = promote(client, name, version), None
else:
    plan, current = promote_if_champion(client, name, version, expected)
print(json.dumps({"moved": plan is not None and plan.set, "current": current}))
"""


def _registered(store: str, name: str, versions: int):
    import mlflow

    client = mlflow.MlflowClient(store, store)
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, source="file:///nowhere/model")
    client.set_registered_model_alias(name, CHAMPION, "1")
    return client


def _racers(store: str, name: str, tmp_path: Path, moves: list[tuple[str, str]]) -> list[subprocess.Popen]:
    go = str(tmp_path / "go")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, store, name, version, expected, go], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for version, expected in moves]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{v}.ready").exists() for v, _ in moves):
        assert time.monotonic() < deadline, [p.communicate() for p in procs]
        time.sleep(0.01)
    return procs


def _results(procs: list[subprocess.Popen]) -> list[dict]:
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def _aliases(client, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def test_racing_champion_moves_lose_no_update(mlflow_store: str, tmp_path: Path) -> None:
    """Two processes released together: the compare-and-set lets exactly one move @champion."""
    client = _registered(mlflow_store, "race-cas", 3)
    procs = _racers(mlflow_store, "race-cas", tmp_path, [("2", "1"), ("3", "1")])
    (tmp_path / "go").touch()
    results = _results(procs)
    winners = [r for r in results if r["moved"]]
    assert len(winners) == 1, results
    winner = winners[0]["moved"][CHAMPION]
    loser = next(r for r in results if not r["moved"])
    assert loser["current"] == winner, "the loser re-read the champion under the lock"
    assert _aliases(client, "race-cas") == {CHAMPION: winner, PREVIOUS: "1"}

    client = _registered(mlflow_store, "race-manual", 3)  # hand promotions: both move, one after the other
    (tmp_path / "manual").mkdir()
    procs = _racers(mlflow_store, "race-manual", tmp_path / "manual", [("2", "-"), ("3", "-")])
    (tmp_path / "manual" / "go").touch()
    _results(procs)
    final = _aliases(client, "race-manual")
    assert final[CHAMPION] in ("2", "3") and final[PREVIOUS] == ({"2", "3"} - {final[CHAMPION]}).pop(), \
        f"previous-champion must be the champion the last move replaced, not a stale read: {final}"


def test_a_move_waits_for_the_lock_and_rechecks_under_it(mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.promotion.plan import plan_promotion
    from kerasflow.tracking.registry import alias_lock, alias_lock_path, apply_plan

    client = _registered(mlflow_store, "race-held", 3)
    assert alias_lock_path(client, "race-held").parent == Path(mlflow_store.removeprefix("sqlite:///")).parent / \
        ".kerasflow-locks"
    with alias_lock(client, "race-held"):
        (proc,) = _racers(mlflow_store, "race-held", tmp_path, [("3", "1")])
        (tmp_path / "go").touch()
        time.sleep(1.5)
        assert proc.poll() is None, "the move must wait while another process holds the lock"
        apply_plan(client, "race-held", plan_promotion(_aliases(client, "race-held"), "2"))
    (result,) = _results([proc])
    assert result == {"moved": False, "current": "2"}
    assert _aliases(client, "race-held") == {CHAMPION: "2", PREVIOUS: "1"}
