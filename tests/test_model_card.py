"""The model card and the infra verdict as plain data: built from run records, no store, no process."""

from __future__ import annotations

import pandas as pd
import pytest

from kerasflow.promotion.card import RunRecord, build_card, card_head, render_card
from kerasflow.promotion.infra import (
    FAILED,
    PASSED,
    InfraReport,
    blessing_description,
    canary_positions,
    compare_outputs,
    judge_probe,
    refuse_unvalidated,
)
from kerasflow.promotion.plan import Decision


def _record(**extra) -> RunRecord:
    base = dict(
        run_id="abc", tags={"kerasflow.data_source": "iris", "kerasflow.data_fingerprint": "f00d",
                            "kerasflow.config_hash": "c0ffee", "prefect.flow_run_id": "fr-1",
                            "mlflow.source.git.commit": "1234"},
        metrics={"test/accuracy": 0.9, "test/loss": 0.3},
        params={"data.rows": "150", "split.train_rows": "100", "split.test_rows": "30"},
        artifacts={"config/config.yaml": {"description": "Sorts irises.", "data": {"target": "species"}},
                   "gate/description.txt": "Gate decision: blessed.\n- accuracy: ok\n"},
        version_tags={"kerasflow.infra": "passed", "kerasflow.infra_details": "Infra validation: passed."},
        aliases={"candidate": "2", "champion": "1"})
    base.update(extra)
    return RunRecord(**base)


def test_the_card_head_is_the_decisions_and_the_intended_use() -> None:
    markdown = render_card(build_card("iris", "2", _record()))
    head = card_head(markdown)
    assert head.splitlines() == ["Gate decision: blessed.", "- accuracy: ok", "Infra validation: passed.",
                                 "Intended use: Sorts irises."]
    assert markdown.startswith(head) and "# Model card: iris v2" in markdown
    assert "- Rows: 150 (train 100, test 30)" in markdown and "- Parent champion: v1" in markdown
    assert "| accuracy | 0.9 |" in markdown and "interval" not in markdown
    assert "## Slices" not in markdown and "## Baseline" not in markdown and "## Design lint" not in markdown


def test_intervals_slices_baseline_and_lint_appear_when_logged() -> None:
    record = _record(
        metrics={"test/accuracy": 0.9, "test/accuracy.ci_low": 0.85, "test/accuracy.ci_high": 0.95,
                 "baseline/accuracy": 0.33},
        params={"baseline.model": "most_frequent"},
        artifacts={"evaluation/slices.json": {"columns": ["slice", "rows", "accuracy"],
                                              "data": [["petal<2", 40, 1.0]]},
                   "lint/report.json": {"counts": {"error": 0, "warning": 1},
                                        "findings": [{"severity": "warning", "path": "model.dropout",
                                                      "message": "too high"}]}})
    card = build_card("iris", "2", record)
    assert card["metrics"]["accuracy"] == {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}
    markdown = render_card(card)
    assert "| accuracy | 0.9 | 0.85 … 0.95 |" in markdown
    assert "| petal<2 | 40 | 1.0 |" in markdown or "| petal<2 | 40 | 1 |" in markdown
    assert "Baseline model: `most_frequent`." in markdown and "| accuracy | 0.33 | 0.9 |" in markdown
    sampled = _record(metrics={"test/accuracy": 0.9, "baseline/accuracy": 0.95},
                      params={"baseline.model": "HistGradientBoostingClassifier", "baseline.rows": "100000",
                              "baseline.sampled_from": "800000"})
    assert "Baseline model: `HistGradientBoostingClassifier`, fitted on a seeded sample of 100,000 of 800,000 " \
           "training rows." in render_card(build_card("iris", "2", sampled))
    assert "- warning: model.dropout: too high" in markdown
    assert card["intended_use"] is None and "Not stated" in markdown


def test_canary_rows_are_evenly_spaced_test_rows() -> None:
    assert canary_positions(list(range(100, 110)), 3) == [100, 104, 109]
    assert canary_positions([5, 6], 50) == [5, 6] and canary_positions([5, 6], 0) == []


def test_served_outputs_must_equal_the_evaluated_ones() -> None:
    evaluated = pd.DataFrame({"prediction": ["a", "b"], "proba_a": [0.9, 0.2], "proba_b": [0.1, 0.8]})
    same = evaluated.assign(proba_a=[0.9 * (1 + 1e-7), 0.2])
    assert compare_outputs(same, evaluated, 1e-5)[0] == []
    drifted = evaluated.assign(proba_a=[0.9, 0.21], prediction=["a", "a"])
    problems, largest = compare_outputs(drifted, evaluated, 1e-5)
    assert len(problems) == 2 and "column 'proba_a' differs in 1 of 2 rows (row 1: served 0.21, evaluated 0.2)" in problems[1]
    assert largest == pytest.approx(0.05)
    assert "columns" in compare_outputs(evaluated[["prediction"]], evaluated, 1e-5)[0][0]


def test_the_verdict_and_what_it_refuses() -> None:
    evaluated = pd.DataFrame({"prediction": [1.0, 2.0]})
    outputs = {"example": pd.DataFrame({"prediction": [0.5] * 5}), "canary": evaluated.copy()}
    passed = judge_probe("load_and_query", "models:/m/1", 1e-5, error=None, load_seconds=2.0, predict_seconds=0.07,
                         outputs=outputs, evaluated=evaluated)
    assert passed.status == PASSED and passed.row_ms == pytest.approx(10.0) and passed.canary_rows == 2
    failed = judge_probe("load_only", "models:/m/1", 1e-5, error="cannot load Doubled")
    assert failed.status == FAILED and failed.tags()["kerasflow.infra"] == "failed"
    promote = Decision(promote=True, outcome="promoted", reasons=["better"])
    refused = refuse_unvalidated(promote, failed)
    assert not refused.promote and refused.outcome == "rejected" and "cannot load Doubled" in refused.reasons[0]
    assert refuse_unvalidated(promote, passed) is promote
    text = blessing_description("Gate decision: blessed: passed every threshold, got @candidate.\n- acc: ok",
                                True, failed, "r1")
    assert text.startswith("Gate decision: not blessed: passed every threshold, but infra validation failed")
    assert text.endswith(failed.line())
    assert InfraReport(mode="off", status="skipped").passed


def test_the_machine_default_applies_only_where_the_config_is_silent(monkeypatch) -> None:
    from kerasflow.promotion.infra import infra_mode
    from kerasflow.schemas.promotion import PromotionConfig

    monkeypatch.setenv("KERASFLOW_INFRA_VALIDATION", "load_only")
    assert infra_mode(PromotionConfig()) == "load_only"
    assert infra_mode(PromotionConfig(infra_validation="load_and_query")) == "load_and_query"
    monkeypatch.delenv("KERASFLOW_INFRA_VALIDATION")
    assert infra_mode(PromotionConfig()) == "load_and_query"
    monkeypatch.setenv("KERASFLOW_INFRA_VALIDATION", "sometimes")
    with pytest.raises(ValueError, match="KERASFLOW_INFRA_VALIDATION='sometimes' is not one of"):
        infra_mode(PromotionConfig())
