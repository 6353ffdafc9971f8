"""Tests for kerasflow.data.expectations.draft: the starter suites `build_suite` and `kerasflow suite init` draft."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from suite_helpers import only_violation, rule_kwargs, rules_of, tiny_frame

from kerasflow.data.expectations.draft import build_suite
from kerasflow.data.expectations.run import validate_frame
from kerasflow.data.expectations.suites import load_suite, write_suite
from kerasflow.data.load import load_frame


@pytest.fixture
def tiny() -> pd.DataFrame:
    return tiny_frame()


# --- build_suite -------------------------------------------------------------------


def test_build_suite_rules(tiny: pd.DataFrame) -> None:
    suite = build_suite(tiny, "label", name="tiny", categorical_max_levels=5)
    assert suite["name"] == "tiny"
    table = suite["expectations"][0]
    assert table["type"] == "expect_table_columns_to_match_set"
    assert table["kwargs"] == {"column_set": list(tiny.columns), "exact_match": True}
    assert rule_kwargs(suite, "expect_column_values_to_not_be_null", "num") == {
        "column": "num", "mostly": 0.85,
    }  # fmt: skip
    # 10 rows: the tolerance for what the reference never showed is capped at 5%.
    assert rule_kwargs(suite, "expect_column_values_to_not_be_null", "count") == {
        "column": "count", "mostly": 0.95,
    }  # fmt: skip
    assert rule_kwargs(suite, "expect_column_values_to_not_be_null", "label") == {"column": "label"}
    # Non-negative, integer-valued columns: the lower bound stops at 0, bounds are integers.
    assert rule_kwargs(suite, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 11, "mostly": 0.95,
    }  # fmt: skip
    assert rule_kwargs(suite, "expect_column_values_to_be_between", "count") == {
        "column": "count", "min_value": 0, "max_value": 11, "mostly": 0.95,
    }  # fmt: skip
    assert rule_kwargs(suite, "expect_column_values_to_be_in_set", "color") == {
        "column": "color", "value_set": ["blue", "red"], "mostly": 0.99,
    }  # fmt: skip
    assert rule_kwargs(suite, "expect_column_values_to_be_in_set", "label") == {
        "column": "label", "value_set": [0, 1],
    }  # fmt: skip
    assert "expect_column_values_to_be_between" not in rules_of(suite, "label")
    assert "expect_column_values_to_be_in_set" not in rules_of(suite, "text")
    assert "str" in rule_kwargs(suite, "expect_column_values_to_be_in_type_list", "text")["type_list"]
    for column in tiny.columns:
        assert "expect_column_to_exist" in rules_of(suite, column)


def test_build_suite_is_json_and_gx_compatible(tiny: pd.DataFrame, tmp_path: Path) -> None:
    import great_expectations as gx

    suite = build_suite(tiny, "label", name="tiny")
    path = write_suite(suite, tmp_path / "nested" / "tiny.json")
    assert load_suite(path) == suite
    assert len(gx.ExpectationSuite(**suite).expectations) == len(suite["expectations"])


def test_numeric_target_with_many_levels_gets_range() -> None:
    frame = pd.DataFrame({"x": range(30), "y": np.linspace(0.0, 1.0, 30)})
    suite = build_suite(frame, "y", name="reg")
    assert "expect_column_values_to_be_between" in rules_of(suite, "y")
    assert "expect_column_values_to_be_in_set" not in rules_of(suite, "y")


def test_constant_column_keeps_exact_bounds() -> None:
    frame = pd.DataFrame({"c": [3.3, 3.3], "y": ["a", "b"]})
    kwargs = rule_kwargs(build_suite(frame, "y", name="c"), "expect_column_values_to_be_between", "c")
    assert kwargs["min_value"] == kwargs["max_value"] == 3.3


def test_extension_dtypes_pass_their_own_suite() -> None:
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3, 4], dtype="Int64"),
            "f": pd.array([1.5, 2.5, None, 4.0], dtype="Float64"),
            "cat": pd.Categorical(["a", "b", None, "a"]),
            "flag": pd.array([True, False, None, True], dtype="boolean"),
            "plain_bool": [True, False, True, True],
            "obj": pd.Series(["u", "v", None, "u"], dtype=object),
            "s": pd.Series(["u", "v", "w", "u"], dtype="string[python]"),
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]),
            "y": ["p", "q", "p", "q"],
        }
    )
    report = validate_frame(frame, build_suite(frame, "y", name="ext"))
    assert report.success, report.summary()
    bad = frame.assign(cat=pd.Categorical(["a", "b", "zzz", "a"]))
    assert only_violation(validate_frame(bad, build_suite(frame, "y", name="ext")),
                 "cat", "expect_column_values_to_be_in_set")  # fmt: skip


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"a": [1]}), "missing", "not in the frame"),
        (pd.DataFrame({"a": [1, 2], "y": ["x", None]}), "y", "1 missing value"),
        (pd.DataFrame({"a": [], "y": []}), "y", "empty frame"),
    ],
)
def test_build_suite_rejects_bad_reference(frame: pd.DataFrame, target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_suite(frame, target, name="bad")


def test_bounds_keep_the_sign_and_integers_of_the_data() -> None:
    frame = pd.DataFrame({"count": [5, 40, 100], "share": [0.2, 0.5, 0.9],
                          "loss": [-9.5, -3.0, -0.5], "y": ["a", "b", "a"]})  # fmt: skip
    suite = build_suite(frame, "y", name="signs")
    count = rule_kwargs(suite, "expect_column_values_to_be_between", "count")
    assert (count["min_value"], count["max_value"]) == (0, 110)
    assert isinstance(count["min_value"], int) and isinstance(count["max_value"], int)
    share = rule_kwargs(suite, "expect_column_values_to_be_between", "share")
    assert (share["min_value"], share["max_value"]) == (0.13, 0.97)
    loss = rule_kwargs(suite, "expect_column_values_to_be_between", "loss")
    assert (loss["min_value"], loss["max_value"]) == (-10.4, 0.0)


def test_range_meta_records_what_was_observed(tiny: pd.DataFrame) -> None:
    suite = build_suite(tiny, "label", name="tiny")
    [item] = [e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_between"
              and e["kwargs"]["column"] == "num"]  # fmt: skip
    assert item["meta"] == {"observed_min": 0, "observed_max": 10, "reference_values": 9}


def test_suite_meta_records_the_policy(tiny: pd.DataFrame) -> None:
    policy = build_suite(tiny, "label", name="tiny")["meta"]["kerasflow"]
    assert policy["built_from_rows"] == 10 and policy["target"] == "label"
    assert policy["range_margin"] == 0.1 and policy["unseen_categories"] == 0.01
    assert policy["out_of_range"].startswith("auto: 10/(n+1)")
    assert policy["docs"] == "docs/validation.md"
    strict = build_suite(tiny, "label", name="tiny", out_of_range=0.0)["meta"]["kerasflow"]
    assert strict["out_of_range"] == 0.0


def test_default_tolerance_shrinks_with_the_reference() -> None:
    rng = np.random.default_rng(0)
    tolerances = []
    for rows in (100, 2_000, 100_000):
        frame = pd.DataFrame({"x": rng.normal(size=rows), "y": rng.integers(0, 2, rows)})
        suite = build_suite(frame, "y", name="n")
        tolerances.append(1 - rule_kwargs(suite, "expect_column_values_to_be_between", "x")["mostly"])
        assert rule_kwargs(suite, "expect_column_values_to_not_be_null", "x")["mostly"] == pytest.approx(
            1 - tolerances[-1])
    assert tolerances == pytest.approx([0.05, 0.005, 0.0001])  # min(10 / (n + 1), 0.05), rounded up


def test_policy_knobs(tiny: pd.DataFrame) -> None:
    strict = build_suite(tiny, "label", name="tiny", range_margin=0.0, out_of_range=0.0,
                         unseen_categories=0.0)  # fmt: skip
    assert rule_kwargs(strict, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 10,
    }  # fmt: skip
    assert "mostly" not in rule_kwargs(strict, "expect_column_values_to_be_in_set", "color")
    loose = build_suite(tiny, "label", name="tiny", range_margin=0.5, out_of_range=0.02,
                        unseen_categories=0.1)  # fmt: skip
    assert rule_kwargs(loose, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 15, "mostly": 0.98,
    }  # fmt: skip
    assert rule_kwargs(loose, "expect_column_values_to_be_in_set", "color")["mostly"] == 0.9
    assert "mostly" not in rule_kwargs(loose, "expect_column_values_to_be_in_set", "label")


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("range_margin", -0.1, "range_margin must be a number >= 0"),
        ("out_of_range", 1.0, r"out_of_range must be a share in \[0, 1\)"),
        ("unseen_categories", -0.01, r"unseen_categories must be a share in \[0, 1\)"),
    ],
)
def test_build_suite_rejects_bad_policy(tiny: pd.DataFrame, knob: str, value: float,
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_suite(tiny, "label", name="bad", **{knob: value})


def test_suite_init_cli_passes_the_knobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kerasflow.runtime import cli

    monkeypatch.setattr(cli, "silence", lambda: None)  # leave this process's environment alone
    out = tmp_path / "p.json"
    args = ["suite", "init", "penguins", "--target", "species", "--out", str(out),
            "--range-margin", "0.2", "--out-of-range", "0", "--unseen-categories", "0.05"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    suite = load_suite(out)
    assert suite["meta"]["kerasflow"]["range_margin"] == 0.2
    assert "mostly" not in rule_kwargs(suite, "expect_column_values_to_be_between", "bill_length_mm")
    assert rule_kwargs(suite, "expect_column_values_to_be_in_set", "island")["mostly"] == 0.95
    bad = CliRunner().invoke(cli.app, [*args[:7], "--out-of-range", "1"])
    assert bad.exit_code == 2 and "out_of_range must be a share" in bad.output


# --- starter suites generalize to new samples of the same source ------------------


def _halves(name: str, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    frame = load_frame(name)
    first, second = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame[target])
    return first.reset_index(drop=True), second.reset_index(drop=True)


@pytest.mark.parametrize(("name", "target"), [("penguins", "species"), ("breast_cancer", "target")])
def test_suite_from_one_half_passes_the_other(name: str, target: str) -> None:
    first, second = _halves(name, target)
    for reference, fresh in ((first, second), (second, first)):
        report = validate_frame(fresh, build_suite(reference, target, name=name))
        assert report.success, report.summary()


def test_suite_from_one_half_fails_a_corrupted_other_half() -> None:
    first, second = _halves("penguins", "species")
    suite = build_suite(first, "species", name="penguins")
    bad = second.drop(columns=["year"])
    rows = np.arange(len(bad))
    bad.loc[rows % 4 == 0, "bill_length_mm"] *= 10  # a unit error on a quarter of the rows
    bad.loc[rows % 10 == 1, "island"] = "Atlantis"  # an unseen category on a tenth of the rows
    bad.loc[2, "species"] = "Emperor"  # an unseen label on one row
    report = validate_frame(bad, suite)
    assert not report.success
    length = only_violation(report, "bill_length_mm", "expect_column_values_to_be_between")
    assert length.unexpected_percent > 20 and "in at least 95% of rows" in length.expected
    assert "'Atlantis'" in only_violation(report, "island", "expect_column_values_to_be_in_set").observed
    label = only_violation(report, "species", "expect_column_values_to_be_in_set")
    assert label.observed.startswith("0.6% of rows unexpected (1 of 172 rows; e.g. ['Emperor'])")
    assert "missing ['year']" in only_violation(report, None, "expect_table_columns_to_match_set").observed
    assert only_violation(report, "year", "expect_column_to_exist").observed == (
        "column 'year' missing from the data")
    assert {v.column for v in report.violations} == {
        None, "species", "island", "bill_length_mm", "year"}
    for column in ("species", "island", "bill_length_mm", "year"):
        assert f"column '{column}'" in report.summary()


def test_numeric_suite_from_one_half_fails_a_shifted_other_half() -> None:
    first, second = _halves("breast_cancer", "target")
    suite = build_suite(first, "target", name="breast_cancer")
    shifted = second.assign(mean_radius=second["mean_radius"] + 100.0)
    report = validate_frame(shifted, suite)
    assert [v.column for v in report.violations] == ["mean_radius"]
    assert report.violations[0].unexpected_percent == 100.0
    relabeled = second.copy()
    relabeled.loc[0, "target"] = "unknown"
    report = validate_frame(relabeled, suite)
    assert [(v.column, v.rule) for v in report.violations] == [
        ("target", "expect_column_values_to_be_in_set")]


def test_rare_unseen_category_is_tolerated_but_an_unseen_label_is_not() -> None:
    reference = pd.DataFrame({"plan": ["basic", "plus"] * 100, "y": ["a", "b"] * 100})
    suite = build_suite(reference, "y", name="plans")
    rare = reference.copy()
    rare.loc[0, "plan"] = "legacy"  # 0.5% of the rows: within the 1% tolerated by default
    assert validate_frame(rare, suite).success
    common = reference.copy()
    common.loc[:9, "plan"] = "legacy"  # 5% of the rows
    assert [v.column for v in validate_frame(common, suite).violations] == ["plan"]
    relabeled = reference.copy()
    relabeled.loc[0, "y"] = "c"
    assert [v.column for v in validate_frame(relabeled, suite).violations] == ["y"]


def _same_source(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows of one fixed distribution: Gaussian clusters, long tails, counts, rare levels and nulls."""
    from sklearn.datasets import make_classification

    rng = np.random.default_rng(seed)
    features, labels = make_classification(n_samples=rows, n_features=8, n_informative=5,
                                           random_state=seed)  # fmt: skip
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(8)])
    frame["income"] = rng.lognormal(10.0, 1.0, rows)
    frame["visits"] = rng.poisson(3.0, rows)
    frame["plan"] = rng.choice(["basic", "plus", "pro", "legacy"], rows, p=[0.6, 0.3, 0.097, 0.003])
    frame["age"] = np.where(rng.random(rows) < 0.001, np.nan, rng.normal(40.0, 12.0, rows))
    frame["label"] = np.where(labels == 1, "churn", "stay")
    return frame


def test_larger_sample_of_the_same_source_passes() -> None:
    """The bug report: a suite drafted on a small sample rejected a large one of the same source."""
    frame = _same_source(52_000)
    reference, fresh = frame.iloc[:2_000], frame.iloc[2_000:]
    suite = build_suite(reference, "label", name="same-source")
    report = validate_frame(fresh, suite)
    assert report.success, report.summary()
    exact = build_suite(reference, "label", name="exact", range_margin=0.1, out_of_range=0.0,
                        unseen_categories=0.0)  # fmt: skip
    assert not validate_frame(fresh, exact).success  # what exact copies of the sample did
    drifted = fresh.assign(income=fresh["income"] * 100.0)
    assert {v.column for v in validate_frame(drifted, suite).violations} == {"income"}
