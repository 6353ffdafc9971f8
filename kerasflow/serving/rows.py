"""Which rows a model answers: one policy, the same for `kerasflow predict` and the scoring server.

`Predictor.predict` (what `mlflow models serve` and every pyfunc load run)
and the batch prediction flow (`kerasflow predict`) both admit rows here:

- **A column the model takes is missing**: the rows are refused, naming
  every missing column (`FeatureError`, HTTP 400 from the server, exit 2
  from `kerasflow predict`).
- **A column the model does not take** (an id, the label, a note): ignored,
  with a warning naming it (`kerasflow predict` shows it and tags the run
  `kerasflow.ignored_columns`; the scoring server logs MLflow's own
  warning, which names them the same way, as MLflow drops them before the
  model sees the rows). A column named like an output (`prediction`,
  `proba_<class>`) is refused by `kerasflow predict` alone, whose output
  would repeat it.
- **A missing value** (NaN, None, an empty cell): answered as training did
  it, when the training pipeline had a rule for it: a numeric feature gets
  its training fill value (`preprocessing.impute`: mean, median or zero of the
  training rows), a categorical one its missing level, a text one the empty
  text. Where there is no such rule (a numeric feature without a fill
  value, a pixel of an image) the rows are refused, naming column and rows.
- **Text, ±inf or numbers beyond float32's range in a numeric column**:
  refused, naming columns and rows (`InputRowsError`).

`kerasflow predict` also checks the rows against the training run's
expectation suite, but only its expectations about the values of the
columns the model takes: those about missing values of the columns this
policy fills, and about the exact column set, are left out
(`kerasflow.data.predictions.prediction_suite`), so the suite never
refuses what the server answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from kerasflow.features.images import IMAGE_COLUMN, ImageSpec
from kerasflow.features.tabular import FeatureError, FeatureSpec, InputRowsError, row_label

LOGGER = logging.getLogger("kerasflow.serving")
PATH_COLUMN = "path"  # an image-folder model also reads image files by path
ROWS_NAMED = 5


@dataclass(frozen=True)
class Admitted:
    """Rows a model will answer.

    Args:
        rows: The rows with the columns the model takes, in their order in the input.
        ignored: The input's other columns, which were dropped.
    """

    rows: pd.DataFrame
    ignored: list[str] = field(default_factory=list)


def taken_columns(spec: Any) -> list[str]:
    """The raw columns a model reads, for its feature spec (`FeatureSpec` or `ImageSpec`)."""
    if isinstance(spec, ImageSpec) and spec.layout == "files":
        return [IMAGE_COLUMN, PATH_COLUMN]
    return list(spec.columns)


def filled_columns(spec: Any) -> list[str]:
    """The columns whose missing values the model fills as training did (see the module docstring)."""
    if not isinstance(spec, FeatureSpec):
        return []  # an image: a missing pixel or file is refused
    numeric = spec.numeric if len(spec.fill) == len(spec.numeric) else []
    return [*numeric, *spec.categorical, *spec.text_columns]


def ignored_message(ignored: list[str]) -> str:
    """The warning that names the input columns the model does not take."""
    return f"ignored {len(ignored)} column(s) the model does not take: {ignored}"


def admit_rows(frame: pd.DataFrame, spec: Any, where: str = "the input",
               warn: Callable[[str], Any] | None = None) -> Admitted:
    """Applies the policy of the module docstring to rows before they are predicted.

    Args:
        frame: The raw rows.
        spec: The model's fitted feature spec.
        where: How to name the input in messages. Default `the input`.
        warn: Called with the warning about ignored columns, if any.
            Default: `LOGGER.warning`.

    Returns:
        The `Admitted` rows and the ignored column names.

    Raises:
        FeatureError: Columns the model takes are missing (all named).
        InputRowsError: Missing values in numeric columns the model has no
            fill value for (columns and rows named).
    """
    taken = taken_columns(spec)
    if isinstance(spec, FeatureSpec):  # an image spec names its own missing pixel columns, or image/path
        missing = [c for c in taken if c not in frame.columns]
        if missing:
            raise FeatureError(f"{where} is missing columns {missing}; the model expects {taken}")
    ignored = [str(c) for c in frame.columns if c not in taken]
    if ignored:
        (warn or LOGGER.warning)(ignored_message(ignored))
    rows = frame.loc[:, [c for c in frame.columns if c in taken]]
    if isinstance(spec, FeatureSpec):
        _refuse_unfilled(rows, [c for c in spec.numeric if c not in filled_columns(spec)], where)
    return Admitted(rows, ignored)


def _refuse_unfilled(rows: pd.DataFrame, columns: list[str], where: str) -> None:
    """Refuses missing values in columns the model has no fill value for, naming columns and rows."""
    bad_columns, problems = [], []
    for column in columns:
        positions = np.flatnonzero(rows[column].isna().to_numpy())
        if positions.size:
            shown = ", ".join(row_label(int(p), rows.index[p]) for p in positions[:ROWS_NAMED])
            more = f" and {positions.size - ROWS_NAMED} more" if positions.size > ROWS_NAMED else ""
            bad_columns.append(column)
            problems.append(f"{column!r}: {positions.size} row(s) with a missing value, which the model has no "
                            f"fill value for: {shown}{more}")
    if problems:
        raise InputRowsError(bad_columns, problems, where)
