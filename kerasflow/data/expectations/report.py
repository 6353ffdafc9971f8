"""Reports of a validation: every violated expectation in plain words, and a Data Docs HTML page."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kerasflow.data.expectations.suites import columns_of

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
        evaluated_on: On which rows, e.g. `exact on 1000000 rows` or
            `sampled on 50000 of 10000000 rows` (each result's
            `meta["kerasflow"]` says how it was evaluated); empty if unknown.
    """

    success: bool
    suite_name: str
    violations: list[Violation] = field(default_factory=list)
    evaluated: int = 0
    result: dict[str, Any] = field(default_factory=dict, repr=False)
    html: str = field(default="", repr=False)
    evaluated_on: str = ""

    def summary(self) -> str:
        """Describes the outcome, one line per violated expectation.

        Returns:
            A multi-line string; the first line states the overall outcome.
        """
        on = f" ({self.evaluated_on})" if self.evaluated_on else ""
        if self.success:
            return f"Suite '{self.suite_name}' passed: all {self.evaluated} expectations met{on}."
        head = (
            f"Suite '{self.suite_name}' failed: {len(self.violations)} of "
            f"{self.evaluated} expectations violated{on}:"
        )
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])


def validation_report(result: Any, suite: dict[str, Any], present: Iterable[str]) -> ValidationReport:
    """Turns a GX validation result (or its JSON dict) into a `ValidationReport`."""
    payload = result if isinstance(result, dict) else result.to_json_dict()
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
        evaluated_on=str(((payload.get("meta") or {}).get("kerasflow") or {}).get("label", "")),
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
                 "passed" if item.get("success") else "FAILED", (item.get("meta") or {}).get("kerasflow", "")]
        css = "" if item.get("success") else ' class="failed"'
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    title = html.escape(f"Data Docs: suite {suite_name}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
        f"<style>{_DOCS_STYLE}</style></head><body>", f"<h1>{title}</h1>",
        f'<p class="{"ok" if verdict == "passed" else "bad"}"><strong>{verdict}</strong>: '
        f"{stats.get('successful_expectations', 0)} of {stats.get('evaluated_expectations', 0)} expectations met "
        f"({stats.get('unsuccessful_expectations', 0)} failed).</p>",
        f"<p>{html.escape(str(((payload.get('meta') or {}).get('kerasflow') or {}).get('evaluation', '')))}</p>",
        "<table><thead><tr><th>column</th><th>rule</th><th>expected</th><th>observed</th><th>result</th>"
        "<th>evaluated</th></tr>"
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
    return ", ".join(columns_of({k: v for k, v in kwargs.items() if k != "column_list"})) or None


def _violation(item: dict[str, Any], present: frozenset[str]) -> Violation:
    """Describes one failed GX expectation result; `present` are the frame's columns."""
    config = item["expectation_config"]
    kwargs = config.get("kwargs", {})
    detail = item.get("result") or {}
    column = _label(kwargs)
    absent = [c for c in columns_of(kwargs) if c not in present and column is not None]
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
