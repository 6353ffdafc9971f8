"""The one policy for rows to predict (`kerasflow.serving.rows`) and the suite as it applies to them, on tiny data."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.expectations.suites import expectation
from kerasflow.data.predictions import check_columns, prediction_suite
from kerasflow.features.images import ImageSpec
from kerasflow.features.tabular import FeatureError, FeatureSpec, InputRowsError
from kerasflow.serving.rows import admit_rows, filled_columns, taken_columns

SPEC = FeatureSpec(numeric=["a", "b"], categorical=["c"], fill=[1.0, 2.0], mean=[0.0, 0.0], variance=[1.0, 1.0],
                   vocabularies={"c": ["x", "y"]})


def _rows() -> pd.DataFrame:
    return pd.DataFrame({"id": [7, 8, 9], "a": [1.0, np.nan, 3.0], "c": ["x", None, "y"], "b": [0.5, 0.1, np.nan]})


def test_a_missing_column_is_refused_naming_it() -> None:
    with pytest.raises(FeatureError, match=r"the file f.csv is missing columns \['b'\]; the model expects"):
        admit_rows(_rows().drop(columns="b"), SPEC, "the file f.csv")


def test_extra_columns_are_ignored_with_a_warning_naming_them(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kerasflow.serving"):
        admitted = admit_rows(_rows().assign(note="n"), SPEC)
    assert admitted.ignored == ["id", "note"]
    assert list(admitted.rows.columns) == ["a", "c", "b"]
    assert "ignored 2 column(s) the model does not take: ['id', 'note']" in caplog.text
    said = []
    assert admit_rows(_rows(), SPEC, warn=said.append).ignored == ["id"] and said == [
        "ignored 1 column(s) the model does not take: ['id']"]


def test_missing_values_pass_where_training_fills_them_and_are_refused_elsewhere() -> None:
    admitted = admit_rows(_rows(), SPEC, warn=lambda _: None)
    assert admitted.rows["a"].isna().sum() == 1  # the model fills it with its training value
    assert filled_columns(SPEC) == ["a", "b", "c"]
    unfilled = FeatureSpec(numeric=["a", "b"], categorical=["c"])  # no fill values
    with pytest.raises(InputRowsError) as err:
        admit_rows(_rows(), unfilled, "the input", warn=lambda _: None)
    assert err.value.columns == ["a", "b"]
    assert "'a': 1 row(s) with a missing value, which the model has no fill value for: row 1" in str(err.value)
    assert "'b': 1 row(s) with a missing value" in str(err.value) and "row 2" in str(err.value)


def test_image_models_fill_nothing() -> None:
    pixels = ImageSpec(layout="pixels", height=1, width=2, channels=1, max_value=16.0, pixel_columns=["p0", "p1"])
    files = ImageSpec(layout="files", height=8, width=8, channels=3, max_value=255.0)
    assert filled_columns(pixels) == filled_columns(files) == []
    assert taken_columns(pixels) == ["p0", "p1"] and taken_columns(files) == ["image", "path"]


def test_batch_predict_also_refuses_output_columns() -> None:
    with pytest.raises(FeatureError, match=r"already has prediction columns \['prediction'\]"):
        check_columns(_rows().assign(prediction=1), SPEC)
    assert check_columns(_rows(), SPEC, warn=lambda _: None).ignored == ["id"]


def test_the_suite_applies_to_prediction_rows_under_the_policy() -> None:
    suite = {"name": "s", "meta": {}, "expectations": [
        expectation("expect_table_columns_to_match_set", column_set=["a", "b", "c", "target", "dropped"],
                    exact_match=True),
        expectation("expect_column_values_to_not_be_null", column="a"),
        expectation("expect_column_values_to_not_be_null", column="target"),
        expectation("expect_column_values_to_be_between", column="a", min_value=0, max_value=5),
        expectation("expect_column_values_to_be_in_set", column="c", value_set=["x", "y"]),
        expectation("expect_column_values_to_be_between", column="dropped", min_value=0, max_value=1),
        expectation("expect_table_row_count_to_be_between", min_value=1),
    ]}
    relaxed = prediction_suite(suite, SPEC)
    kinds = [(e["type"], e["kwargs"]) for e in relaxed["expectations"]]
    assert kinds == [
        ("expect_table_columns_to_match_set", {"column_set": ["a", "b", "c"], "exact_match": False}),
        ("expect_column_values_to_be_between", {"column": "a", "min_value": 0, "max_value": 5}),
        ("expect_column_values_to_be_in_set", {"column": "c", "value_set": ["x", "y"]}),
        ("expect_table_row_count_to_be_between", {"min_value": 1}),
    ]
    assert len(suite["expectations"]) == 7, "the training suite is left as it was"
    unfilled = FeatureSpec(numeric=["a", "b"], categorical=["c"])
    assert ("expect_column_values_to_not_be_null", {"column": "a"}) in [
        (e["type"], e["kwargs"]) for e in prediction_suite(suite, unfilled)["expectations"]]


def test_the_relaxed_suite_passes_extra_columns_and_filled_gaps_in_great_expectations() -> None:
    from kerasflow.data.expectations.run import validate_frame

    suite = {"name": "s", "meta": {}, "expectations": [
        expectation("expect_table_columns_to_match_set", column_set=["a", "b", "c", "target"], exact_match=True),
        expectation("expect_column_values_to_not_be_null", column="a"),
        expectation("expect_column_values_to_be_between", column="a", min_value=0, max_value=5),
    ]}
    rows = _rows()
    assert not validate_frame(rows, suite).success
    assert validate_frame(rows, prediction_suite(suite, SPEC)).success
    rows.loc[0, "a"] = 99.0
    report = validate_frame(rows, prediction_suite(suite, SPEC))
    assert not report.success and "expect_column_values_to_be_between" in report.summary()
