"""An expectation suite checked by exact counts over rows read in chunks, without Great Expectations.

Batch prediction reads its input chunk by chunk and checks every row
against the training suite (`kerasflow.data.predictions.prediction_suite`)
as it goes: `SuiteCounts.add` counts, per expectation, the rows, the
missing values and the unexpected values of each chunk with vectorized
pandas operations, and `SuiteCounts.payload` turns the totals into the
result a Great Expectations run of the whole input would give, for
`kerasflow.data.expectations.report.validation_report`.

The expectations counted are those `kerasflow suite init` drafts, with
Great Expectations' rules (`mostly` over the non-null rows, over all rows
for `expect_column_values_to_not_be_null`; a column with no non-null value
passes):

- `expect_column_to_exist`, `expect_table_columns_to_match_set` (with
  `exact_match: false`, as the prediction suite has it);
- `expect_column_values_to_not_be_null`;
- `expect_column_values_to_be_in_set`;
- `expect_column_values_to_be_between` (`min_value`, `max_value`,
  `strict_min`, `strict_max`);
- `expect_column_values_to_be_in_type_list`: the chunk's dtype is in the
  list, or, for text (object or string dtype), every value's Python type
  (a chunk with no value is not judged: its dtype says nothing).

Any other expectation, or one with other arguments, is not counted here
(`split_suite`): the caller runs those with Great Expectations.

This module imports neither Great Expectations, Prefect nor MLflow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PARTIAL = 20  # unexpected values kept per expectation, as Great Expectations' SUMMARY result keeps
_ARGUMENTS = {
    "expect_column_to_exist": {"column"},
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"},
    "expect_column_values_to_be_in_type_list": {"column", "type_list", "mostly"},
}
_NATIVE = {"str": (str,), "string_types": (str,), "int": (int,), "long": (int,), "float": (float,),
           "bool": (bool,), "bytes": (bytes,), "none": (type(None),)}


def counted(item: dict[str, Any]) -> bool:
    """Whether an expectation is one `SuiteCounts` counts (see the module docstring)."""
    kwargs = item.get("kwargs", {})
    known = _ARGUMENTS.get(item["type"])
    if known is None or not set(kwargs) <= known:
        return False
    return item["type"] != "expect_table_columns_to_match_set" or not kwargs.get("exact_match", True)


def split_suite(suite: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Splits a suite into the expectations `SuiteCounts` counts and the others, as two suites of the same name."""
    items = suite.get("expectations", [])
    return ({**suite, "expectations": [i for i in items if counted(i)]},
            {**suite, "expectations": [i for i in items if not counted(i)]})


@dataclass
class _Tally:
    """The counts of one expectation so far."""

    item: dict[str, Any]
    rows: int = 0
    missing: int = 0
    unexpected: int = 0
    partial: list[Any] = field(default_factory=list)
    observed: Any = None  # a table-level or dtype-level observation
    failed: bool = False  # a dtype-level or table-level failure


class SuiteCounts:
    """Counts, chunk by chunk, what each expectation of a suite needs to be decided.

    Args:
        suite: A suite whose expectations are all counted (`split_suite`).

    Example:

    ```python
    counts = SuiteCounts(suite)
    for chunk in chunks:
        counts.add(chunk)
    report = validation_report(counts.result(), suite, counts.columns)
    ```
    """

    def __init__(self, suite: dict[str, Any]) -> None:
        self.suite = suite
        self.tallies = [_Tally(item) for item in suite.get("expectations", [])]
        self.columns: list[str] = []

    def add(self, chunk: pd.DataFrame) -> None:
        """Counts the next rows of the input."""
        if not self.columns:
            self.columns = [str(c) for c in chunk.columns]
        for tally in self.tallies:
            _count(tally, chunk)

    def result(self) -> "CountedResult":
        """The totals as a Great Expectations validation result (`to_json_dict()`)."""
        results = [_result(t, self.columns) for t in self.tallies]
        passed = sum(r["success"] for r in results)
        return CountedResult({
            "success": passed == len(results), "results": results,
            "statistics": {"evaluated_expectations": len(results), "successful_expectations": passed,
                           "unsuccessful_expectations": len(results) - passed,
                           "success_percent": 100.0 * passed / len(results) if results else 100.0},
            "suite_name": self.suite.get("name"),
            "meta": {"kerasflow": "counted over every row by kerasflow.data.expectations.counts, "
                                  "without Great Expectations"}})


@dataclass(frozen=True)
class CountedResult:
    """A validation result in Great Expectations' JSON form."""

    payload: dict[str, Any]

    def to_json_dict(self) -> dict[str, Any]:
        """The result, as `ExpectationSuiteValidationResult.to_json_dict` gives it."""
        return self.payload


def _count(tally: _Tally, chunk: pd.DataFrame) -> None:
    """Adds one chunk to an expectation's counts."""
    kind, kwargs = tally.item["type"], tally.item.get("kwargs", {})
    if kind == "expect_table_columns_to_match_set":
        return
    column = kwargs.get("column")
    if column not in chunk.columns:
        tally.failed = True
        return
    if kind == "expect_column_to_exist":
        return
    series = chunk[column]
    nulls = series.isna().to_numpy()
    tally.rows += len(series)
    tally.missing += int(nulls.sum())
    if kind == "expect_column_values_to_not_be_null":
        _note(tally, nulls, series)
        return
    values = series[~nulls]
    if kind == "expect_column_values_to_be_in_type_list":
        _count_types(tally, values, series.dtype)
    elif kind == "expect_column_values_to_be_in_set":
        _note(tally, ~values.isin(kwargs.get("value_set") or []).to_numpy(), values)
    else:
        _note(tally, _outside(values, kwargs), values)


def _note(tally: _Tally, bad: np.ndarray, values: pd.Series) -> None:
    """Counts the marked values, keeping the first few."""
    count = int(bad.sum())
    tally.unexpected += count
    if count and len(tally.partial) < PARTIAL:
        tally.partial.extend(_plain(v) for v in values[bad].iloc[:PARTIAL - len(tally.partial)])


def _outside(values: pd.Series, kwargs: dict[str, Any]) -> np.ndarray:
    """Marks the values outside `[min_value, max_value]` (strict bounds excluded); text is outside."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(numbers)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None:
        bad |= numbers <= low if kwargs.get("strict_min") else numbers < low
    if high is not None:
        bad |= numbers >= high if kwargs.get("strict_max") else numbers > high
    return bad


def _count_types(tally: _Tally, values: pd.Series, dtype: Any) -> None:
    """Judges a chunk's dtype, or each value's Python type for text."""
    names = list(tally.item["kwargs"].get("type_list") or [])
    if not len(values):
        return  # a chunk of missing values only: its dtype (float64) says nothing
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        allowed = tuple(t for name in names for t in _NATIVE.get(name.lower(), ()))
        kinds = values.map(type)
        wrong = [k for k in kinds.unique() if not (allowed and issubclass(k, allowed))]
        _note(tally, kinds.isin(wrong).to_numpy(), values)
        return
    if not {getattr(dtype, "name", str(dtype)), type(dtype).__name__} & set(names):
        tally.failed = True
        tally.observed = tally.observed or np.dtype(getattr(dtype, "numpy_dtype", dtype)).type.__name__


def _result(tally: _Tally, present: list[str]) -> dict[str, Any]:
    """One expectation's result, in Great Expectations' JSON form."""
    kind, kwargs = tally.item["type"], tally.item.get("kwargs", {})
    config = {"type": kind, "kwargs": kwargs, "meta": tally.item.get("meta", {})}
    if kind == "expect_table_columns_to_match_set":
        missing = [c for c in kwargs.get("column_set") or [] if c not in present]
        return {"success": not missing, "expectation_config": config,
                "result": {"observed_value": present,
                           "details": {"mismatched": {"missing": missing}} if missing else {}}}
    if tally.failed or kind == "expect_column_to_exist":
        observed = tally.observed if tally.observed is not None else kwargs.get("column") in present
        return {"success": not tally.failed, "expectation_config": config, "result": {"observed_value": observed}}
    considered = tally.rows if kind == "expect_column_values_to_not_be_null" else tally.rows - tally.missing
    mostly = kwargs.get("mostly", 1.0)
    success = considered == 0 or (considered - tally.unexpected) / considered >= mostly
    counts = Counter(map(_hashable, tally.partial)).most_common()
    return {"success": bool(success), "expectation_config": config, "result": {
        "element_count": tally.rows, "missing_count": tally.missing if kind != "expect_column_values_to_not_be_null"
        else None, "unexpected_count": tally.unexpected,
        "unexpected_percent": 100.0 * tally.unexpected / considered if considered else 0.0,
        "partial_unexpected_list": tally.partial,
        "partial_unexpected_counts": [{"value": v, "count": n} for v, n in counts]}}


def _plain(value: Any) -> Any:
    """A cell as a plain JSON value (None for a missing one)."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
