"""Standardize and vectorize: statistics fitted on training rows only.

The fitted statistics become Keras preprocessing layers inside the exported
model (`FillMissing`, `Normalization` or `QuantileNormalization`,
`StringLookup` with one-hot output or an embedding, numeric embeddings; built
by `kerasflow.features.inputs`), so a logged model takes raw rows with their
original column names. Label encoding and the output specs are in
`kerasflow.features.labels`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.errors import BadInputError
from kerasflow.features.encodings import N_BINS, embedded_columns, fit_numeric_encoding, normalization
from kerasflow.features.images import ImageSpec
from kerasflow.features.rowtext import ROWS_SHOWN, row_label, rows_line, show_value, shown_rows  # noqa: F401 (re-exported)

NUMERIC_INPUT = "numeric"
MISSING_TOKEN = ""
ENCODED_FEATURES = "features"  # the layer whose output is the encoded tabular features
VECTORIZED_PREFIX = "vectorize_"  # the names of the text vectorization layers (no trained weights)
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMERIC_EMBEDDING = "preprocessing.numeric_embedding"  # its search-space name
NON_NUMERIC = "with non-numeric text"
OUT_OF_RANGE = f"with infinite values or values beyond float32's range (|x| > {FLOAT32_MAX:.3g})"


class FeatureError(BadInputError):
    """Feature or label columns that cannot be used as configured."""

    label = "bad features"


class InputRowsError(FeatureError):
    """Rows whose values a numeric feature column cannot take, named by column and row.

    Missing values (NaN, None, an empty cell) are not among them: the
    model's preprocessing fills them in.

    Args:
        columns: The columns with bad values, in input order (empty if
            none can be blamed).
        problems: One line per problem, naming its column and rows.
        where: The input the rows are in, e.g. a file. Default `the input`.
    """

    label = "bad input rows"

    def __init__(self, columns: list[str], problems: list[str], where: str = "the input") -> None:
        self.columns, self.problems, self.where = list(columns), list(problems), where
        noun = "column" if len(self.columns) == 1 else "columns"
        blamed = f"values the model cannot take in {noun} {', '.join(map(repr, self.columns))}" if self.columns \
            else "rows the model cannot take"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where} has {blamed} (rows counted from 0):\n{lines}")

    def located(self, where: str) -> "InputRowsError":
        """Returns the same error naming where the rows come from.

        Args:
            where: The input, e.g. `the file data/incoming.csv`.

        Returns:
            A new `InputRowsError` with the same columns and problems.
        """
        return InputRowsError(self.columns, self.problems, where)


@dataclass
class FeatureSpec:
    """Columns and training-split statistics of the model's inputs.

    Args:
        numeric: Numeric columns, fed together as one `numeric` input.
        categorical: Categorical columns, each its own string input.
        fill: Training fill value of each numeric column.
        mean: Training mean of each numeric column after filling.
        variance: Training variance of each numeric column after filling.
        vocabularies: Training levels of each categorical column.
        normalize: How numeric columns are normalized: `standard` (z-scores),
            `quantile` (through `quantiles` to a standard normal) or `none`;
            the booleans of older specs read as `standard` and `none`.
        text: Fitted text branches (`kerasflow.features.text.TextSpec` as dicts), each
            reading a raw text column fed as one string input.
        quantiles: Training quantiles of each numeric column (`normalize: quantile`).
        numeric_embedding: How the numeric columns enter the network: `none`,
            `periodic` or `piecewise_linear` (`kerasflow.features.inputs`).
        bins: Piecewise-linear bin edges of each numeric column, after
            imputation and normalization (fitted when a piecewise-linear
            embedding is configured or searched).
        embedded: Categorical columns embedded instead of one-hot encoded,
            with their embedding widths.
    """

    numeric: list[str]
    categorical: list[str]
    fill: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    variance: list[float] = field(default_factory=list)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    normalize: str = "standard"
    text: list[dict[str, Any]] = field(default_factory=list)
    quantiles: list[list[float]] = field(default_factory=list)
    numeric_embedding: str = "none"
    bins: list[list[float]] = field(default_factory=list)
    embedded: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.normalize = normalization(self.normalize)

    @property
    def text_columns(self) -> list[str]:
        """Raw text columns read by the text branches, each once."""
        return [c for c in dict.fromkeys(t["column"] for t in self.text) if c not in self.numeric + self.categorical]

    @property
    def columns(self) -> list[str]:
        """All raw feature columns, numeric first, text last."""
        return self.numeric + self.categorical + self.text_columns

    def save(self, path: str | Path) -> Path:
        """Writes the spec as JSON and returns the path."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSpec":
        """Reads a spec written by `save`; an image pipeline's spec loads as `kerasflow.features.images.ImageSpec`."""
        data = json.loads(Path(path).read_text())
        if data.get("kind") == "image":
            return ImageSpec(**data)
        return cls(**data)


def select_columns(
    df: pd.DataFrame,
    target: str,
    features: list[str] | None = None,
    categorical: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Splits the feature columns into numeric and categorical ones.

    Args:
        df: The raw frame.
        target: The label column, never a feature.
        features: Feature columns. Default: every column but the target.
        categorical: Categorical columns. Default: string, boolean and
            category-typed features.

    Returns:
        `(numeric, categorical)` column lists, in frame order.

    Raises:
        FeatureError: A named column is missing, or a column is neither
            numeric nor declared categorical.
    """
    names = features if features is not None else [c for c in df.columns if c != target]
    missing = [c for c in [target, *names, *(categorical or [])] if c not in df.columns]
    if missing:
        raise FeatureError(f"columns not in the data: {missing}; available: {list(df.columns)}")
    if target in names:
        raise FeatureError(f"target column {target!r} is also listed as a feature")
    cats = categorical if categorical is not None else [c for c in names if not is_numeric(df[c])]
    bad = [c for c in names if c not in cats and not is_numeric(df[c])]
    if bad:
        raise FeatureError(f"columns {bad} are not numeric; list them under data.categorical")
    return [c for c in names if c not in cats], [c for c in names if c in cats]


def fit_features(
    train: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    impute: str = "mean",
    normalize: bool | str = "standard",
    max_categories: int | None = None,
    numeric_embedding: str = "none",
    bins: bool | None = None,
    n_bins: int = N_BINS,
    categorical_embedding: Any = None,
    label: pd.Series | None = None,
    task: str = "classification",
) -> FeatureSpec:
    """Fits fill values, normalization statistics, bins and vocabularies on training rows.

    Args:
        train: Training rows only.
        numeric: Numeric columns.
        categorical: Categorical columns.
        impute: `mean` (default), `median` or `zero` for missing numbers.
        normalize: `standard` (default: z-scores), `quantile` or `none`
            (`true`/`false`: `standard`/`none`).
        max_categories: Keep the most frequent levels only. Default all.
        numeric_embedding: `none` (default), `periodic` or `piecewise_linear`.
        bins: Fit piecewise-linear bins. Default: when `numeric_embedding`
            is `piecewise_linear` (a search that may choose it asks too).
        n_bins: The largest number of piecewise-linear bins per column
            (`preprocessing.numeric_bins`). Default 48.
        categorical_embedding: The `preprocessing.categorical_embedding`
            section (`above`, `dim`), or None (default: one-hot everywhere).
        label: The training rows' labels: the bins follow a decision tree
            on each column and the label (`fit_target_bins`,
            `preprocessing.numeric_bin_edges: target`). Default None: quantile bins.
        task: `classification` (default) or `regression`, with `label`.

    Returns:
        The fitted `FeatureSpec`.

    Raises:
        FeatureError: A numeric column has no values in the training rows.
    """
    values = train[numeric].to_numpy(dtype="float64") if numeric else np.empty((len(train), 0))
    empty = [c for c, n in zip(numeric, np.isfinite(values).sum(axis=0)) if n == 0]
    if empty:
        raise FeatureError(f"numeric columns with no values in the training split: {empty}")
    fill = _fill_values(values, impute)
    filled = np.where(np.isnan(values), fill, values)
    normalize = normalization(normalize)
    mean, variance = filled.mean(axis=0), filled.var(axis=0)
    fit_bins = numeric_embedding == "piecewise_linear" if bins is None else bins
    fitted = fit_numeric_encoding(values, filled, mean, variance, normalize, fit_bins and bool(numeric), n_bins,
                                  None if label is None else label.to_numpy(), task)
    vocabularies = {c: _vocabulary(train[c], max_categories) for c in categorical}
    return FeatureSpec(
        numeric=list(numeric),
        categorical=list(categorical),
        fill=fill.tolist(),
        mean=mean.tolist(),
        variance=variance.tolist(),
        vocabularies=vocabularies,
        normalize=normalize,
        numeric_embedding=numeric_embedding,
        embedded=embedded_columns(vocabularies, categorical_embedding),
        **fitted,
    )


def frame_to_inputs(df: pd.DataFrame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Converts raw rows to the model's named input arrays.

    Args:
        df: Raw rows with (at least) the spec's columns.
        spec: The fitted feature spec.

    Returns:
        A dict with a float32 `numeric` matrix (NaN where missing) and one
        string column vector per categorical column (`cat_<column>`) and
        per text column (`text_<column>`, missing text as "").

    Raises:
        FeatureError: Columns are missing.
        InputRowsError: A numeric (or pixel) column has text, or values
            that are infinite or beyond float32's range; NaN is missing,
            not bad.
    """
    if not isinstance(spec, FeatureSpec):  # an image spec converts its own rows (kerasflow.features.images)
        if isinstance(spec, ImageSpec) and spec.layout == "pixels":
            check_numeric_rows(df, [c for c in spec.pixel_columns if c in df.columns])
        return spec.frame_to_inputs(df)
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise FeatureError(f"input is missing columns {missing}; the model expects {spec.columns}")
    inputs: dict[str, np.ndarray] = {}
    if spec.numeric:
        inputs[NUMERIC_INPUT] = _numeric_matrix(df, spec.numeric)
    for column in spec.categorical:
        inputs[input_name(column)] = category_tokens(df[column]).reshape(-1, 1)
    for column in spec.text_columns:
        text = df[column].astype(object).where(df[column].notna(), "")
        inputs[text_input_name(column)] = text.map(str).to_numpy(dtype=object).reshape(-1, 1)
    return inputs


def check_numeric_rows(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Checks that numeric columns hold numbers a float32 model input can take.

    A missing value (NaN, None) is fine: the model imputes it. Text that is
    not a number, ±inf and values beyond float32's range (|x| > 3.4e38,
    which become inf inside the model) are refused, because the model would
    answer them with NaN probabilities.

    Args:
        df: Raw rows.
        columns: The numeric columns to check, all in `df`.

    Returns:
        The values as a float64 matrix `(rows, columns)`, NaN where missing.

    Raises:
        InputRowsError: Every bad column, with its bad rows (a few with
            their values, and how many).
    """
    values, bad = bad_numbers(df, columns)
    bad_columns, problems = [], []
    for column, what, mask in bad:
        problems.append(_rows_problem(df, column, mask, what))
        if column not in bad_columns:
            bad_columns.append(column)
    if problems:
        raise InputRowsError(bad_columns, problems)
    return values


def bad_numbers(df: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[tuple[str, str, np.ndarray]]]:
    """Finds the cells of numeric columns that a float32 model input cannot take (see `check_numeric_rows`).

    Args:
        df: Raw rows.
        columns: The numeric columns to check, all in `df`.

    Returns:
        `(values, bad)`: the values as a float64 matrix `(rows, columns)`,
        NaN where missing or text; and, per column and problem, in column
        order (text before out-of-range values), `(column, what, mask)`
        where `mask` marks the rows and `what` describes them
        (`with non-numeric text`, ...). Problems without rows are left out.
    """
    values = np.empty((len(df), len(columns)), dtype="float64")
    bad = []
    for j, column in enumerate(columns):
        values[:, j], text = _column_numbers(df[column])
        overflow = ~np.isnan(values[:, j]) & ~(np.abs(values[:, j]) <= FLOAT32_MAX)
        for what, mask in ((NON_NUMERIC, text), (OUT_OF_RANGE, overflow)):
            if mask.any():
                bad.append((column, what, mask))
    return values, bad


def as_model_inputs(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Converts string columns to `tf.string` tensors, which Keras needs.

    Keras's NumPy adapter rejects object and unicode arrays; numeric arrays
    pass through unchanged.

    Args:
        inputs: Named arrays from `frame_to_inputs`.

    Returns:
        The same dict with string arrays as TensorFlow string tensors.
    """
    import tensorflow as tf

    return {k: tf.constant(v.astype(str)) if v.dtype.kind in "OUS" else v for k, v in inputs.items()}


def inference_batch_size(inputs: dict[str, Any], cap: int = 8192, elements: int = 2**20) -> int:
    """Returns the batch size for scoring or encoding `inputs`: large for table rows, small for images.

    Keras scores in batches of 32 by default, which makes scoring a big
    table Python-bound (a million rows: 30,000 steps). A batch holds up to
    `cap` rows and about `elements` input values (4 MB of float32), so an
    image model's activations stay bounded.

    Args:
        inputs: Named model inputs (arrays or tensors with rows first).
        cap: Most rows in a batch. Default 8192.
        elements: Most input values in a batch. Default 2**20.

    Returns:
        The batch size, at least 32.
    """
    per_row = sum(int(np.prod(v.shape[1:])) for v in inputs.values()) or 1
    return int(max(32, min(cap, elements // per_row)))


def input_name(column: str) -> str:
    """Returns the Keras input name of a categorical column."""
    return f"cat_{column}"


def text_input_name(column: str) -> str:
    """Returns the Keras input name of a raw text column."""
    return f"text_{column}"


def is_numeric(series: pd.Series) -> bool:
    """True for a numeric column that is not boolean."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _fill_values(values: np.ndarray, impute: str) -> np.ndarray:
    if impute == "zero" or values.shape[1] == 0:
        return np.zeros(values.shape[1])
    return np.nanmedian(values, axis=0) if impute == "median" else np.nanmean(values, axis=0)


def _vocabulary(series: pd.Series, max_categories: int | None) -> list[str]:
    counts = category_tokens(series).tolist()
    levels = pd.Series(counts).value_counts(sort=True)
    if max_categories:
        levels = levels.head(max_categories)
    return sorted(levels.index.tolist(), key=natural_key)


def category_tokens(series: pd.Series, missing: str = MISSING_TOKEN) -> np.ndarray:
    """Returns a categorical column's values as the strings the model's lookup sees.

    Whole floats lose their `.0` (`3.0` is `"3"`), so a code column read as
    float matches the same codes read as int. Each distinct value is
    converted once, so a million rows cost a factorization, not a million
    Python calls.

    Args:
        series: The column.
        missing: The token for a missing value. Default `""`.

    Returns:
        An object array of strings, one per row.
    """
    codes, uniques = pd.factorize(series)
    names = np.array([_token(value) for value in uniques] + [missing], dtype=object)
    return names[codes]  # a missing value's code is -1: the last name


def _token(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _numeric_matrix(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return check_numeric_rows(df, columns).astype("float32")


def _column_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Returns a column's values as float64 (NaN where missing or text) and the mask of its text cells."""
    if pd.api.types.is_numeric_dtype(series):  # booleans too
        return series.to_numpy(dtype="float64", na_value=np.nan), np.zeros(len(series), dtype=bool)
    parsed = [_parse_number(v) for v in series.to_numpy(dtype=object)]
    text = np.array([p is None for p in parsed], dtype=bool)
    return np.array([np.nan if p is None else p for p in parsed], dtype="float64"), text


def _parse_number(value: Any) -> float | None:
    """Returns a cell as a float (NaN if missing), or None if it is not a number."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer beyond float64
        return math.inf
    except (TypeError, ValueError):
        return None


def _rows_problem(df: pd.DataFrame, column: str, mask: np.ndarray, what: str) -> str | None:
    """Describes the rows of a column that `mask` marks: their count and the first few, with values."""
    positions = np.flatnonzero(mask)
    if not positions.size:
        return None
    return rows_line(column, what, int(positions.size), shown_rows(df, column, positions))


def natural_key(value: Any) -> tuple[int, Any]:
    text = str(value)
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
