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

`kerasflow predict` reads its input in chunks: `RowTally` applies this
policy chunk by chunk and counts the refused rows over all of them, so the
refusal is the one a check of the whole file gives (`admit_rows`, then the
numeric check), rows numbered in the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from kerasflow.features.images import IMAGE_COLUMN, ImageSpec
from kerasflow.features.rowtext import rows_line, shown_rows
from kerasflow.features.tabular import (
    NON_NUMERIC,
    OUT_OF_RANGE,
    FeatureError,
    FeatureSpec,
    InputRowsError,
    bad_numbers,
    row_label,
)

LOGGER = logging.getLogger("kerasflow.serving")
PATH_COLUMN = "path"  # an image-folder model also reads image files by path
ROWS_NAMED = 5
_ROW = re.compile(r"\brow (\d+)(?: \(index ([^)]*)\))?")  # how `row_label` names a row
UNFILLED = "with a missing value, which the model has no fill value for"


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
    admitted, unfilled = _admit(frame, spec, where, warn)
    if unfilled:
        raise refusal(unfilled, where)
    return admitted


@dataclass
class BadRows:
    """The rows of one column that one rule of the policy refuses, counted over every chunk of an input.

    Args:
        column: The column.
        what: What is wrong with the rows, e.g. `with non-numeric text`.
        count: How many rows.
        shown: The first `ROWS_NAMED` rows, named (`row 3 = 'abc'`).
    """

    column: str
    what: str
    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, count: int, shown: list[str]) -> None:
        """Counts more rows, keeping the first ones named."""
        self.count += count
        self.shown.extend(shown[:ROWS_NAMED - len(self.shown)])

    def line(self) -> str:
        """The problem as one line of an `InputRowsError`."""
        if self.what != UNFILLED:
            return rows_line(self.column, self.what, self.count, self.shown)
        more = f" and {self.count - ROWS_NAMED} more" if self.count > ROWS_NAMED else ""
        return f"{self.column!r}: {self.count} row(s) {UNFILLED}: {', '.join(self.shown)}{more}"


def refusal(bad: list[BadRows], where: str) -> InputRowsError:
    """The `InputRowsError` refusing some bad rows (columns in the order of `bad`)."""
    return InputRowsError(list(dict.fromkeys(b.column for b in bad)), [b.line() for b in bad], where)


class RowTally:
    """Admits an input read in chunks, refusing it as `admit_rows` and the numeric check refuse it whole.

    Each chunk's bad rows are counted, not raised, so the refusal names the
    same columns, counts and first rows as one check of the whole input
    would, rows numbered from the input's first row: missing values
    without a fill value first (`admit_rows`), else text, ±inf and
    float32-overflowing numbers in the numeric columns
    (`kerasflow.features.tabular.check_numeric_rows`). Missing or
    prediction-named columns are refused at the first chunk.

    Args:
        spec: The model's feature spec.
        numeric: The numeric input columns (text in them is refused).
        where: How to name the input in messages.
    """

    def __init__(self, spec: Any, numeric: list[str], where: str = "the input") -> None:
        self.spec, self.numeric, self.where = spec, list(numeric), where
        self.rows = 0
        self.unfilled: dict[str, BadRows] = {}
        self.numbers: dict[tuple[str, str], BadRows] = {}

    def admit(self, chunk: pd.DataFrame, warn: Callable[[str], Any] | None = None) -> Admitted:
        """Admits the input's next rows, counting their bad rows; the ignored-column warning is given once.

        Args:
            chunk: The next rows, indexed as in the whole input.
            warn: Called with the warning about ignored columns.

        Returns:
            The `Admitted` rows of the chunk.

        Raises:
            FeatureError: Columns the model takes are missing (all named).
        """
        offset, self.rows = self.rows, self.rows + len(chunk)
        admitted, unfilled = _admit(chunk, self.spec, self.where, warn if offset == 0 else _quiet, offset)
        for bad in unfilled:
            self.unfilled.setdefault(bad.column, BadRows(bad.column, UNFILLED)).add(bad.count, bad.shown)
        columns = [c for c in self.numeric if c in chunk.columns]
        for column, what, mask in bad_numbers(chunk, columns)[1]:
            positions = np.flatnonzero(mask)
            self.numbers.setdefault((column, what), BadRows(column, what)).add(
                int(positions.size), shown_rows(chunk, column, positions, offset))
        return admitted

    @property
    def refused(self) -> bool:
        """Whether any row counted so far is refused."""
        return bool(self.unfilled or self.numbers)

    def check(self) -> None:
        """Raises the refusal of the rows counted so far, if any.

        Raises:
            InputRowsError: As `admit_rows`, else as the numeric check, over every chunk.
        """
        if self.unfilled:
            raise refusal(_ordered(self.unfilled.values(), getattr(self.spec, "numeric", [])), self.where)
        if self.numbers:
            raise refusal(_ordered(self.numbers.values(), self.numeric), self.where)


def _ordered(bad: Any, columns: list[str]) -> list[BadRows]:
    """Bad rows in the order one check of the whole input lists them: by column, then by problem."""
    order = {c: i for i, c in enumerate(columns)}
    problems = [UNFILLED, NON_NUMERIC, OUT_OF_RANGE]
    return sorted(bad, key=lambda b: (order.get(b.column, len(order)), problems.index(b.what)))


def shifted(error: InputRowsError, offset: int) -> InputRowsError:
    """The same refusal of a chunk's rows, with the rows numbered in the whole input.

    A chunk's rows are named by their position in the chunk (`row 3`, or
    `row 3 (index 50003)`); the chunk starts at row `offset` of the input.

    Args:
        error: The refusal of the chunk's rows.
        offset: The chunk's first row in the input.

    Returns:
        A new `InputRowsError` whose rows are named as in the input (`row 50003`).
    """
    def renumber(found: re.Match) -> str:
        position = int(found[1]) + offset
        return f"row {position}" if found[2] in (None, str(position)) else f"row {position} (index {found[2]})"

    problems = [_ROW.sub(renumber, p) for p in error.problems]
    return InputRowsError(error.columns, problems, error.where)


def _admit(frame: pd.DataFrame, spec: Any, where: str, warn: Callable[[str], Any] | None,
           offset: int = 0) -> tuple[Admitted, list[BadRows]]:
    """Admits rows, returning them and (not raising) their missing values the model has no fill value for."""
    taken = taken_columns(spec)
    if isinstance(spec, FeatureSpec):  # an image spec names its own missing pixel columns, or image/path
        missing = [c for c in taken if c not in frame.columns]
        if missing:
            raise FeatureError(f"{where} is missing columns {missing}; the model expects {taken}")
    ignored = [str(c) for c in frame.columns if c not in taken]
    if ignored:
        (warn or LOGGER.warning)(ignored_message(ignored))
    rows = frame.loc[:, [c for c in frame.columns if c in taken]]
    unfilled = []
    if isinstance(spec, FeatureSpec):
        unfilled = _unfilled(rows, [c for c in spec.numeric if c not in filled_columns(spec)], offset)
    return Admitted(rows, ignored), unfilled


def _unfilled(rows: pd.DataFrame, columns: list[str], offset: int) -> list[BadRows]:
    """The missing values in columns the model has no fill value for, by column."""
    found = []
    for column in columns:
        positions = np.flatnonzero(rows[column].isna().to_numpy())
        if positions.size:
            shown = [row_label(offset + int(p), rows.index[p]) for p in positions[:ROWS_NAMED]]
            found.append(BadRows(column, UNFILLED, int(positions.size), shown))
    return found


def _quiet(message: str) -> None:
    """Drops a warning already given for an earlier chunk."""
