"""How a message names bad input rows: by position and index label, with their values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ROWS_SHOWN = 5


def row_label(position: int, index: Any) -> str:
    """Names a row by its position, and its index label if that differs, e.g. `row 3 (index 117)`."""
    return f"row {position}" if index == position else f"row {position} (index {show_value(index)})"


def show_value(value: Any) -> str:
    """Renders a cell for a message: text quoted, numbers short (`inf`, `1e+39`)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{float(value):g}" if isinstance(value, (float, np.floating)) else str(int(value))
    return repr(value)


def shown_rows(df: pd.DataFrame, column: str, positions: np.ndarray, offset: int = 0) -> list[str]:
    """The first `ROWS_SHOWN` of some rows of a column, each with its value, e.g. `row 3 = 'abc'`.

    Args:
        df: The rows.
        column: The column whose values are shown.
        positions: Positions of the rows in `df`.
        offset: Position of `df`'s first row in the whole input (a chunk's). Default 0.

    Returns:
        The labels.
    """
    return [f"{row_label(offset + int(p), df.index[p])} = {show_value(df[column].iloc[p])}"
            for p in positions[:ROWS_SHOWN]]


def rows_line(column: str, what: str, count: int, shown: list[str]) -> str:
    """One problem of an `InputRowsError`: a column's bad rows, their count and the first few, e.g.

    `'x': 2 rows with non-numeric text: row 1 = 'abc', row 4 = ''`.
    """
    more = f" and {count - ROWS_SHOWN} more" if count > ROWS_SHOWN else ""
    rows = "row" if count == 1 else "rows"
    return f"{column!r}: {count} {rows} {what}: {', '.join(shown[:ROWS_SHOWN])}{more}"
