"""The vectorized validation of large frames agrees with a full Great Expectations run (real GX, small frames)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.expectations.draft import build_suite
from kerasflow.data.expectations.run import validate_frame
from kerasflow.data.expectations.suites import expectation


def _reference(rows: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows).astype("float32"), "y": rng.normal(size=rows),
                         "k": rng.integers(0, 5, rows), "c": rng.choice(["a", "b", "c"], rows),
                         "label": rng.integers(0, 3, rows)})


def _planted(strings: str) -> tuple[pd.DataFrame, dict]:
    """A drafted suite plus a few rules it does not draft, and a frame breaking many of them."""
    frame = _reference()
    suite = build_suite(frame, "label", name="planted")
    suite["expectations"] += [
        expectation("expect_column_values_to_be_between", column="x", min_value=0.1, max_value=0.5, strict_min=True),
        expectation("expect_column_mean_to_be_between", column="y", min_value=-1, max_value=1),  # GX, full frame
        expectation("expect_column_values_to_be_in_type_list", column="c", type_list=["str"]),
        expectation("expect_column_values_to_not_be_null", column="absent"),
    ]
    bad = frame.copy()
    bad.loc[5:300, "x"] = 99.0
    bad.loc[10:200, "y"] = np.nan
    bad.loc[3:80, "c"] = "zz"
    bad.loc[[1, 2], "label"] = 7
    bad["k"] = bad["k"].astype("float64")  # a type violation
    if strings == "object":
        bad = bad.astype({"c": object})
        bad.loc[50, "c"] = 3  # a value of another Python type
    else:
        bad.loc[[60, 61], "c"] = None
    return bad, suite


def _by_config(report) -> dict[str, dict]:
    def key(result: dict) -> str:
        config = result["expectation_config"]
        kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
        return json.dumps([config["type"], kwargs], sort_keys=True, default=str)

    return {key(r): r for r in report.result["results"]}


@pytest.mark.parametrize("strings", ["object", "str"])
def test_vectorized_pass_agrees_with_a_full_gx_run(strings: str) -> None:
    bad, suite = _planted(strings)
    full = validate_frame(bad, suite, vectorize_from=None)
    fast = validate_frame(bad, suite, vectorize_from=0)
    assert not full.success and not fast.success
    assert [str(v) for v in fast.violations] == [str(v) for v in full.violations]
    assert fast.summary() == full.summary()
    full_results, fast_results = _by_config(full), _by_config(fast)
    assert full_results.keys() == fast_results.keys()
    for key, expected in full_results.items():
        got = fast_results[key]
        assert got["success"] == expected["success"], key
        assert got["result"] == expected["result"], key
    x_range = next(v for v in fast.violations if v.column == "x" and "in at least" in v.expected)
    assert "(296 of 1500 rows; e.g. [99])" in x_range.observed  # the exact count and example values
    nulls = next(r for r in fast.result["results"] if r["expectation_config"]["type"].endswith("not_be_null")
                 and r["expectation_config"]["kwargs"]["column"] == "y")
    assert nulls["result"]["unexpected_count"] == 191
    assert nulls["result"]["partial_unexpected_index_list"][:3] == [10, 11, 12]  # example rows


def test_every_result_says_how_it_was_evaluated() -> None:
    bad, suite = _planted("str")
    fast = validate_frame(bad, suite, vectorize_from=0)
    labels = {r["expectation_config"]["type"]: r["meta"]["kerasflow"] for r in fast.result["results"]}
    assert labels["expect_column_values_to_be_between"] == "exact on 1500 rows (vectorized pandas pass)"
    assert labels["expect_column_mean_to_be_between"] == "exact on 1500 rows (Great Expectations, full frame)"
    assert labels["expect_table_columns_to_match_set"].startswith("exact on 1500 rows (Great Expectations on the")
    assert "(exact on 1500 rows)" in fast.summary().splitlines()[0]
    assert "exact on 1500 rows (vectorized pandas pass)" in fast.html
    sampled = validate_frame(_reference(), build_suite(_reference(), "label", name="s"), of_rows=10_000)
    assert sampled.success and "(sampled on 1500 of 10000 rows)" in sampled.summary()
    assert {r["meta"]["kerasflow"] for r in sampled.result["results"]} == {
        "sampled on 1500 of 10000 rows (Great Expectations)"}


def test_nullable_and_categorical_columns_agree_with_a_full_gx_run() -> None:
    rows = 400
    frame = pd.DataFrame({"i": pd.array(np.arange(rows), dtype="Int64"),
                          "b": pd.array([True, False] * (rows // 2), dtype="boolean"),
                          "cat": pd.Categorical(["u", "v"] * (rows // 2)), "label": [0, 1] * (rows // 2)})
    suite = build_suite(frame, "label", name="nullable", out_of_range=0, unseen_categories=0)
    for item in suite["expectations"]:
        item["kwargs"].pop("mostly", None)
    bad = frame.copy()
    bad.loc[300:310, "i"] = pd.NA  # the whole column then reads as float64 in GX, the witness rows too
    bad.loc[3, "i"] = 10**6
    bad.loc[5, "b"] = pd.NA
    bad["cat"] = bad["cat"].cat.add_categories(["w"])
    bad.loc[7:9, "cat"] = "w"
    full = validate_frame(bad, suite, vectorize_from=None)
    fast = validate_frame(bad, suite, vectorize_from=0)
    assert fast.summary() == full.summary() and len(full.violations) == 4
    assert {k: (r["success"], r["result"]) for k, r in _by_config(fast).items()} == {
        k: (r["success"], r["result"]) for k, r in _by_config(full).items()}
