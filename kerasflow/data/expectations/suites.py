"""Expectation suite files: plain JSON that `great_expectations.ExpectationSuite(**suite)` accepts.

A suite is `{"name": ..., "expectations": [{"type": ..., "kwargs": {...}, "meta": {...}}, ...]}`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kerasflow.errors import BadInputError

COLUMN_KEYS = ("column", "column_A", "column_B", "column_list")


class SuiteError(BadInputError):
    """An expectation suite that cannot be read or is malformed."""

    label = "bad expectation suite"


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
    check_suite(suite, f"file '{path}'")
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
    check_suite(suite, f"to be written to '{path}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2) + "\n")
    return path


def check_suite(suite: Any, where: str) -> None:
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


def columns_of(kwargs: dict[str, Any]) -> list[str]:
    """Lists the columns an expectation's kwargs refer to."""
    columns: list[str] = []
    for key in COLUMN_KEYS:
        value = kwargs.get(key)
        if isinstance(value, str):
            columns.append(value)
        elif isinstance(value, list) and key == "column_list":
            columns.extend(str(v) for v in value)
    return columns


def expectation(rule: str, **kwargs: Any) -> dict[str, Any]:
    """Builds one expectation entry of a suite dict."""
    return {"type": rule, "kwargs": kwargs, "meta": {}}
