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

The per-row rules (`unexpected_rows`), the running counts (`Tally`) and the
result built from them (`map_result`) are also the engine of
`kerasflow.data.expectations.vectorized`, which evaluates a whole frame as
one chunk and asks for Great Expectations' complete SUMMARY result.

This module imports neither Great Expectations, Prefect nor MLflow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PARTIAL = 20  # unexpected values kept per expectation, as Great Expectations' SUMMARY result keeps
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
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
class Tally:
    """The counts of one expectation so far: rows, missing values, unexpected values and the first few of them.

    Args:
        item: The expectation (`type`, `kwargs`, `meta`).
    """

    item: dict[str, Any]
    rows: int = 0
    missing: int = 0
    unexpected: int = 0
    partial: list[Any] = field(default_factory=list)  # the first `PARTIAL` unexpected values, as read
    index: list[Any] = field(default_factory=list)  # their row labels
    observed: Any = None  # a table-level or dtype-level observation
    failed: bool = False  # a dtype-level or table-level failure

    def add(self, series: pd.Series, nulls: np.ndarray, unexpected: np.ndarray) -> None:
        """Counts the next rows of a column.

        Args:
            series: The column's next rows.
            nulls: Which of them are missing.
            unexpected: Which of them the rule rejects (`unexpected_rows`).
        """
        self.rows += len(series)
        self.missing += int(nulls.sum())
        count = int(unexpected.sum())
        self.unexpected += count
        room = PARTIAL - len(self.partial)
        if count and room > 0:
            positions = np.flatnonzero(unexpected)[:room]
            self.partial.extend(series.iloc[positions].tolist())
            self.index.extend(series.index[positions].tolist())


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
        self.tallies = [Tally(item) for item in suite.get("expectations", [])]
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
            "meta": {"kerasflow": {"evaluation": "counted over every row by kerasflow.data.expectations.counts, "
                                                 "without Great Expectations"}}})


@dataclass(frozen=True)
class CountedResult:
    """A validation result in Great Expectations' JSON form."""

    payload: dict[str, Any]

    def to_json_dict(self) -> dict[str, Any]:
        """The result, as `ExpectationSuiteValidationResult.to_json_dict` gives it."""
        return self.payload


def _count(tally: Tally, chunk: pd.DataFrame) -> None:
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
    if kind == "expect_column_values_to_be_in_type_list":
        tally.add(series, nulls, _wrong_types(tally, series, nulls))
    else:
        tally.add(series, nulls, unexpected_rows(kind, kwargs, series, nulls))


def unexpected_rows(kind: str, kwargs: dict[str, Any], series: pd.Series, nulls: np.ndarray,
                    numbers: np.ndarray | None = None) -> np.ndarray:
    """Marks the rows a column-map rule rejects, as Great Expectations does.

    Args:
        kind: `expect_column_values_to_not_be_null`, `..._to_be_in_set` or
            `..._to_be_between`.
        kwargs: The expectation's arguments (`value_set`; `min_value`,
            `max_value`, `strict_min`, `strict_max`).
        series: The column's rows.
        nulls: Which of them are missing (only the null rule rejects those).
        numbers: For the range rule, the values to compare. Default: the
            values as float64, text (not a number) being outside.

    Returns:
        A boolean array, one entry per row.
    """
    if kind == NOT_NULL:
        return nulls
    if kind == IN_SET:
        return ~nulls & ~series.isin(kwargs.get("value_set") or []).to_numpy()
    if numbers is None:
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return ~nulls & _outside(numbers, kwargs)


def _outside(numbers: np.ndarray, kwargs: dict[str, Any]) -> np.ndarray:
    """Marks the values outside `[min_value, max_value]` (strict bounds excluded); NaN is outside."""
    bad = np.isnan(numbers)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    with np.errstate(invalid="ignore"):
        if low is not None:
            bad |= numbers <= low if kwargs.get("strict_min") else numbers < low
        if high is not None:
            bad |= numbers >= high if kwargs.get("strict_max") else numbers > high
    return bad


def _wrong_types(tally: Tally, series: pd.Series, nulls: np.ndarray) -> np.ndarray:
    """Judges a chunk's dtype, or marks the values of a Python type not in the list for text."""
    names = list(tally.item["kwargs"].get("type_list") or [])
    wrong = np.zeros(len(series), bool)
    if nulls.all():
        return wrong  # a chunk of missing values only: its dtype (float64) says nothing
    dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        allowed = tuple(t for name in names for t in _NATIVE.get(name.lower(), ()))
        kinds = series[~nulls].map(type)
        others = [k for k in kinds.unique() if not (allowed and issubclass(k, allowed))]
        wrong[~nulls] = kinds.isin(others).to_numpy()
    elif not {getattr(dtype, "name", str(dtype)), type(dtype).__name__} & set(names):
        tally.failed = True
        tally.observed = tally.observed or np.dtype(getattr(dtype, "numpy_dtype", dtype)).type.__name__
    return wrong


def _result(tally: Tally, present: list[str]) -> dict[str, Any]:
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
    return map_result(tally, config)


def map_result(tally: Tally, config: dict[str, Any], complete: bool = False) -> dict[str, Any]:
    """A column-map expectation's result from its counts, in Great Expectations' JSON form.

    `mostly` is taken over the non-null rows, over all rows for the null
    rule; a rule with no row to judge passes.

    Args:
        tally: The expectation's counts.
        config: The result's `expectation_config`.
        complete: Give Great Expectations' whole SUMMARY result, as
            `validate_large` does: the missing and percent fields, the
            examples' row labels, the examples counted and ranked as GX
            ranks them (each NaN apart; no counts for unsortable values).
            Default false: the short result `SuiteCounts` gives (an unexpected
            percent of 0 with no row to judge, examples counted in the order
            met).

    Returns:
        The result dict (`success`, `expectation_config`, `result`).
    """
    kwargs = tally.item.get("kwargs", {})
    null_rule = tally.item["type"] == NOT_NULL
    considered = tally.rows if null_rule else tally.rows - tally.missing
    mostly = 1.0 if kwargs.get("mostly") is None else kwargs["mostly"]
    success = considered == 0 or (considered - tally.unexpected) / considered >= mostly
    examples = [_plain(v) for v in tally.partial]
    if complete:
        result = _complete(tally, considered, examples, null_rule)
    else:
        counts = Counter(_hashable(v) for v in examples).most_common()
        result = {"element_count": tally.rows, "missing_count": None if null_rule else tally.missing,
                  "unexpected_count": tally.unexpected,
                  "unexpected_percent": 100.0 * tally.unexpected / considered if considered else 0.0,
                  "partial_unexpected_list": examples,
                  "partial_unexpected_counts": [{"value": v, "count": n} for v, n in counts]}
    return {"success": bool(success), "expectation_config": config, "result": result}


def _complete(tally: Tally, considered: int, examples: list[Any], null_rule: bool) -> dict[str, Any]:
    """Great Expectations' SUMMARY result fields, computed as GX computes them."""
    total, count = tally.rows, tally.unexpected
    result: dict[str, Any] = {"element_count": total, "unexpected_count": count,
                              "unexpected_percent": count / considered * 100 if considered else None,
                              "partial_unexpected_list": examples}
    if not null_rule:
        result.update(missing_count=tally.missing, missing_percent=tally.missing / total * 100 if total else None,
                      unexpected_percent_total=count / total * 100 if total else None,
                      unexpected_percent_nonmissing=result["unexpected_percent"])
    try:
        ranked = sorted(Counter(tally.partial).most_common(PARTIAL), key=lambda pair: (-pair[1], pair[0]))
        result["partial_unexpected_counts"] = [{"value": _plain(v), "count": c} for v, c in ranked]
    except TypeError:  # values that do not sort (GX then leaves the counts out too)
        pass
    result["partial_unexpected_index_list"] = [_plain(i) for i in tally.index]
    return result


def _plain(value: Any) -> Any:
    """A cell as a plain JSON value: NumPy scalars unwrapped, a missing one as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
