"""Validate DataFrames against Great Expectations suites.

Suites are stored as plain JSON (`{"name": ..., "expectations": [...]}`), the
format `great_expectations.ExpectationSuite(**suite)` accepts. `build_suite`
drafts one from a known-good frame; `validate_frame` runs one on a frame with
an ephemeral GX context and returns a `ValidationReport` listing every
violated expectation in plain words, plus the GX result and Data Docs HTML.

Great Expectations is imported lazily (it takes seconds), so importing this
module stays cheap. This module deliberately imports neither Prefect, MLflow
nor TensorFlow.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.errors import BadInputError

NUMERIC_TYPES: tuple[str, ...] = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "Int64Dtype", "Float64Dtype",
)  # fmt: skip
"""Type names accepted for numeric columns (any width of int or float)."""
STRING_TYPES: tuple[str, ...] = ("str", "object", "StringDtype")
"""Type names accepted for string and categorical columns."""
BOOL_TYPES: tuple[str, ...] = ("bool", "BooleanDtype")
"""Type names accepted for boolean columns."""
DATETIME_TYPES: tuple[str, ...] = (
    "datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]",
)  # fmt: skip
"""Type names accepted for (timezone-naive) datetime columns."""
NULL_MARGIN = 0.05
"""Slack below the observed non-null fraction for `mostly` in drafted suites."""
RANGE_MARGIN = 0.10
"""Default fraction of the observed range added on each side of drafted numeric bounds."""
TAIL_RANKS = 10
"""Default share of rows tolerated outside drafted numeric bounds is `TAIL_RANKS / (n + 1)`
for a column with `n` reference values (see `build_suite`)."""
MAX_OUT_OF_RANGE = 0.05
"""Cap on that default share; it binds below about 200 reference values."""
UNSEEN_CATEGORIES = 0.01
"""Default share of rows a feature's value set tolerates outside the observed values."""

_TYPE_LISTS = {
    "numeric": NUMERIC_TYPES,
    "string": STRING_TYPES,
    "bool": BOOL_TYPES,
    "datetime": DATETIME_TYPES,
}

_TABLE_COLUMN_RULES = frozenset(
    {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"}
)
_COLUMN_KEYS = ("column", "column_A", "column_B", "column_list")
_HIDDEN_KWARGS = frozenset(
    {"batch_id", "column", "column_A", "column_B", "result_format", "include_config",
     "catch_exceptions", "mostly"}
)  # fmt: skip
_KWARG_LABELS = {
    "min_value": "min",
    "max_value": "max",
    "value_set": "one of",
    "type_list": "type in",
    "column_set": "columns",
    "column_list": "columns",
}
_RULE_DEFAULTS = {
    "expect_column_values_to_not_be_null": "no null values",
    "expect_column_to_exist": "column present",
}
_MAX_LISTED = 20
_MAX_EXAMPLES = 5


class SuiteError(BadInputError):
    """An expectation suite that cannot be read or is malformed."""

    label = "bad expectation suite"


@dataclass
class Violation:
    """One failed expectation, in plain words.

    Args:
        column: Column the expectation is about, or `None` for table-level rules.
        rule: Expectation type, e.g. `expect_column_values_to_be_between`.
        expected: What the expectation asked for, e.g. `min 0, max 2`.
        observed: What the data showed, e.g. `33.3% of rows unexpected (e.g. [3])`.
        unexpected_percent: Percentage of (non-null) rows violating the rule,
            when the rule is evaluated row by row; `None` otherwise.
    """

    column: str | None
    rule: str
    expected: str
    observed: str
    unexpected_percent: float | None = None

    def __str__(self) -> str:
        where = "table" if self.column is None else f"column '{self.column}'"
        return f"{where}: {self.rule} — expected {self.expected}; observed {self.observed}"


@dataclass
class ValidationReport:
    """Outcome of validating one frame against one suite.

    Args:
        success: Whether every expectation was met.
        suite_name: Name of the suite that was run.
        violations: Every failed expectation, table-level rules first, then
            in column order.
        evaluated: Number of expectations evaluated.
        result: The GX validation result as a JSON-serializable dict.
        html: The result rendered as a standalone Data Docs HTML page.
    """

    success: bool
    suite_name: str
    violations: list[Violation] = field(default_factory=list)
    evaluated: int = 0
    result: dict[str, Any] = field(default_factory=dict, repr=False)
    html: str = field(default="", repr=False)

    def summary(self) -> str:
        """Describes the outcome, one line per violated expectation.

        Returns:
            A multi-line string; the first line states the overall outcome.
        """
        if self.success:
            return f"Suite '{self.suite_name}' passed: all {self.evaluated} expectations met."
        head = (
            f"Suite '{self.suite_name}' failed: {len(self.violations)} of "
            f"{self.evaluated} expectations violated:"
        )
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])


class DataValidationError(BadInputError):
    """Data that violates its expectation suite.

    Args:
        report: The failing report; the message is its full summary.
    """

    label = "data failed its expectations"

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report

    def __reduce__(self) -> tuple[type[DataValidationError], tuple[ValidationReport]]:
        # Rebuild from the report when unpickled (e.g. by Prefect), not from the message.
        return (type(self), (self.report,))


def load_suite(path: str | Path) -> dict[str, Any]:
    """Reads an expectation suite from a JSON file.

    Args:
        path: Path of the suite JSON file.

    Returns:
        The suite as a dict with `name` and `expectations`.

    Raises:
        SuiteError: If the file is missing, is not valid JSON, or does not
            have the suite structure.
    """
    path = Path(path)
    try:
        suite = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise SuiteError(f"Expectation suite '{path}' does not exist.") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SuiteError(f"Cannot read expectation suite '{path}': {err}") from err
    except json.JSONDecodeError as err:
        raise SuiteError(f"Expectation suite '{path}' is not valid JSON: {err}") from err
    _check_suite(suite, f"file '{path}'")
    return suite


def write_suite(suite: dict[str, Any], path: str | Path) -> Path:
    """Writes an expectation suite as indented JSON, creating parent folders.

    Args:
        suite: Suite dict, as returned by `build_suite` or `load_suite`.
        path: Destination file.

    Returns:
        The path written.

    Raises:
        SuiteError: If `suite` does not have the suite structure.
    """
    path = Path(path)
    _check_suite(suite, f"to be written to '{path}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2) + "\n")
    return path


def validate_frame(
    df: pd.DataFrame, suite: dict[str, Any], *, skip_columns: Sequence[str] = ()
) -> ValidationReport:
    """Runs an expectation suite on a frame.

    Each call uses a fresh ephemeral GX context, so calls are independent.
    GX progress bars are disabled; nothing is printed.

    Args:
        df: Frame to validate. It is not modified.
        suite: Suite dict, as returned by `load_suite` or `build_suite`.
        skip_columns: Columns to leave out entirely, e.g. the target when
            validating prediction inputs: their expectations are dropped,
            they are removed from table-level column-set expectations, and
            they are ignored in `df` if present. Defaults to `()`.

    Returns:
        The validation report; check `success` or pass it to `require_valid`.

    Raises:
        SuiteError: If the suite is malformed or GX rejects an expectation.
    """
    _check_suite(suite, "argument of validate_frame")
    skip = [skip_columns] if isinstance(skip_columns, str) else list(skip_columns)
    suite = _without_columns(suite, skip)
    gx = _import_gx()
    gx_suite = _gx_suite(gx, suite)
    frame = _gx_frame(df.drop(columns=skip, errors="ignore"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        result = _batch(gx, frame).validate(gx_suite, result_format="SUMMARY")
        return _report(result, suite, frame.columns)


def validate_file(
    path: str | Path, suite: dict[str, Any], *, skip_columns: Sequence[str] = ()
) -> ValidationReport:
    """Runs an expectation suite on a Parquet file of raw rows.

    The picklable entry point for a validation worker process: it takes a
    path, not a frame, so nothing large crosses the process boundary.

    Args:
        path: Parquet file.
        suite: Suite dict, as returned by `load_suite`.
        skip_columns: Columns to leave out (see `validate_frame`). Defaults to `()`.

    Returns:
        The validation report.

    Raises:
        SuiteError: If the suite is malformed or GX rejects an expectation.
    """
    return validate_frame(pd.read_parquet(path), suite, skip_columns=skip_columns)


def require_valid(report: ValidationReport) -> ValidationReport:
    """Raises unless a validation report is successful.

    Args:
        report: Report from `validate_frame`.

    Returns:
        The same report, for chaining.

    Raises:
        DataValidationError: If `report.success` is false; the message lists
            every violation.
    """
    if not report.success:
        raise DataValidationError(report)
    return report


def build_suite(
    df: pd.DataFrame,
    target: str,
    *,
    name: str,
    categorical_max_levels: int = 20,
    range_margin: float = RANGE_MARGIN,
    out_of_range: float | None = None,
    unseen_categories: float = UNSEEN_CATEGORIES,
) -> dict[str, Any]:
    """Drafts an expectation suite from a known-good frame.

    The draft is meant to pass any other sample from the same source, of any
    size, and to fail on data that changed. It expects:

    - exactly the frame's columns, and a compatible type family per column;
    - nulls no more often than observed, with a 5-point margin; where none
      were observed, a feature may still be null on the share of rows
      `out_of_range` defaults to (below), and the target never;
    - numeric values within the observed min and max, each widened by
      `range_margin` times the observed range, in all but a small share of
      rows (`mostly`). Whatever the distribution, a new value falls beyond
      the min or max of `n` exchangeable reference values with probability
      at most `2 / (n + 1)`, and the share of the source beyond them exceeds
      `10 / (n + 1)` less than once in 1,000 draws of the reference; the
      widening only lowers that share. So `mostly` defaults to
      `1 - 10 / (n + 1)` (rounded down, and at least `0.95`): a larger
      sample can reach a little further into a long tail without failing,
      while a shifted or rescaled column still fails on most of its rows.
      A column whose observed values are all non-negative (or
      non-positive) never gets a bound of the other sign, integer-valued
      columns get integer bounds, and a constant column keeps its exact
      value as both bounds;
    - for string and boolean columns with at most `categorical_max_levels`
      distinct values, only the observed values in all but a share
      `unseen_categories` of rows (rare levels the reference missed). The
      target, when it has that few distinct values, gets its observed values
      with no tolerance: an unseen label is an error.

    The policy and its parameters are recorded under `meta["kerasflow"]`,
    and each range expectation's `meta` holds the observed min and max, so
    a reader can tighten the draft by hand (see `docs/validation.md`).

    Args:
        df: Reference frame, e.g. the training data.
        target: Name of the label column.
        name: Suite name.
        categorical_max_levels: Most distinct values a string column (or the
            target) may have to get a value-set expectation; free-text and
            identifier columns have more. Defaults to `20`.
        range_margin: Fraction of a numeric column's observed range added
            below its min and above its max. Defaults to `0.1`.
        out_of_range: Share of a numeric column's non-null rows allowed
            outside its bounds; `0` makes the bounds strict. Defaults to
            `None`: `10 / (n + 1)` for `n` reference values, at most `0.05`.
        unseen_categories: Share of a feature's non-null rows allowed to
            hold values the reference did not have; `0` makes value sets
            strict. Never applies to the target. Defaults to `0.01`.

    Returns:
        A JSON-serializable suite dict that `gx.ExpectationSuite(**suite)`
        accepts.

    Raises:
        ValueError: If the frame is empty, `target` is not one of its
            columns, the target has missing values, `range_margin` is
            negative, or a share is outside `[0, 1)`.
    """
    _check_reference(df, target)
    policy = _DraftPolicy(categorical_max_levels, range_margin, out_of_range, unseen_categories)
    policy.check()
    expectations = [_expectation("expect_table_columns_to_match_set",
                                 column_set=[str(c) for c in df.columns], exact_match=True)]
    for column in df.columns:
        expectations += _column_expectations(df[column], column == target, policy)
    return {"name": name, "expectations": expectations,
            "meta": {"kerasflow": policy.describe(len(df), str(target))}}


@dataclass(frozen=True)
class _DraftPolicy:
    """How `build_suite` widens what it observed; see its arguments."""

    max_levels: int
    range_margin: float
    out_of_range: float | None
    unseen_categories: float

    def check(self) -> None:
        """Raises `ValueError` for a negative margin or a share outside `[0, 1)`."""
        if not (isinstance(self.range_margin, (int, float)) and self.range_margin >= 0):
            raise ValueError(f"range_margin must be a number >= 0; got {self.range_margin!r}.")
        shares = {"out_of_range": self.out_of_range, "unseen_categories": self.unseen_categories}
        for label, share in shares.items():
            if share is not None and not (isinstance(share, (int, float)) and 0 <= share < 1):
                raise ValueError(f"{label} must be a share in [0, 1); got {share!r}.")

    def tail_share(self, n: int) -> float:
        """Share of rows tolerated outside the bounds of a column with `n` reference values."""
        return _rare_share(n) if self.out_of_range is None else float(self.out_of_range)

    def describe(self, rows: int, target: str) -> dict[str, Any]:
        """The policy as suite metadata, for readers of the suite file."""
        tail = ("auto: 10/(n+1) of non-null rows for n reference values, at most 0.05"
                if self.out_of_range is None else self.out_of_range)
        return {
            "drafted_by": "kerasflow.data.validate.build_suite",
            "built_from_rows": rows,
            "target": target,
            "range": (f"observed min/max widened by {self.range_margin:g} x the observed range; "
                      "no sign change for non-negative/non-positive columns; integer bounds "
                      "for integer-valued columns; exact bounds for constant columns"),
            "range_margin": self.range_margin,
            "out_of_range": tail,
            "value_sets": (f"observed values of string/bool columns with at most "
                           f"{self.max_levels} levels; the target strictly"),
            "unseen_categories": self.unseen_categories,
            "nulls": (f"no more than observed, with a {NULL_MARGIN:g} margin; where none were "
                      "observed, 10/(n+1) of the rows (at most 0.05) for features, none for the target"),
            "docs": "docs/validation.md",
        }


def _import_gx() -> Any:
    """Imports Great Expectations with analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX pins some module loggers to INFO at import; keep routine chatter out of run output.
    for name, known in logging.Logger.manager.loggerDict.items():
        if name.startswith("great_expectations") and isinstance(known, logging.Logger):
            known.setLevel(logging.WARNING)
    return gx


def warm_up_gx() -> None:
    """Imports Great Expectations and runs one tiny validation.

    GX loads most of its validation machinery lazily, at the first
    `validate`; doing that on a two-row frame ahead of time (in the
    validation worker, while the main process imports TensorFlow) takes it
    off the pipeline's critical path.
    """
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    suite = {"name": "warm-up", "meta": {}, "expectations": [
        _expectation("expect_table_columns_to_match_set", column_set=["x", "c"], exact_match=True),
        _expectation("expect_column_to_exist", column="x"),
        _expectation("expect_column_values_to_be_in_type_list", column="x", type_list=["float64"]),
        _expectation("expect_column_values_to_not_be_null", column="x"),
        _expectation("expect_column_values_to_be_between", column="x", min_value=0, max_value=3),
        _expectation("expect_column_values_to_be_in_set", column="c", value_set=["a", "b"]),
    ]}
    validate_frame(frame, suite)


def _check_suite(suite: Any, where: str) -> None:
    """Raises `SuiteError` unless `suite` has the suite structure; `where` names its origin."""
    if not isinstance(suite, dict) or not isinstance(suite.get("name"), str):
        raise SuiteError(
            f"Invalid expectation suite ({where}): expected an object with a string 'name'."
        )
    if not isinstance(suite.get("expectations"), list):
        raise SuiteError(f"Invalid expectation suite ({where}): expected an 'expectations' list.")
    for index, item in enumerate(suite["expectations"]):
        if not (isinstance(item, dict) and isinstance(item.get("type"), str)
                and isinstance(item.get("kwargs", {}), dict)):  # fmt: skip
            raise SuiteError(
                f"Invalid expectation suite ({where}): expectation #{index} must be an "
                f"object with a string 'type' and a 'kwargs' object; got {item!r}."
            )


def _without_columns(suite: dict[str, Any], skip: Iterable[str]) -> dict[str, Any]:
    """Returns a copy of a suite without expectations about the skipped columns."""
    skip = set(skip)
    suite = copy.deepcopy(suite)
    if not skip:
        return suite
    kept = []
    for item in suite["expectations"]:
        kwargs = item.get("kwargs", {})
        if item["type"] in _TABLE_COLUMN_RULES:
            key = "column_set" if "column_set" in kwargs else "column_list"
            kwargs[key] = [c for c in kwargs.get(key, []) if c not in skip]
        elif skip & set(_columns_of(kwargs)):
            continue
        kept.append(item)
    suite["expectations"] = kept
    return suite


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    """Lists the columns an expectation's kwargs refer to."""
    columns: list[str] = []
    for key in _COLUMN_KEYS:
        value = kwargs.get(key)
        if isinstance(value, str):
            columns.append(value)
        elif isinstance(value, list) and key == "column_list":
            columns.extend(str(v) for v in value)
    return columns


def _gx_suite(gx: Any, suite: dict[str, Any]) -> Any:
    """Builds the GX suite object, raising `SuiteError` for invalid expectations.

    `gx.ExpectationSuite(expectations=[dict, ...])` merely logs and drops
    invalid entries, so each one is converted (and checked) here first.
    """
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for index, item in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(**item).to_domain_obj())
        except Exception as err:  # GX raises many unrelated types (pydantic, GX, Type...).
            raise SuiteError(
                f"Invalid expectation #{index} ({item.get('type')}) in suite "
                f"'{suite['name']}': {err}"
            ) from err
    return gx.ExpectationSuite(
        name=suite["name"], expectations=expectations, meta=suite.get("meta")
    )


def _batch(gx: Any, df: pd.DataFrame) -> Any:
    """Wraps a frame in a GX batch on a fresh ephemeral context, without progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(
        globally=False, metric_calculations=False
    )
    token = uuid.uuid4().hex[:12]
    asset = context.data_sources.add_pandas(f"kerasflow_{token}").add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    return definition.get_batch(batch_parameters={"dataframe": df})


def _gx_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Converts dtypes that GX 1.x cannot type-check under pandas 3.

    GX compares a column's dtype against the type list by equality, and no
    type name equals pandas 3's default `str` dtype (`StringDtype` with NaN
    missing values), a categorical dtype, or masked nullable dtypes. String,
    categorical and nullable-boolean columns become `object` (GX then checks
    each value's Python type); nullable numbers become NumPy numbers.
    """
    frame = df.copy(deep=False)  # Copy-on-write: the caller's frame is untouched.
    for column, dtype in df.dtypes.items():
        series = df[column]
        if isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype, pd.BooleanDtype)):
            frame[column] = series.astype(object).where(series.notna(), None)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and _is_number(dtype):
            frame[column] = _numpy_numbers(series)
    return frame


def _is_number(dtype: Any) -> bool:
    """Whether a dtype holds numbers (booleans excluded)."""
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _numpy_numbers(series: pd.Series) -> pd.Series:
    """Casts a nullable numeric series to its NumPy dtype, or float64 if it has nulls."""
    if series.isna().any():
        return series.astype("float64")
    return series.astype(getattr(series.dtype, "numpy_dtype", "float64"))


def _report(result: Any, suite: dict[str, Any], present: Iterable[str]) -> ValidationReport:
    """Turns a GX validation result into a `ValidationReport`."""
    payload = result.to_json_dict()
    positions = _suite_positions(suite)
    failed = [r for r in payload["results"] if not r["success"]]
    violations = [_violation(r, frozenset(present)) for r in failed]
    violations.sort(key=lambda v: positions.get((v.column, v.rule), (len(positions), 0)))
    return ValidationReport(
        success=bool(payload["success"]),
        suite_name=suite["name"],
        violations=violations,
        evaluated=int(payload["statistics"]["evaluated_expectations"]),
        result=payload,
        html=render_data_docs(payload, suite["name"], frozenset(present)),
    )


_DOCS_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #1f2328; }
h1 { font-size: 1.4em; } .ok { color: #1a7f37; } .bad { color: #cf222e; }
table { border-collapse: collapse; width: 100%; margin-top: 1em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } tr.failed td { background: #ffebe9; } code { font-size: 0.95em; }
"""


def render_data_docs(payload: dict[str, Any], suite_name: str, present: frozenset[str] = frozenset()) -> str:
    """Renders a validation result as one self-contained HTML page (inline CSS, no scripts, no external assets).

    It opens offline in a browser and in MLflow's artifact viewer alike:
    the verdict, then one row per expectation with its column, rule,
    expected and observed values, failed rules first.

    Args:
        payload: The GX validation result as a JSON dict (`to_json_dict()`).
        suite_name: The suite's name.
        present: The data's columns (a missing column is named as such).

    Returns:
        The HTML page.
    """
    import html

    results = sorted(payload.get("results", []), key=lambda r: bool(r.get("success")))
    stats = payload.get("statistics", {})
    verdict = "passed" if payload.get("success") else "failed"
    rows = []
    for item in results:
        config = item["expectation_config"]
        kwargs = config.get("kwargs", {})
        if item.get("success"):
            observed = _observed_value(item.get("result") or {})
        else:
            observed = _violation(item, present).observed
        cells = [_label(kwargs) or "(table)", config["type"], _describe_expected(config["type"], kwargs), observed,
                 "passed" if item.get("success") else "FAILED"]
        css = "" if item.get("success") else ' class="failed"'
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    title = html.escape(f"Data Docs: suite {suite_name}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
        f"<style>{_DOCS_STYLE}</style></head><body>", f"<h1>{title}</h1>",
        f'<p class="{"ok" if verdict == "passed" else "bad"}"><strong>{verdict}</strong>: '
        f"{stats.get('successful_expectations', 0)} of {stats.get('evaluated_expectations', 0)} expectations met "
        f"({stats.get('unsuccessful_expectations', 0)} failed).</p>",
        "<table><thead><tr><th>column</th><th>rule</th><th>expected</th><th>observed</th><th>result</th></tr>"
        "</thead><tbody>", *rows, "</tbody></table></body></html>"])


def _observed_value(detail: dict[str, Any]) -> str:
    """What a passed expectation saw: its observed value, or the share of unexpected rows."""
    if detail.get("observed_value") is not None:
        return _fmt(detail["observed_value"])
    if detail.get("unexpected_percent") is not None:
        return f"{_fmt(detail['unexpected_percent'])}% of rows unexpected"
    return "as expected"


def _suite_positions(suite: dict[str, Any]) -> dict[tuple[str | None, str], tuple[int, int]]:
    """Ranks each (column, rule) pair: table-level rules first, then columns
    in order of first mention, then rules in suite order."""
    columns: dict[str, int] = {}
    positions: dict[tuple[str | None, str], tuple[int, int]] = {}
    for index, item in enumerate(suite["expectations"]):
        column = _label(item.get("kwargs", {}))
        rank = -1 if column is None else columns.setdefault(column, len(columns))
        positions.setdefault((column, item["type"]), (rank, index))
    return positions


def _label(kwargs: dict[str, Any]) -> str | None:
    """Names the column(s) of a column-level expectation; `None` for table-level ones."""
    return ", ".join(_columns_of({k: v for k, v in kwargs.items() if k != "column_list"})) or None


def _violation(item: dict[str, Any], present: frozenset[str]) -> Violation:
    """Describes one failed GX expectation result; `present` are the frame's columns."""
    config = item["expectation_config"]
    kwargs = config.get("kwargs", {})
    detail = item.get("result") or {}
    column = _label(kwargs)
    absent = [c for c in _columns_of(kwargs) if c not in present and column is not None]
    if absent:
        noun = "columns" if len(absent) > 1 else "column"
        observed = f"{noun} {_fmt(absent)[1:-1]} missing from the data"
    else:
        observed = _describe_observed(detail, item.get("exception_info"))
    return Violation(
        column=column,
        rule=config["type"],
        expected=_describe_expected(config["type"], kwargs),
        observed=observed,
        unexpected_percent=_as_float(detail.get("unexpected_percent")),
    )


def _describe_expected(rule: str, kwargs: dict[str, Any]) -> str:
    """Renders an expectation's parameters, e.g. `min 0, max 2`."""
    parts = [
        f"{_KWARG_LABELS.get(key, key)} {_fmt(value)}"
        for key, value in kwargs.items()
        if key not in _HIDDEN_KWARGS and value is not None
    ]
    if not parts:
        parts.append(_RULE_DEFAULTS.get(rule, "rule satisfied"))
    if kwargs.get("mostly") is not None:
        parts.append(f"in at least {_fmt(kwargs['mostly'] * 100)}% of rows")
    return ", ".join(parts)


def _describe_observed(detail: dict[str, Any], exception: Any) -> str:
    """Renders what a failed expectation saw in the data."""
    errors = _exception_messages(exception)
    if errors:
        return "error: " + "; ".join(errors)
    if detail.get("unexpected_percent") is not None:
        return _describe_unexpected(detail)
    if "observed_value" in detail:
        return _fmt(detail["observed_value"]) + _describe_mismatch(detail)
    return "expectation not met"


def _describe_unexpected(detail: dict[str, Any]) -> str:
    """Renders the share of unexpected rows, their count and a few example values.

    GX computes the percentage over non-null rows for rules that ignore nulls.
    """
    text = f"{detail['unexpected_percent']:.1f}% of rows unexpected"
    facts = [_unexpected_count(detail)] if detail.get("unexpected_count") is not None else []
    counts = detail.get("partial_unexpected_counts")
    examples = [c["value"] for c in counts] if counts else detail.get("partial_unexpected_list")
    if examples:
        facts.append(f"e.g. {_fmt(list(examples)[:_MAX_EXAMPLES])}")
    return f"{text} ({'; '.join(facts)})" if facts else text


def _unexpected_count(detail: dict[str, Any]) -> str:
    """Renders e.g. `1 of 342 non-null rows` or `2 of 344 rows`."""
    total, missing = detail.get("element_count"), detail.get("missing_count")
    if total is None:
        return f"{detail['unexpected_count']} rows"
    if missing:
        return f"{detail['unexpected_count']} of {total - missing} non-null rows"
    return f"{detail['unexpected_count']} of {total} rows"


def _describe_mismatch(detail: dict[str, Any]) -> str:
    """Renders the missing/unexpected columns of a column-set expectation."""
    mismatched = (detail.get("details") or {}).get("mismatched") or {}
    parts = [f"{key} {_fmt(value)}" for key, value in mismatched.items() if value]
    return f" ({', '.join(parts)})" if parts else ""


def _exception_messages(info: Any) -> list[str]:
    """Collects the distinct error messages of a GX `exception_info` field."""
    if not isinstance(info, dict):
        return []
    if "raised_exception" in info:
        message = str(info.get("exception_message") or "").removeprefix("Error: ")
        return [message] if info["raised_exception"] and message else []
    messages: list[str] = []
    for nested in info.values():
        for message in _exception_messages(nested):
            if message not in messages:
                messages.append(message)
    return messages


def _fmt(value: Any) -> str:
    """Formats a value compactly: short floats, truncated long lists."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_fmt(v) for v in value[:_MAX_LISTED])
        more = f", … (+{len(value) - _MAX_LISTED} more)" if len(value) > _MAX_LISTED else ""
        return f"[{shown}{more}]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _as_float(value: Any) -> float | None:
    """Converts a number to float, keeping `None`."""
    return None if value is None else float(value)


def _check_reference(df: pd.DataFrame, target: str) -> None:
    """Raises `ValueError` unless `df` can serve as a suite's reference frame."""
    if len(df) == 0:
        raise ValueError("Cannot build a suite from an empty frame.")
    if target not in df.columns:
        raise ValueError(
            f"Target column '{target}' is not in the frame; columns: {list(df.columns)}."
        )
    missing = int(df[target].isna().sum())
    if missing:
        raise ValueError(
            f"Target column '{target}' has {missing} missing value(s); "
            "a reference frame must be fully labelled."
        )


def _column_expectations(series: pd.Series, is_target: bool, policy: _DraftPolicy) -> list[dict]:
    """Drafts the expectations about one column."""
    column = str(series.name)
    family = _family(series)
    items = [_expectation("expect_column_to_exist", column=column)]
    if family is not None:
        items.append(_expectation("expect_column_values_to_be_in_type_list",
                                  column=column, type_list=list(_TYPE_LISTS[family])))
    items += _null_expectations(series, is_target)
    if _is_categorical(series, family, is_target, policy.max_levels):
        unseen = 0.0 if is_target else policy.unseen_categories
        items.append(_set_expectation(series, unseen))
    elif family == "numeric":
        items += _range_expectations(series, policy)
    return items


def _family(series: pd.Series) -> str | None:
    """Classifies a column as numeric, bool, string or datetime (or `None` if mixed)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return _family(pd.Series(dtype.categories))
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return "string"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    return None


def _null_expectations(series: pd.Series, is_target: bool) -> list[dict]:
    """Expects no more nulls than observed, with a margin.

    Where none were observed, a feature may still be null on a share
    `_rare_share(n)` of the rows (rare missing values the reference missed);
    the target never.
    """
    column = str(series.name)
    present = float(series.notna().mean())
    if is_target:
        return [_expectation("expect_column_values_to_not_be_null", column=column)]
    if present == 1.0:
        mostly = _complement(_rare_share(len(series)))
    else:
        mostly = math.floor(max(present - NULL_MARGIN, 0.0) * 10_000) / 10_000
    if mostly <= 0:
        return []
    return [_expectation("expect_column_values_to_not_be_null", column=column, mostly=mostly)]


def _is_categorical(
    series: pd.Series, family: str | None, is_target: bool, max_levels: int
) -> bool:
    """Whether a column gets a value-set expectation."""
    if family == "bool":
        return True
    if family != "string" and not is_target:
        return False
    return series.nunique(dropna=True) <= max_levels


def _value_set(series: pd.Series) -> list[Any]:
    """Sorted distinct non-null values as plain Python objects."""
    values = [_plain(v) for v in pd.unique(series.dropna())]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _set_expectation(series: pd.Series, unseen: float) -> dict[str, Any]:
    """Expects the observed values, in all but a share `unseen` of the non-null rows."""
    kwargs: dict[str, Any] = {"column": str(series.name), "value_set": _value_set(series)}
    if unseen > 0:
        kwargs["mostly"] = _complement(unseen)
    return _expectation("expect_column_values_to_be_in_set", **kwargs)


def _range_expectations(series: pd.Series, policy: _DraftPolicy) -> list[dict]:
    """Expects values within the widened observed range, in all but a small share of rows."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    integral = bool(np.all(finite == np.round(finite)))
    observed = (float(finite.min()), float(finite.max()))
    low, high = _widen(*observed, policy.range_margin, integral)
    kwargs: dict[str, Any] = {"column": str(series.name), "min_value": low, "max_value": high}
    tail = policy.tail_share(int(finite.size))
    if tail > 0:
        kwargs["mostly"] = _complement(tail)
    item = _expectation("expect_column_values_to_be_between", **kwargs)
    as_number = int if integral else float
    item["meta"] = {"observed_min": as_number(observed[0]), "observed_max": as_number(observed[1]),
                    "reference_values": int(finite.size)}
    return [item]


def _widen(low: float, high: float, margin: float, integral: bool) -> tuple[Any, Any]:
    """Widens an observed range by `margin` times its width on each side.

    Integer-valued data gets integer bounds (rounded outwards), other bounds
    are rounded to readable digits; a bound never crosses zero when the
    observed values did not.
    """
    spread = (high - low) * margin
    if integral:
        wide_low, wide_high = math.floor(low - spread), math.ceil(high + spread)
    elif spread > 0:
        digits = _readable_digits(spread)
        wide_low, wide_high = round(low - spread, digits), round(high + spread, digits)
    else:
        wide_low, wide_high = low, high
    if low >= 0:
        wide_low = max(wide_low, 0 if integral else 0.0)
    if high <= 0:
        wide_high = min(wide_high, 0 if integral else 0.0)
    return wide_low, wide_high


def _rare_share(n: int) -> float:
    """Share of rows allowed to show what `n` reference values never did: `10 / (n + 1)`,
    rounded up to two significant digits, at most `MAX_OUT_OF_RANGE`."""
    return min(_round_up(TAIL_RANKS / (n + 1)), MAX_OUT_OF_RANGE)


def _round_up(share: float) -> float:
    """Rounds a share up to two significant digits, e.g. `0.0049975` to `0.005`."""
    digits = 1 - math.floor(math.log10(share))
    return math.ceil(round(share * 10**digits, 9)) / 10**digits


def _complement(share: float) -> float:
    """`1 - share` as a readable `mostly` (e.g. `0.965`, not `0.9650000000000001`)."""
    return round(1.0 - share, 12)


def _readable_digits(margin: float) -> int:
    """Decimal places that keep 4 significant digits of a margin.

    Rounding a widened bound to them moves it by at most 0.05% of the margin,
    so it stays outside the observed range while reading cleanly (`29.35`,
    not `29.349999999999998`).
    """
    return 3 - math.floor(math.log10(margin))


def _plain(value: Any) -> Any:
    """Converts NumPy scalars to the equivalent Python objects for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _expectation(rule: str, **kwargs: Any) -> dict[str, Any]:
    """Builds one expectation entry of a suite dict."""
    return {"type": rule, "kwargs": kwargs, "meta": {}}
