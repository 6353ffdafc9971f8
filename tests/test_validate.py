"""Tests for kerasflow.data.expectations: suite drafting, validation, reports and errors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.expectations.draft import build_suite
from kerasflow.data.expectations.report import ValidationReport, Violation
from kerasflow.data.expectations.run import DataValidationError, require_valid, validate_frame
from kerasflow.data.expectations.suites import SuiteError, load_suite, write_suite
from kerasflow.data.load import BUILTIN_SOURCES, load_frame

REPO = Path(__file__).resolve().parents[1]
SUITES = REPO / "schemas" / "suites"
SUITE_DATA = {name: name for name in BUILTIN_SOURCES} | {
    "fine_foods": str(REPO / "data" / "fine_foods" / "train.csv")
}


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_frame("penguins")


@pytest.fixture(scope="module")
def penguin_suite() -> dict:
    return load_suite(SUITES / "penguins.json")


@pytest.fixture
def tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "num": [0.0, 5.0, 10.0, np.nan, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0],
            "count": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "color": ["red", "blue", "red", None, "blue", "red", "red", "blue", "red", "red"],
            "text": [f"free text {i}" for i in range(10)],
            "label": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        }
    )


def _kwargs(suite: dict, rule: str, column: str) -> dict:
    matches = [e["kwargs"] for e in suite["expectations"]
               if e["type"] == rule and e["kwargs"].get("column") == column]  # fmt: skip
    assert len(matches) == 1, (rule, column, matches)
    return matches[0]


def _rules(suite: dict, column: str) -> set[str]:
    return {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == column}


def _only(report: ValidationReport, column: str | None, rule: str) -> Violation:
    found = [v for v in report.violations if v.column == column and v.rule == rule]
    assert len(found) == 1, report.summary()
    return found[0]


# --- committed suites --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SUITE_DATA))
def test_committed_suite_passes_on_its_own_data(name: str) -> None:
    suite = load_suite(SUITES / f"{name}.json")
    report = validate_frame(load_frame(SUITE_DATA[name]), suite)
    assert report.success, report.summary()
    assert report.evaluated == len(suite["expectations"])
    assert report.violations == []
    assert "passed" in report.summary()
    assert require_valid(report) is report


def test_fine_foods_test_split_passes_and_free_text_has_no_value_set() -> None:
    suite = load_suite(SUITES / "fine_foods.json")
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "score")["value_set"] == [
        "great", "other",
    ]  # fmt: skip
    assert "expect_column_values_to_be_in_set" not in _rules(suite, "review")
    assert "expect_column_values_to_be_in_set" not in _rules(suite, "product")
    test = load_frame(str(REPO / "data" / "fine_foods" / "test.csv"))
    assert validate_frame(test, suite).success


# --- corrupted data ----------------------------------------------------------


@pytest.fixture(scope="module")
def corrupted_report(penguins: pd.DataFrame, penguin_suite: dict) -> ValidationReport:
    bad = penguins.drop(columns=["year"])
    bad.loc[0, "bill_length_mm"] = 1000.0
    bad.loc[1, "island"] = "Atlantis"
    bad.loc[2, "species"] = None
    bad["body_mass_g"] = bad["body_mass_g"].astype(str)
    return validate_frame(bad, penguin_suite)


def test_out_of_range_value(corrupted_report: ValidationReport) -> None:
    v = _only(corrupted_report, "bill_length_mm", "expect_column_values_to_be_between")
    assert v.expected == "min 29.35, max 62.35"
    assert v.observed == "0.3% of rows unexpected (1 of 342 non-null rows; e.g. [1000])"
    assert v.unexpected_percent == pytest.approx(100 / 342)


def test_unknown_category(corrupted_report: ValidationReport) -> None:
    v = _only(corrupted_report, "island", "expect_column_values_to_be_in_set")
    assert v.expected == "one of ['Biscoe', 'Dream', 'Torgersen']"
    assert "'Atlantis'" in v.observed


def test_missing_column(corrupted_report: ValidationReport) -> None:
    table = _only(corrupted_report, None, "expect_table_columns_to_match_set")
    assert "missing ['year']" in table.observed
    exists = _only(corrupted_report, "year", "expect_column_to_exist")
    assert exists.observed == "column 'year' missing from the data"


def test_null_in_target(corrupted_report: ValidationReport) -> None:
    v = _only(corrupted_report, "species", "expect_column_values_to_not_be_null")
    assert v.expected == "no null values"
    assert v.observed == "0.3% of rows unexpected (1 of 344 rows; e.g. [None])"


def test_wrong_type(corrupted_report: ValidationReport) -> None:
    v = _only(corrupted_report, "body_mass_g", "expect_column_values_to_be_in_type_list")
    assert "float64" in v.expected and "int64" in v.expected
    assert v.observed.startswith("100.0% of rows unexpected (342 of 342 non-null rows; e.g. ['")


def test_error_message_lists_every_violation(corrupted_report: ValidationReport) -> None:
    assert not corrupted_report.success
    with pytest.raises(DataValidationError) as info:
        require_valid(corrupted_report)
    message = str(info.value)
    assert info.value.report is corrupted_report
    assert message.startswith("Suite 'penguins' failed: ")
    assert f"{len(corrupted_report.violations)} of 33 expectations violated" in message
    for violation in corrupted_report.violations:
        assert str(violation) in message
    assert len(message.splitlines()) == len(corrupted_report.violations) + 1
    restored = pickle.loads(pickle.dumps(info.value))
    assert str(restored) == message and restored.report.violations == corrupted_report.violations


def test_violations_ordered_table_first_then_columns(corrupted_report: ValidationReport) -> None:
    columns = [v.column for v in corrupted_report.violations]
    assert columns[0] is None
    assert columns.index("species") < columns.index("island") < columns.index("year")


def test_report_carries_json_result_and_html(corrupted_report: ValidationReport) -> None:
    json.dumps(corrupted_report.result)
    assert corrupted_report.result["success"] is False
    assert "<html" in corrupted_report.html.lower()
    assert "bill_length_mm" in corrupted_report.html


def test_data_docs_are_one_self_contained_page(corrupted_report: ValidationReport) -> None:
    import re

    page = corrupted_report.html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page), "no asset from the network (offline machines)"
    assert "<script" not in page.lower(), "renders in MLflow's sandboxed artifact viewer"
    assert "<style>" in page and "<strong>failed</strong>" in page
    failed_rows = page.count('<tr class="failed">')
    assert failed_rows == len(corrupted_report.violations) and failed_rows > 0


def test_violation_str() -> None:
    violation = Violation("a", "expect_column_values_to_be_between", "min 0, max 2",
                          "33.3% of rows unexpected (e.g. [3.0])", 33.3)  # fmt: skip
    assert str(violation) == (
        "column 'a': expect_column_values_to_be_between — expected min 0, max 2; "
        "observed 33.3% of rows unexpected (e.g. [3.0])"
    )


# --- skip_columns --------------------------------------------------------------


def test_skip_columns_validates_prediction_inputs(
    penguins: pd.DataFrame, penguin_suite: dict
) -> None:
    features = penguins.drop(columns=["species"])
    assert validate_frame(features, penguin_suite, skip_columns=["species"]).success
    failing = validate_frame(features, penguin_suite)
    assert {v.column for v in failing.violations} == {None, "species"}


def test_skip_columns_ignores_skipped_column_if_present(
    penguins: pd.DataFrame, penguin_suite: dict
) -> None:
    unlabeled = penguins.assign(species=None)
    assert validate_frame(unlabeled, penguin_suite, skip_columns=["species"]).success
    assert not validate_frame(unlabeled, penguin_suite).success


def test_skip_columns_does_not_mutate_suite(penguin_suite: dict) -> None:
    before = json.dumps(penguin_suite)
    validate_frame(load_frame("penguins"), penguin_suite, skip_columns=["species", "year"])
    assert json.dumps(penguin_suite) == before


# --- quiet -----------------------------------------------------------------------


def test_validate_frame_prints_nothing(
    capfd: pytest.CaptureFixture[str], tiny: pd.DataFrame
) -> None:
    suite = build_suite(tiny, "label", name="tiny")
    capfd.readouterr()
    validate_frame(tiny, suite)
    validate_frame(tiny.assign(num=99.0), suite)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_fresh_process_is_silent_and_import_is_lazy() -> None:
    code = (
        "import sys, pandas as pd\n"
        "import kerasflow.data.expectations.draft as d, kerasflow.data.expectations.run as v\n"
        "heavy = [m for m in ('great_expectations', 'prefect', 'mlflow', 'tensorflow') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "df = pd.DataFrame({'a': [1.0, 2.0, 3.0], 'b': ['x', 'y', 'x']})\n"
        "suite = d.build_suite(df, 'b', name='t')\n"
        "report = v.validate_frame(df.assign(a=[1.0, 2.0, 30.0]), suite)\n"
        "assert not report.success\n"
        "assert 'prefect' not in sys.modules and 'mlflow' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


# --- build_suite -------------------------------------------------------------------


def test_build_suite_rules(tiny: pd.DataFrame) -> None:
    suite = build_suite(tiny, "label", name="tiny", categorical_max_levels=5)
    assert suite["name"] == "tiny"
    table = suite["expectations"][0]
    assert table["type"] == "expect_table_columns_to_match_set"
    assert table["kwargs"] == {"column_set": list(tiny.columns), "exact_match": True}
    assert _kwargs(suite, "expect_column_values_to_not_be_null", "num") == {
        "column": "num", "mostly": 0.85,
    }  # fmt: skip
    # 10 rows: the tolerance for what the reference never showed is capped at 5%.
    assert _kwargs(suite, "expect_column_values_to_not_be_null", "count") == {
        "column": "count", "mostly": 0.95,
    }  # fmt: skip
    assert _kwargs(suite, "expect_column_values_to_not_be_null", "label") == {"column": "label"}
    # Non-negative, integer-valued columns: the lower bound stops at 0, bounds are integers.
    assert _kwargs(suite, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 11, "mostly": 0.95,
    }  # fmt: skip
    assert _kwargs(suite, "expect_column_values_to_be_between", "count") == {
        "column": "count", "min_value": 0, "max_value": 11, "mostly": 0.95,
    }  # fmt: skip
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "color") == {
        "column": "color", "value_set": ["blue", "red"], "mostly": 0.99,
    }  # fmt: skip
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "label") == {
        "column": "label", "value_set": [0, 1],
    }  # fmt: skip
    assert "expect_column_values_to_be_between" not in _rules(suite, "label")
    assert "expect_column_values_to_be_in_set" not in _rules(suite, "text")
    assert "str" in _kwargs(suite, "expect_column_values_to_be_in_type_list", "text")["type_list"]
    for column in tiny.columns:
        assert "expect_column_to_exist" in _rules(suite, column)


def test_build_suite_is_json_and_gx_compatible(tiny: pd.DataFrame, tmp_path: Path) -> None:
    import great_expectations as gx

    suite = build_suite(tiny, "label", name="tiny")
    path = write_suite(suite, tmp_path / "nested" / "tiny.json")
    assert load_suite(path) == suite
    assert len(gx.ExpectationSuite(**suite).expectations) == len(suite["expectations"])


def test_numeric_target_with_many_levels_gets_range() -> None:
    frame = pd.DataFrame({"x": range(30), "y": np.linspace(0.0, 1.0, 30)})
    suite = build_suite(frame, "y", name="reg")
    assert "expect_column_values_to_be_between" in _rules(suite, "y")
    assert "expect_column_values_to_be_in_set" not in _rules(suite, "y")


def test_constant_column_keeps_exact_bounds() -> None:
    frame = pd.DataFrame({"c": [3.3, 3.3], "y": ["a", "b"]})
    kwargs = _kwargs(build_suite(frame, "y", name="c"), "expect_column_values_to_be_between", "c")
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
    assert _only(validate_frame(bad, build_suite(frame, "y", name="ext")),
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
    count = _kwargs(suite, "expect_column_values_to_be_between", "count")
    assert (count["min_value"], count["max_value"]) == (0, 110)
    assert isinstance(count["min_value"], int) and isinstance(count["max_value"], int)
    share = _kwargs(suite, "expect_column_values_to_be_between", "share")
    assert (share["min_value"], share["max_value"]) == (0.13, 0.97)
    loss = _kwargs(suite, "expect_column_values_to_be_between", "loss")
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
        tolerances.append(1 - _kwargs(suite, "expect_column_values_to_be_between", "x")["mostly"])
        assert _kwargs(suite, "expect_column_values_to_not_be_null", "x")["mostly"] == pytest.approx(
            1 - tolerances[-1])
    assert tolerances == pytest.approx([0.05, 0.005, 0.0001])  # min(10 / (n + 1), 0.05), rounded up


def test_policy_knobs(tiny: pd.DataFrame) -> None:
    strict = build_suite(tiny, "label", name="tiny", range_margin=0.0, out_of_range=0.0,
                         unseen_categories=0.0)  # fmt: skip
    assert _kwargs(strict, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 10,
    }  # fmt: skip
    assert "mostly" not in _kwargs(strict, "expect_column_values_to_be_in_set", "color")
    loose = build_suite(tiny, "label", name="tiny", range_margin=0.5, out_of_range=0.02,
                        unseen_categories=0.1)  # fmt: skip
    assert _kwargs(loose, "expect_column_values_to_be_between", "num") == {
        "column": "num", "min_value": 0, "max_value": 15, "mostly": 0.98,
    }  # fmt: skip
    assert _kwargs(loose, "expect_column_values_to_be_in_set", "color")["mostly"] == 0.9
    assert "mostly" not in _kwargs(loose, "expect_column_values_to_be_in_set", "label")


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
    assert "mostly" not in _kwargs(suite, "expect_column_values_to_be_between", "bill_length_mm")
    assert _kwargs(suite, "expect_column_values_to_be_in_set", "island")["mostly"] == 0.95
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
    length = _only(report, "bill_length_mm", "expect_column_values_to_be_between")
    assert length.unexpected_percent > 20 and "in at least 95% of rows" in length.expected
    assert "'Atlantis'" in _only(report, "island", "expect_column_values_to_be_in_set").observed
    label = _only(report, "species", "expect_column_values_to_be_in_set")
    assert label.observed.startswith("0.6% of rows unexpected (1 of 172 rows; e.g. ['Emperor'])")
    assert "missing ['year']" in _only(report, None, "expect_table_columns_to_match_set").observed
    assert _only(report, "year", "expect_column_to_exist").observed == (
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


# --- suite files -------------------------------------------------------------------


def test_load_suite_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist") as info:
        load_suite(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)


def test_load_suite_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(SuiteError, match="not valid JSON") as info:
        load_suite(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content",
    [[], {"expectations": []}, {"name": "x"}, {"name": "x", "expectations": [{"kwargs": {}}]}],
)
def test_load_suite_bad_structure(tmp_path: Path, content: object) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SuiteError, match="odd.json"):
        load_suite(path)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "expect_nonsense", "kwargs": {}}, "expect_nonsense not found"),
        ({"type": "expect_column_values_to_be_between", "kwargs": {"colum": "num"}}, "colum"),
    ],
)
def test_invalid_expectation_is_a_suite_error(tiny: pd.DataFrame, item: dict, message: str) -> None:
    suite = {"name": "x", "expectations": [{"type": "expect_column_to_exist",
                                            "kwargs": {"column": "num"}}, item]}  # fmt: skip
    with pytest.raises(SuiteError, match=message) as info:
        validate_frame(tiny, suite)
    assert "#1" in str(info.value) and "'x'" in str(info.value)


# --- the validation worker process --------------------------------------------


def test_worker_validation_matches_in_process(penguins: pd.DataFrame, penguin_suite: dict,
                                              corrupted_report: ValidationReport, tmp_path: Path,
                                              validator_per_job: None) -> None:
    from kerasflow.data.expectations import run as gx_run
    from kerasflow.data.expectations.run import validate_file

    bad = penguins.drop(columns=["year"])
    bad.loc[0, "bill_length_mm"] = 1000.0
    bad.loc[1, "island"] = "Atlantis"
    bad.loc[2, "species"] = None
    bad["body_mass_g"] = bad["body_mass_g"].astype(str)
    bad.to_parquet(tmp_path / "bad.parquet")
    gx_run.start_validator()  # warm, as the CLI does before the flow
    gx_run.start_validator()  # a no-op: the same worker
    pid = gx_run.validator_pid()
    assert pid is not None
    waited = []
    report = gx_run.run_validation(validate_file, str(tmp_path / "bad.parquet"), penguin_suite,
                                      while_waiting=lambda: waited.append(True))
    assert waited == [True]
    assert not report.success
    assert [str(v) for v in report.violations] == [str(v) for v in corrupted_report.violations]
    assert (report.evaluated, report.summary()) == (corrupted_report.evaluated, corrupted_report.summary())
    with pytest.raises(DataValidationError, match="bill_length_mm"):
        require_valid(report)
    assert gx_run.validator_pid() is None  # the worker is shut down after its job
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # and reaped


def test_worker_reraises_the_callers_error(tiny: pd.DataFrame, tmp_path: Path) -> None:
    from kerasflow.data.expectations.run import run_validation, validate_file

    tiny.to_parquet(tmp_path / "tiny.parquet")
    with pytest.raises(SuiteError, match="suite") as info:
        run_validation(validate_file, str(tmp_path / "tiny.parquet"), {"expectations": []})
    assert type(info.value) is SuiteError


def test_worker_reraises_a_data_validation_error_with_its_report(corrupted_report: ValidationReport) -> None:
    from kerasflow.data.expectations.run import run_validation

    with pytest.raises(DataValidationError, match="bill_length_mm") as info:
        run_validation(require_valid, corrupted_report)
    assert info.value.report.summary() == corrupted_report.summary()


def test_worker_death_is_reported_clearly() -> None:
    import os

    from kerasflow.data.expectations.run import ValidationWorkerDied, run_validation, start_validator

    start_validator()
    with pytest.raises(ValidationWorkerDied, match="validation worker process died .* of _exit") as info:
        run_validation(os._exit, 3)
    assert isinstance(info.value, RuntimeError)
    assert run_validation(abs, -2) == 2  # a fresh worker after a dead one
