"""Sliced evaluation on tiny real data: slicing, per-slice metrics, the worst slice, the gates (no MLflow, no Prefect)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.contract import check_contract, read_sources
from kerasflow.data.findings import DataContractError, require_contract
from kerasflow.data.load import load_frame
from kerasflow.promotion.gate import check_thresholds
from kerasflow.promotion.plan import Decision, RuleCheck
from kerasflow.promotion.slices import (
    compare_slices,
    gated_slice_metrics,
    name_worst_slices,
    refuse_slice_regressions,
    table_rows,
    tag_safe,
)
from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config
from kerasflow.schemas.evaluation import EvaluationConfig, SliceSpec
from kerasflow.schemas.gate import ValueThreshold
from kerasflow.training.evaluate import Evaluation, regression_metrics
from kerasflow.training.slices import evaluate_slices, make_slices, slice_table, summarize


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_frame("penguins")


@pytest.fixture(scope="module")
def diabetes() -> pd.DataFrame:
    return load_frame("diabetes")


def _accuracy(truth: pd.Series, predicted: pd.Series):
    def score(mask: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean(truth.to_numpy()[mask] == predicted.to_numpy()[mask])),
                "loss": float(np.mean(truth.to_numpy()[mask] != predicted.to_numpy()[mask])) * 2,
                "class.Adelie.recall": 1.0}
    return score


def test_categorical_columns_slice_by_value_with_missing_last(penguins: pd.DataFrame) -> None:
    slices = make_slices(penguins, penguins, [SliceSpec(column="sex"), SliceSpec(column="island")])
    names = [s.name for s in slices]
    assert names == ["sex=female", "sex=male", "sex=missing", "island=Biscoe", "island=Dream", "island=Torgersen"]
    by_name = {s.name: int(s.mask.sum()) for s in slices}
    assert by_name["sex=female"] == int((penguins["sex"] == "female").sum())
    assert by_name["sex=missing"] == int(penguins["sex"].isna().sum()) > 0
    assert sum(by_name[n] for n in names if n.startswith("island=")) == len(penguins)


def test_numeric_columns_bin_at_training_quantiles(diabetes: pd.DataFrame) -> None:
    train, test = diabetes.iloc[:300], diabetes.iloc[300:]
    slices = make_slices(test, train, [SliceSpec(column="bmi"), SliceSpec(column="age", bins=3)])
    bmi = [s for s in slices if s.column == "bmi"]
    assert len(bmi) == 4 and bmi[0].value.startswith("< ") and bmi[-1].value.startswith(">= ")
    cuts = np.quantile(train["bmi"], [0.25, 0.5, 0.75])
    assert bmi[0].value == f"< {cuts[0]:.4g}" and bmi[1].value == f"[{cuts[0]:.4g}, {cuts[1]:.4g})"
    assert int(sum(s.mask.sum() for s in bmi)) == len(test)
    assert (np.sum([s.mask for s in bmi], axis=0) == 1).all(), "every test row is in exactly one bin"
    assert len([s for s in slices if s.column == "age"]) == 3


def test_numeric_column_listed_as_categorical_slices_by_value(diabetes: pd.DataFrame) -> None:
    slices = make_slices(diabetes, diabetes, [SliceSpec(column="sex")], categorical=["sex"])
    assert len(slices) == 2 and all(s.name.startswith("sex=") for s in slices)


def test_small_slices_are_reported_but_not_gated(penguins: pd.DataFrame) -> None:
    predicted = penguins["species"].where(penguins["island"] != "Torgersen", "Gentoo")  # wrong on Torgersen
    score = _accuracy(penguins["species"], predicted)
    rows = slice_table(make_slices(penguins, penguins, [SliceSpec(column="island"), SliceSpec(column="sex")]),
                       score, min_rows=30)
    missing = next(r for r in rows if r["slice"] == "sex=missing")
    assert missing["rows"] < 30 and missing["gated"] is False and "accuracy" in missing
    assert all("class.Adelie.recall" not in r for r in rows), "per-class metrics stay in the whole-set metrics"
    metrics, worst = summarize(rows)
    assert metrics["slice_min.accuracy"] == 0.0
    assert worst["accuracy"] == f"island=Torgersen (n={int((penguins['island'] == 'Torgersen').sum())})"
    assert metrics["slice_max.loss"] == 2.0 and "slice_min.loss" not in metrics


def test_a_slice_under_min_rows_does_not_set_the_minimum(penguins: pd.DataFrame) -> None:
    predicted = penguins["species"].where(penguins["sex"].notna(), "nobody")  # wrong only where sex is missing
    rows = slice_table(make_slices(penguins, penguins, [SliceSpec(column="sex")]),
                       _accuracy(penguins["species"], predicted), min_rows=30)
    metrics, worst = summarize(rows)
    assert metrics["slice_min.accuracy"] == 1.0 and worst["accuracy"].startswith("sex=female")


def test_regression_slices_report_the_largest_error(diabetes: pd.DataFrame) -> None:
    from sklearn.linear_model import LinearRegression

    train, test = diabetes.iloc[:330], diabetes.iloc[330:].reset_index(drop=True)
    features = [c for c in diabetes.columns if c != "target"]
    predicted = LinearRegression().fit(train[features], train["target"]).predict(test[features])
    truth = test["target"].to_numpy()
    section = EvaluationConfig(slices=[SliceSpec(column="age", bins=2), "sex"], min_slice_rows=20)
    whole = Evaluation(metrics=regression_metrics(truth, predicted))
    sliced = evaluate_slices(whole, section, test, train, lambda mask: regression_metrics(truth[mask], predicted[mask]))
    assert len(sliced.slices) == 2 + 2 and {r["column"] for r in sliced.slices} == {"age", "sex"}
    assert sliced.metrics["slice_max.mae"] == max(r["mae"] for r in sliced.slices if r["gated"])
    assert sliced.metrics["slice_max.mae"] >= whole.metrics["mae"]
    assert sliced.metrics["slice_min.r2"] == min(r["r2"] for r in sliced.slices if r["gated"])
    assert sliced.metrics["mae"] == whole.metrics["mae"] and sliced.worst["mae"].endswith(")")
    assert evaluate_slices(whole, EvaluationConfig(), test, train, lambda mask: {}) is whole


def test_thresholds_on_slice_metrics_name_the_worst_slice() -> None:
    gate = check_thresholds({"accuracy": 0.95, "slice_min.accuracy": 0.71}, {"slice_min.accuracy": 0.8, "accuracy": 0.9})
    named = name_worst_slices(gate, {"accuracy": "sex=female (n=41)"})
    assert not named.passed and len(named.violations) == 1
    assert named.violations[0] == ("slice_min.accuracy: expected >= 0.8, observed 0.7100 -> FAIL; "
                                   "worst slice: sex=female (n=41)")
    assert named.reasons[1].startswith("accuracy: expected >= 0.9") and "worst slice" not in named.reasons[1]


def _rows(values: dict[str, tuple[float, int]]) -> list[dict]:
    return [{"slice": name, "column": name.split("=")[0], "value": name.split("=")[1], "rows": n, "gated": n >= 30,
             "accuracy": acc, "mae": 1 - acc} for name, (acc, n) in values.items()]


def test_a_challenger_worse_on_a_gated_slice_is_refused() -> None:
    champion = _rows({"sex=female": (0.90, 41), "sex=male": (0.90, 40), "sex=missing": (0.9, 5)})
    challenger = _rows({"sex=female": (0.85, 41), "sex=male": (0.95, 40), "sex=missing": (0.0, 5)})
    checks = compare_slices(challenger, champion, ["accuracy"], margin=0.02)
    assert [c.metric for c in checks] == ["accuracy where sex is female", "accuracy where sex is male"]
    assert "on slice sex=female (n=41, higher is better)" in checks[0].line()
    assert [c.passed for c in checks] == [False, True]
    promoted = Decision(True, "promoted", [RuleCheck("threshold", "accuracy", ">= 0.8", 0.9, True)], ["all hold"])
    refused = refuse_slice_regressions(promoted, checks)
    assert not refused.promote and refused.outcome == "rejected" and len(refused.checks) == 3
    assert "accuracy where sex is female" in refused.reasons[0] and "-0.0500" in refused.reasons[0]
    within = compare_slices(challenger, champion, ["accuracy"], margin=0.06)
    assert refuse_slice_regressions(promoted, within).promote
    lower = compare_slices(challenger, champion, ["mae"], margin=0.02)
    assert [c.passed for c in lower] == [False, True] and lower[0].higher is False


def test_slice_rule_names_are_valid_tag_keys() -> None:
    assert tag_safe("body_mass_g=[3550, 4050)") == "body_mass_g from 3550 to 4050"
    assert tag_safe("body_mass_g=< 3550") == "body_mass_g below 3550"
    assert tag_safe("age=>= 0.0381") == "age from 0.0381"
    assert tag_safe("city=São Paulo?") == "city is S_o Paulo_"


def test_logged_tables_and_gated_metrics_are_read_back() -> None:
    logged = {"columns": ["slice", "rows", "gated", "accuracy"], "data": [["sex=female", 41, True, 0.9]]}
    assert table_rows(logged) == [{"slice": "sex=female", "rows": 41, "gated": True, "accuracy": 0.9}]
    rules = [ValueThreshold(metric="slice_min.accuracy", min=0.8), ValueThreshold(metric="slice_max.mae", max=3),
             ValueThreshold(metric="accuracy", min=0.9)]
    assert gated_slice_metrics(rules) == ["accuracy", "mae"]


def _config(tmp_path: Path, **data: object) -> Path:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "data": {"source": "penguins", "target": "species", **data},
                                    "evaluation": {"slices": ["sex", {"column": "body_mass_g", "bins": 3}]}}))
    return path


def test_slices_parse_and_are_refused_where_they_cannot_apply(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path))
    assert [(s.column, s.bins) for s in config.evaluation.slice_specs] == [("sex", None), ("body_mass_g", 3)]
    assert config.evaluation.min_slice_rows == 30
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, source=str(folder), target="label", image={"size": [8, 8]}))
    assert any(p.startswith("evaluation.slices:") and "image folder" in p for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, streaming=True))
    assert any(p.startswith("evaluation.slices:") and "data.streaming" in p for p in err.value.problems)


def test_a_slice_column_missing_from_the_data_is_a_contract_error() -> None:
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "penguins", "target": "species"},
                                            "evaluation": {"slices": ["sexx"]}})
    with pytest.raises(DataContractError) as err:
        require_contract(check_contract(config, *read_sources(config.data)))
    assert "evaluation.slices" in str(err.value) and "sexx" in str(err.value) and "sex" in str(err.value)
