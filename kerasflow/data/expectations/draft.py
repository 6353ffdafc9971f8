"""Drafts an expectation suite from a known-good frame (`build_suite`, behind `kerasflow suite init`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.expectations.suites import expectation

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
    expectations = [expectation("expect_table_columns_to_match_set",
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
            "drafted_by": "kerasflow.data.expectations.draft.build_suite",
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
    items = [expectation("expect_column_to_exist", column=column)]
    if family is not None:
        items.append(expectation("expect_column_values_to_be_in_type_list",
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
        return [expectation("expect_column_values_to_not_be_null", column=column)]
    if present == 1.0:
        mostly = _complement(_rare_share(len(series)))
    else:
        mostly = math.floor(max(present - NULL_MARGIN, 0.0) * 10_000) / 10_000
    if mostly <= 0:
        return []
    return [expectation("expect_column_values_to_not_be_null", column=column, mostly=mostly)]


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
    return expectation("expect_column_values_to_be_in_set", **kwargs)


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
    item = expectation("expect_column_values_to_be_between", **kwargs)
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
