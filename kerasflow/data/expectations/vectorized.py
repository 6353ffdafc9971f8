"""Exact validation of a large frame in one vectorized pass, with Great Expectations judging what only it can.

A full Great Expectations run over a large frame spends most of its time in
per-value Python calls (a `map` over every float32 value for each range
rule, every string for each type rule). Above `EXACT_ROWS` rows,
`validate_frame` (`kerasflow.data.expectations.run`) hands the suite to
`validate_large` instead, which sorts each expectation into one of three
ways of evaluating it, all exact on every row:

- **vectorized** (`expect_column_values_to_not_be_null`,
  `expect_column_values_to_be_between` on a numeric column,
  `expect_column_values_to_be_in_set`, `expect_column_to_exist`): the same
  pandas operation GX applies (`isnull`, `min <= column <= max`, `isin`,
  a look-up of the column name), once, over the whole column, through
  the engine chunked prediction counts with (`counts.unexpected_rows`,
  `counts.Tally`, `counts.map_result`), the whole frame being one chunk;
  the result has GX's shape (`element_count`, `unexpected_count`,
  `unexpected_percent`, the first 20 unexpected values, their counts and row
  indexes), so the report names the column, the exact count and the example
  rows as a GX run does;
- **GX on a witness frame** (`expect_table_columns_to_match_set`,
  `expect_column_values_to_be_in_type_list`, and any column rule about a
  missing column): these depend only on the columns, their dtypes and, for
  an `object` column, the Python types of its values. GX runs them on a few
  rows that keep every column's dtype and hold one value of each Python type
  found in each `object` column (type rules that only differ in their column,
  on columns of one dtype and the same value types, run once); a type GX
  rejects there is then counted over the whole column;
- **GX on the full frame**: every other expectation (other types, or
  arguments such as `row_condition` this module does not evaluate), so no
  result is weaker than a full GX run.

Each result's `meta["kerasflow"]` says how it was evaluated and on how
many rows (`exact on N rows`); `docs/validation.md` states the rule.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import numpy as np
import pandas as pd

from kerasflow.data.expectations.counts import BETWEEN as _BETWEEN
from kerasflow.data.expectations.counts import IN_SET as _IN_SET
from kerasflow.data.expectations.counts import NOT_NULL as _NOT_NULL
from kerasflow.data.expectations.counts import PARTIAL, Tally, map_result, unexpected_rows

EXACT_ROWS = 100_000
"""Frames with at least this many rows are validated by `validate_large`; smaller ones by a full GX run."""
_EXISTS = "expect_column_to_exist"
_TYPES = "expect_column_values_to_be_in_type_list"
_COLUMN_SET = "expect_table_columns_to_match_set"
_IGNORED = frozenset({"column", "mostly", "result_format", "catch_exceptions", "include_config", "meta",
                      "batch_id"})
_ALLOWED = {  # the arguments each vectorized or witness rule understands; any other sends it to GX on the full frame
    _NOT_NULL: frozenset(),
    _BETWEEN: frozenset({"min_value", "max_value", "strict_min", "strict_max"}),
    _IN_SET: frozenset({"value_set"}),
    _EXISTS: frozenset(),
    _TYPES: frozenset({"type_list"}),
    _COLUMN_SET: frozenset({"column_set", "exact_match"}),
}
_NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}

GxRun = Callable[[pd.DataFrame, list[dict[str, Any]]], list[dict[str, Any]]]
"""Runs expectations with GX on a frame and returns their results as JSON dicts, in the given order."""


def validate_large(frame: pd.DataFrame, expectations: list[dict[str, Any]], run_gx: GxRun,
                   convert: Callable[[pd.DataFrame], pd.DataFrame]) -> list[dict[str, Any]]:
    """Evaluates every expectation exactly on every row of a large frame; see the module docstring.

    Args:
        frame: The frame as read.
        expectations: The suite's expectations.
        run_gx: Runs a list of expectations with GX on a frame as GX sees
            it (see `GxRun`).
        convert: Turns a frame into the frame GX sees (run.py's `_gx_frame`);
            only the rows and columns GX or a rule needs are converted.

    Returns:
        One GX-shaped result dict per expectation, in suite order, each with
        `meta["kerasflow"]` naming how it was evaluated.
    """
    columns = _Columns(frame, convert)
    rows = len(frame)
    results: list[dict[str, Any] | None] = [None] * len(expectations)
    ways: dict[str, list[int]] = {"witness": [], "full": []}
    for index, item in enumerate(expectations):
        way = _way(columns, item)
        if way == "vectorized":
            results[index] = _labelled(_vectorized(columns, item), f"exact on {rows} rows (vectorized pandas pass)")
        else:
            ways[way].append(index)
    witness = _on_witness(columns, [expectations[i] for i in ways["witness"]], run_gx)
    full = run_gx(convert(frame), [expectations[i] for i in ways["full"]]) if ways["full"] else []
    for index, result in zip(ways["witness"], witness):
        results[index] = result
    for index, result in zip(ways["full"], full):
        results[index] = _labelled(result, f"exact on {rows} rows (Great Expectations, full frame)")
    return [r for r in results if r is not None]


def payload_of(results: list[dict[str, Any]], suite_name: str, rows: int) -> dict[str, Any]:
    """Wraps expectation results as a GX validation result dict (`success`, `results`, `statistics`, `meta`).

    Args:
        results: Result dicts, one per expectation.
        suite_name: The suite's name.
        rows: Rows validated.

    Returns:
        The payload `validation_report` reads.
    """
    passed = sum(bool(r["success"]) for r in results)
    total = len(results)
    return {
        "success": passed == total, "results": results, "suite_name": suite_name, "suite_parameters": {},
        "statistics": {"evaluated_expectations": total, "successful_expectations": passed,
                       "unsuccessful_expectations": total - passed,
                       "success_percent": passed / total * 100 if total else None},
        "meta": {"kerasflow": {"rows": rows, "label": f"exact on {rows} rows",
                               "evaluation": f"exact on {rows} rows: vectorized pandas pass where the expectation "
                               "allows, Great Expectations otherwise (docs/validation.md)"}},
    }


class _Columns:
    """The frame as read, with what several rules ask of a column computed once.

    Columns that GX would see converted (`convert`, run.py's `_gx_frame`:
    strings, categoricals and nullable booleans as `object`, nullable
    numbers as NumPy numbers) are converted one by one, only when a rule
    needs GX's values; a `StringDtype` column is answered from its own
    values, which hold the same strings and null positions.
    """

    def __init__(self, frame: pd.DataFrame, convert: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
        self.frame = frame
        self._convert = convert
        self._gx: dict[str, pd.Series] = {}
        self._null: dict[str, np.ndarray] = {}
        self._types: dict[str, dict[type, int]] = {}

    def gx(self, column: str) -> pd.Series:
        """The column as GX sees it."""
        if column not in self._gx:
            self._gx[column] = self._convert(self.frame[[column]])[column]
        return self._gx[column]

    def is_text(self, column: str) -> bool:
        """Whether the column is a pandas string column (only `str` values and nulls)."""
        return isinstance(self.frame[column].dtype, pd.StringDtype)

    def none_nulls(self, column: str) -> bool:
        """Whether GX sees the column's nulls as `None` (converted to `object`)."""
        return isinstance(self.frame[column].dtype, (pd.StringDtype, pd.CategoricalDtype, pd.BooleanDtype))

    def is_object(self, column: str) -> bool:
        """Whether GX sees the column as `object` (its type rules then check each value)."""
        return self.none_nulls(column) or pd.api.types.is_object_dtype(self.frame[column].dtype)

    def null(self, column: str) -> np.ndarray:
        """GX's null mask of a column (`isnull`; conversion keeps the null positions)."""
        if column not in self._null:
            self._null[column] = self.frame[column].isnull().to_numpy()
        return self._null[column]

    def is_strings(self, column: str) -> bool:
        """Whether every non-null value of an object column is a `str`."""
        return set(self.types(column)) <= {str}

    def types(self, column: str) -> dict[type, int]:
        """The Python types of an object column's non-null values, each with the position of its first value."""
        if column not in self._types:
            present = np.flatnonzero(~self.null(column))
            if self.is_text(column) or pd.api.types.infer_dtype(self.gx(column), skipna=True) == "string":
                self._types[column] = {str: int(present[0])} if present.size else {}
            else:
                kinds = pd.Series(self.gx(column).to_numpy()[present]).map(type).drop_duplicates()
                self._types[column] = {kind: int(present[first]) for first, kind in kinds.items()}
        return self._types[column]

    def gx_frame(self, positions: list[int] | None = None) -> pd.DataFrame:
        """The frame as GX sees it: all rows, or the rows at `positions`.

        A nullable number column's NumPy dtype depends on whether the whole
        column has nulls, so those columns are converted whole, then sliced.
        """
        if positions is None:
            return self._convert(self.frame)
        part = self._convert(self.frame.iloc[positions])
        for column, dtype in self.frame.dtypes.items():
            if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype) \
                    and not pd.api.types.is_bool_dtype(dtype):
                part[column] = self.gx(column).iloc[positions].to_numpy()
        return part

    def values(self, column: str) -> pd.Series:
        """The column's values for examples and comparisons: its own for a string column, GX's otherwise."""
        return self.frame[column] if self.is_text(column) else self.gx(column)


def _way(columns: _Columns, item: dict[str, Any]) -> str:
    """How an expectation is evaluated: `vectorized`, `witness` or `full` (GX on the full frame)."""
    rule, kwargs = item["type"], item.get("kwargs", {})
    column = kwargs.get("column")
    if rule not in _ALLOWED or not set(kwargs) <= _IGNORED | _ALLOWED[rule] or not _valid_mostly(kwargs.get("mostly")):
        return "full"
    if rule == _COLUMN_SET:
        return "witness"
    if not isinstance(column, str):
        return "full"
    if rule == _EXISTS:
        return "vectorized"
    if column not in columns.frame.columns or rule == _TYPES:
        return "witness"  # GX's answer about a missing column, or a dtype, does not depend on the rows
    if rule == _BETWEEN:
        return "vectorized" if _vectorizable_range(columns.gx(column), kwargs) else "full"
    if rule == _IN_SET:
        return "vectorized" if isinstance(kwargs.get("value_set"), list) else "full"
    return "vectorized"


def _valid_mostly(mostly: Any) -> bool:
    return mostly is None or (isinstance(mostly, (int, float)) and not isinstance(mostly, bool) and 0 <= mostly <= 1)


def _vectorizable_range(series: pd.Series, kwargs: dict[str, Any]) -> bool:
    """Whether GX's range rule on this column equals one vectorized comparison: numeric NumPy dtype, number bounds."""
    dtype = series.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    numbers = [b for b in (low, high) if b is not None]
    if not numbers or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in numbers):
        return False
    if not all(kwargs.get(k) is None or isinstance(kwargs[k], bool) for k in ("strict_min", "strict_max")):
        return False
    return low is None or high is None or low <= high


def _labelled(result: dict[str, Any], label: str) -> dict[str, Any]:
    result.setdefault("meta", {})["kerasflow"] = label
    return result


def _vectorized(columns: _Columns, item: dict[str, Any]) -> dict[str, Any]:
    """Evaluates one vectorizable rule over the whole column, in GX's result shape."""
    kwargs = item.get("kwargs", {})
    column = kwargs["column"]
    if item["type"] == _EXISTS:
        return {"success": column in columns.frame.columns, "expectation_config": _config(item), "result": {},
                "meta": {}, "exception_info": dict(_NO_EXCEPTION)}
    null = columns.null(column)
    if item["type"] == _NOT_NULL:
        return _map_result(item, columns.values(column), null, null, columns.none_nulls(column))
    if item["type"] == _BETWEEN:
        series = columns.gx(column)
        unexpected = unexpected_rows(_BETWEEN, kwargs, series, null, numbers=series.to_numpy())
    else:
        strings = all(isinstance(v, str) for v in kwargs["value_set"])
        series = columns.values(column) if strings else columns.gx(column)
        unexpected = unexpected_rows(_IN_SET, kwargs, series, null)
    return _map_result(item, series, unexpected, null)


def _map_result(item: dict[str, Any], series: pd.Series, unexpected: np.ndarray, null: np.ndarray,
                none_nulls: bool = False) -> dict[str, Any]:
    """A column-map rule's GX result (SUMMARY format), counted as one chunk by `counts.Tally`.

    `none_nulls` says GX sees that column's nulls as `None`.
    """
    tally = Tally(item)
    tally.add(series, null, unexpected)
    if none_nulls:
        tally.partial = [None if pd.isna(v) else v for v in tally.partial]
    return {**map_result(tally, _config(item), complete=True), "meta": {}, "exception_info": dict(_NO_EXCEPTION)}


def _config(item: dict[str, Any]) -> dict[str, Any]:
    """The result's `expectation_config`, with number bounds as floats (as GX reports them)."""
    kwargs = dict(item.get("kwargs", {}))
    if item["type"] == _BETWEEN:
        kwargs.update({k: float(kwargs[k]) for k in ("min_value", "max_value") if kwargs.get(k) is not None})
    return {"type": item["type"], "kwargs": kwargs, "meta": dict(item.get("meta") or {}),
            "severity": item.get("severity", "critical")}


# --- GX on a witness frame -------------------------------------------------------------------------------------


def _on_witness(columns: _Columns, items: list[dict[str, Any]], run_gx: GxRun) -> list[dict[str, Any]]:
    """Runs schema rules with GX on a few rows standing for the frame; rejected value types are counted on every row.

    Type rules that differ only in their column, on columns of one dtype
    whose values have the same Python types, run once. If the witness would
    need more than `PARTIAL` rows (GX would not list a value of each type),
    the type rules about `object` columns run with GX on the full frame.
    """
    frame, rows = columns.frame, len(columns.frame)
    typed = {c for c in frame.columns if columns.is_object(c) and any(
        item["type"] == _TYPES and item["kwargs"].get("column") == c for item in items)}
    positions = sorted({*([0] if rows else []), *(p for c in typed for p in columns.types(c).values())})
    results: list[dict[str, Any]] = [{}] * len(items)
    if len(positions) > PARTIAL:
        on_full = [i for i, item in enumerate(items) if item["type"] == _TYPES and item["kwargs"]["column"] in typed]
        for index, result in zip(on_full, run_gx(columns.gx_frame(), [items[i] for i in on_full])):
            results[index] = _labelled(result, f"exact on {rows} rows (Great Expectations, full frame)")
        typed, positions = set(), positions[:1]
    groups: dict[Any, list[int]] = {}
    for index, item in enumerate(items):
        if not results[index]:
            groups.setdefault(_group_key(columns, item, index), []).append(index)
    witness = columns.gx_frame(positions)
    shown = run_gx(witness, [items[members[0]] for members in groups.values()]) if groups else []
    label = f"exact on {rows} rows (Great Expectations on the columns and dtypes, value types counted on every row)"
    for members, representative in zip(groups.values(), shown):
        for index in members:
            result = _as_member(representative, items[index])
            column = items[index].get("kwargs", {}).get("column")
            if items[index]["type"] == _TYPES and column in typed:
                result = _type_counts(items[index], columns, column, result)
            results[index] = _labelled(result, label)
    return results


def _group_key(columns: _Columns, item: dict[str, Any], index: int) -> Any:
    """Type rules that GX answers alike share a key: same arguments but the column, same dtype and value types."""
    kwargs = item.get("kwargs", {})
    column = kwargs.get("column")
    if item["type"] != _TYPES or column not in columns.frame.columns:
        return ("alone", index)
    dtype = columns.frame[column].dtype
    types = frozenset(columns.types(column)) if columns.is_object(column) else frozenset()
    others = json.dumps({k: v for k, v in kwargs.items() if k != "column"}, sort_keys=True, default=str)
    return (str(dtype), types, others, json.dumps(item.get("meta") or {}, sort_keys=True, default=str))


def _as_member(shown: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """A group representative's GX result, told of another member's column."""
    result = copy.deepcopy(shown)
    config = result.get("expectation_config") or _config(item)
    if "column" in item.get("kwargs", {}):
        config["kwargs"]["column"] = item["kwargs"]["column"]
    result["expectation_config"] = config
    return result


def _type_counts(item: dict[str, Any], columns: _Columns, column: str, witness: dict[str, Any]) -> dict[str, Any]:
    """The type rule on an object column: the types GX rejected on the witness, counted on every row."""
    if witness.get("exception_info", {}).get("raised_exception"):
        return witness
    rejected = {type(v) for v in (witness.get("result") or {}).get("partial_unexpected_list") or []}
    series, null = columns.values(column), columns.null(column)
    if not rejected or (columns.is_strings(column) and str not in rejected):
        unexpected = np.zeros(len(series), bool)
    elif columns.is_strings(column):
        unexpected = ~null
    else:
        unexpected = series.map(lambda v: type(v) in rejected, na_action="ignore").fillna(False).to_numpy(bool) & ~null
    result = _map_result(item, series, unexpected, null, columns.none_nulls(column))
    result["expectation_config"] = witness.get("expectation_config", result["expectation_config"])
    return result
