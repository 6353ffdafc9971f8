"""Tests for kerasflow.data.expectations: validation, reports, suite files and errors (drafting: test_suite_drafting.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from suite_helpers import only_violation, rule_kwargs, rules_of, tiny_frame

from kerasflow.data.expectations.draft import build_suite
from kerasflow.data.expectations.report import ValidationReport, Violation
from kerasflow.data.expectations.run import DataValidationError, require_valid, validate_frame
from kerasflow.data.expectations.suites import SuiteError, load_suite
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
    return tiny_frame()


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
    assert rule_kwargs(suite, "expect_column_values_to_be_in_set", "score")["value_set"] == [
        "great", "other",
    ]  # fmt: skip
    assert "expect_column_values_to_be_in_set" not in rules_of(suite, "review")
    assert "expect_column_values_to_be_in_set" not in rules_of(suite, "product")
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
    v = only_violation(corrupted_report, "bill_length_mm", "expect_column_values_to_be_between")
    assert v.expected == "min 29.35, max 62.35"
    assert v.observed == "0.3% of rows unexpected (1 of 342 non-null rows; e.g. [1000])"
    assert v.unexpected_percent == pytest.approx(100 / 342)


def test_unknown_category(corrupted_report: ValidationReport) -> None:
    v = only_violation(corrupted_report, "island", "expect_column_values_to_be_in_set")
    assert v.expected == "one of ['Biscoe', 'Dream', 'Torgersen']"
    assert "'Atlantis'" in v.observed


def test_missing_column(corrupted_report: ValidationReport) -> None:
    table = only_violation(corrupted_report, None, "expect_table_columns_to_match_set")
    assert "missing ['year']" in table.observed
    exists = only_violation(corrupted_report, "year", "expect_column_to_exist")
    assert exists.observed == "column 'year' missing from the data"


def test_null_in_target(corrupted_report: ValidationReport) -> None:
    v = only_violation(corrupted_report, "species", "expect_column_values_to_not_be_null")
    assert v.expected == "no null values"
    assert v.observed == "0.3% of rows unexpected (1 of 344 rows; e.g. [None])"


def test_wrong_type(corrupted_report: ValidationReport) -> None:
    v = only_violation(corrupted_report, "body_mass_g", "expect_column_values_to_be_in_type_list")
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
