"""Batch scoring in chunks (`kerasflow.data.scoring`): the same output, refusals and counts as one pass over the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.chunks import read_chunks
from kerasflow.data.expectations.counts import SuiteCounts, split_suite
from kerasflow.data.expectations.report import validation_report
from kerasflow.data.expectations.run import DataValidationError
from kerasflow.data.expectations.suites import expectation
from kerasflow.data.scoring import ScoringInput, score_file
from kerasflow.features.tabular import FeatureSpec, InputRowsError, check_numeric_rows
from kerasflow.serving.rows import admit_rows

SPEC = FeatureSpec(numeric=["a", "b"], categorical=["c"], fill=[1.0, 2.0], mean=[0.0, 0.0], variance=[1.0, 1.0],
                   vocabularies={"c": ["x", "y"]})
TYPES = {"a": "double", "b": "double", "c": "string"}
SUITE = {"name": "rows", "expectations": [
    expectation("expect_column_values_to_be_between", column="a", min_value=-5, max_value=50, mostly=0.95),
    expectation("expect_column_values_to_be_in_set", column="c", value_set=["x", "y"]),
    expectation("expect_column_values_to_be_in_type_list", column="c", type_list=["str", "object", "StringDtype"]),
]}


def _model(rows: pd.DataFrame) -> pd.DataFrame:
    """A deterministic model on raw rows, refusing what the policy refuses, as the served predictor does."""
    frame = admit_rows(rows, SPEC).rows
    values = check_numeric_rows(frame, SPEC.numeric)
    score = np.nan_to_num(values, nan=1.0).sum(axis=1) + (frame["c"] == "y").to_numpy()
    return pd.DataFrame({"prediction": np.where(score > 20, "big", "small"), "proba_big": score / (1 + score)},
                        index=frame.index)


def _file(rows: int = 23) -> pd.DataFrame:
    frame = pd.DataFrame({"id": range(rows), "a": np.arange(rows, dtype=float), "b": np.linspace(0, 1, rows),
                          "c": [["x", "y", None][i % 3] for i in range(rows)]})
    frame.loc[[4, 13][:1 + (rows > 13)], "a"] = np.nan
    return frame


def _score(tmp_path: Path, frame: pd.DataFrame, chunk_rows: int, name: str, suffix: str = ".csv") -> Path:
    source = tmp_path / f"in{suffix}"
    frame.to_parquet(source) if suffix == ".parquet" else frame.to_csv(source, index=False)
    out = tmp_path / f"{name}{suffix}"
    score_file(ScoringInput(str(source), SPEC, TYPES, SUITE), _model, out, warn=lambda _: None, chunk_rows=chunk_rows)
    return out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunked_scoring_writes_what_one_pass_writes(tmp_path: Path, suffix: str) -> None:
    frame = _file()
    whole = _score(tmp_path, frame, 1000, "whole", suffix)
    chunked = _score(tmp_path, frame, 5, "chunked", suffix)
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    pd.testing.assert_frame_equal(read(chunked), read(whole))
    assert len(read(whole)) == 23 and list(read(whole).columns) == ["id", "a", "b", "c", "prediction", "proba_big"]
    assert not list(tmp_path.glob(".*")), "no temporary files left"


def test_a_bad_row_in_the_second_chunk_is_refused_with_its_row_number(tmp_path: Path) -> None:
    frame = _file().astype({"b": object})
    frame.loc[[7, 8], "b"] = ["abc", "1e39"]
    frame.loc[18, "a"] = -3e39  # in the 4th chunk
    errors = []
    for chunk_rows in (1000, 5):
        with pytest.raises(InputRowsError) as err:
            _score(tmp_path, frame, chunk_rows, f"out{chunk_rows}")
        errors.append(str(err.value))
        assert not (tmp_path / f"out{chunk_rows}.csv").exists()
    assert errors[0] == errors[1]
    assert "'b': 1 row with non-numeric text: row 7 = 'abc'" in errors[1]
    assert "'b': 1 row with infinite values or values beyond float32's range (|x| > 3.4e+38): row 8 = '1e39'" \
        in errors[1]
    assert "'a': 1 row with infinite values or values beyond float32's range (|x| > 3.4e+38): row 18 = -3e+39" \
        in errors[1].splitlines()[1]
    assert errors[1].startswith(f"{tmp_path / 'in.csv'} has values the model cannot take in columns 'a', 'b'")


def test_suite_counts_are_exact_over_every_chunk(tmp_path: Path) -> None:
    frame = _file(40)
    frame.loc[[3, 31, 36], "a"] = [99.0, 120.0, -7.0]  # 3 of 38 non-null values out of range: more than 5%
    frame.loc[33, "c"] = "z"
    with pytest.raises(DataValidationError) as err:
        _score(tmp_path, frame, 6, "out")
    report = err.value.report
    assert [v.column for v in report.violations] == ["a", "c"] and report.evaluated == 3
    assert "7.9% of rows unexpected (3 of 38 non-null rows; e.g. [99, 120, -7])" in report.summary()
    assert "(1 of 27 non-null rows; e.g. ['z'])" in report.summary()
    whole = SuiteCounts(SUITE)
    whole.add(frame)
    assert validation_report(whole.result(), SUITE, frame.columns).summary() == report.summary()


def test_only_the_drafted_expectation_kinds_are_counted() -> None:
    unusual = expectation("expect_column_mean_to_be_between", column="a", min_value=0, max_value=1)
    strict = expectation("expect_table_columns_to_match_set", column_set=["a"], exact_match=True)
    counted, others = split_suite({**SUITE, "expectations": [*SUITE["expectations"], unusual, strict]})
    assert counted["expectations"] == SUITE["expectations"] and others["expectations"] == [unusual, strict]


def test_chunks_are_numbered_as_the_whole_file(tmp_path: Path) -> None:
    frame = _file(12)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.set_index(pd.Index(range(100, 112))).to_parquet(tmp_path / "indexed.parquet")
    assert [c.index[0] for c in read_chunks(str(tmp_path / "rows.csv"), 5)] == [0, 5, 10]
    assert [c.index[0] for c in read_chunks(str(tmp_path / "indexed.parquet"), 5)] == [100, 105, 110]
