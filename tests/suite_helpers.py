"""Shared data and lookups of the expectation-suite tests (`test_validate.py`, `test_suite_drafting.py`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kerasflow.data.expectations.report import ValidationReport, Violation


def tiny_frame() -> pd.DataFrame:
    """Ten rows: a numeric column with a gap, a count, a category with a gap, free text and a binary label."""
    return pd.DataFrame(
        {
            "num": [0.0, 5.0, 10.0, np.nan, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0],
            "count": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "color": ["red", "blue", "red", None, "blue", "red", "red", "blue", "red", "red"],
            "text": [f"free text {i}" for i in range(10)],
            "label": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1],
        }
    )


def rule_kwargs(suite: dict, rule: str, column: str) -> dict:
    """The kwargs of the one expectation of type `rule` on `column` (asserts there is exactly one)."""
    matches = [e["kwargs"] for e in suite["expectations"]
               if e["type"] == rule and e["kwargs"].get("column") == column]  # fmt: skip
    assert len(matches) == 1, (rule, column, matches)
    return matches[0]


def rules_of(suite: dict, column: str) -> set[str]:
    """The expectation types on `column`."""
    return {e["type"] for e in suite["expectations"] if e["kwargs"].get("column") == column}


def only_violation(report: ValidationReport, column: str | None, rule: str) -> Violation:
    """The one violation of `rule` on `column` (asserts there is exactly one)."""
    found = [v for v in report.violations if v.column == column and v.rule == rule]
    assert len(found) == 1, report.summary()
    return found[0]
