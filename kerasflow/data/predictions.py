"""Batch prediction: input rows in, the same rows with predictions out.

This module deliberately imports neither Prefect, MLflow nor TensorFlow.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from kerasflow.data.expectations.suites import columns_of
from kerasflow.errors import BadInputError
from kerasflow.features.tabular import FeatureError, InputRowsError, check_numeric_rows
from kerasflow.serving.rows import Admitted, admit_rows, filled_columns, taken_columns

PREDICTION_COLUMNS = ("prediction",)
PROBA_PREFIX = "proba_"
NUMERIC_TYPES = ("double", "float", "long", "integer")
OUTPUT_DIR_ENV = "KERASFLOW_OUTPUT_DIR"
_TABLE_COLUMN_RULES = ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list")
_NOT_NULL = "expect_column_values_to_not_be_null"


class ModelReferenceError(BadInputError):
    """A model URI whose registered name, alias or version does not exist."""

    label = "bad model reference"


def default_output_path(input_path: str | Path) -> Path:
    """Returns `<input stem>.predictions.csv` next to the input file.

    Args:
        input_path: The input CSV or Parquet file.

    Returns:
        The output path.
    """
    path = Path(input_path)
    return path.with_name(f"{path.stem}.predictions.csv")


def output_location(output_path: str | Path | None, input_path: str | Path) -> Path:
    """Returns where predictions are written.

    A relative path is taken from `KERASFLOW_OUTPUT_DIR` when it is set: the
    team deployments run each flow in a fresh clone of the code, and set it
    to the worker's own folder, so outputs outlive the clone.

    Args:
        output_path: The requested output, or None for `default_output_path(input_path)`.
        input_path: The input file.

    Returns:
        The output path.
    """
    target = Path(output_path) if output_path else default_output_path(input_path)
    base = os.environ.get(OUTPUT_DIR_ENV)
    return Path(base) / target if base and not target.is_absolute() else target


def check_columns(frame: pd.DataFrame, spec: Any, source: str = "the input",
                  warn: Callable[[str], Any] | None = None) -> Admitted:
    """Admits the rows by the prediction policy (`kerasflow.serving.rows`), refusing output columns too.

    Args:
        frame: The input rows.
        spec: The model's feature spec (`FeatureSpec` or `ImageSpec`).
        source: How to name the input in the message. Default `the input`.
        warn: Called with the warning that names ignored columns. Default:
            the `kerasflow.serving` logger.

    Returns:
        The `Admitted` rows (the columns the model takes) and the ignored columns.

    Raises:
        FeatureError: Columns are missing (all are listed), or the input
            already has prediction columns.
        InputRowsError: Missing values the model has no fill value for.
    """
    refuse_output_columns(frame, source)
    return admit_rows(frame, spec, source, warn)


def refuse_output_columns(frame: pd.DataFrame, source: str = "the input") -> None:
    """Refuses input columns named like the prediction columns, which the output would repeat.

    Raises:
        FeatureError: The input has `prediction` or `proba_<class>` columns.
    """
    clashing = [c for c in frame.columns if c in PREDICTION_COLUMNS or str(c).startswith(PROBA_PREFIX)]
    if clashing:
        raise FeatureError(f"{source} already has prediction columns {clashing}; "
                           "pass the raw feature rows, not an earlier output")


def prediction_suite(suite: dict[str, Any], spec: Any) -> dict[str, Any]:
    """The training suite as it applies to rows to predict, under the prediction policy.

    Kept: the expectations about the values of the columns the model takes
    (types, ranges, sets, ...). Left out: expectations about other columns
    (the label, ignored columns), about missing values of the columns the
    model fills (`kerasflow.serving.rows.filled_columns`), and the exact
    column set: a table-column expectation only requires the model's
    columns, in any order, extra ones allowed.

    Args:
        suite: The training run's suite (`reference/suite.json`).
        spec: The model's feature spec.

    Returns:
        A new suite dict; `suite` is not modified.
    """
    taken, filled = set(taken_columns(spec)), set(filled_columns(spec))
    kept = []
    for item in suite.get("expectations", []):
        kwargs = dict(item.get("kwargs", {}))
        if item["type"] in _TABLE_COLUMN_RULES:
            listed = kwargs.pop("column_set", None) or kwargs.pop("column_list", None) or []
            kept.append({**item, "type": "expect_table_columns_to_match_set",
                         "kwargs": {**kwargs, "column_set": [c for c in listed if c in taken], "exact_match": False}})
            continue
        columns = set(columns_of(kwargs))
        if not columns <= taken or (item["type"] == _NOT_NULL and columns & filled):
            continue
        kept.append(copy.deepcopy(item))
    return {**suite, "expectations": kept}


def check_numeric_input(frame: pd.DataFrame, types: dict[str, str], source: str = "the input") -> None:
    """Refuses text, ±inf and float32-overflowing numbers in the model's numeric input columns.

    Missing values pass (the prediction policy decides them). The model refuses such
    rows too, but MLflow's schema check turns text into an error that dumps
    the rows; this names the file, the columns and the rows first.

    Args:
        frame: The input rows.
        types: The model's input columns and their signature types, e.g.
            `{"age": "double", "city": "string"}`.
        source: How to name the input in the message. Default `the input`.

    Raises:
        InputRowsError: Every bad column with its bad rows (a few with their
            values, and how many).
    """
    numeric = [c for c, kind in types.items() if kind in NUMERIC_TYPES and c in frame.columns]
    try:
        check_numeric_rows(frame, numeric)
    except InputRowsError as exc:
        raise exc.located(source) from None


def join_predictions(frame: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Appends prediction columns to the input rows.

    Args:
        frame: The input rows, in their original order.
        predictions: One row per input row: `prediction` and, for
            classifiers, `proba_<class>` columns.

    Returns:
        The input columns followed by the prediction columns.

    Raises:
        ValueError: The row counts differ.
    """
    if len(frame) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(frame)} input rows")
    return pd.concat([frame.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)


def write_rows(frame: pd.DataFrame, path: str | Path) -> Path:
    """Writes rows as CSV, or as Parquet for a `.parquet` path.

    Args:
        frame: The rows.
        path: Output file; its folder is created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def prediction_summary(predictions: pd.DataFrame) -> dict[str, object]:
    """Summarizes predictions: row count and, for labels, the count per predicted class.

    Args:
        predictions: The prediction columns.

    Returns:
        `{"rows": n, "classes": {label: count}}` or, for regression,
        `{"rows": n, "mean": ..., "min": ..., "max": ...}`.
    """
    values = predictions["prediction"]
    if pd.api.types.is_numeric_dtype(values) and not any(str(c).startswith(PROBA_PREFIX) for c in predictions):
        return {"rows": len(values), "mean": float(values.mean()), "min": float(values.min()),
                "max": float(values.max())}
    counts = values.astype(str).value_counts().sort_index()
    return {"rows": len(values), "classes": {str(k): int(v) for k, v in counts.items()}}
