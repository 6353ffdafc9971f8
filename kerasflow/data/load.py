"""Load raw tabular data: built-in example sets or CSV/Parquet files.

A *source* is either the name of a built-in data set (see `BUILTIN_SOURCES`),
a path to a `.csv` or `.parquet` file, or a glob pattern, in which case the
newest matching file is used (the "latest file in a drop folder" pattern).

Built-in sets come with their raw features and one label column: `target` for
the scikit-learn sets, `species` for `penguins`. Feature names are sanitized
to simple identifiers (`[A-Za-z0-9_]+`); files are returned exactly as read.

This module deliberately imports neither Prefect, MLflow nor TensorFlow.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from pathlib import Path

import pandas as pd

from kerasflow.errors import BadInputError

BUILTIN_SOURCES: tuple[str, ...] = (
    "digits",
    "breast_cancer",
    "wine",
    "iris",
    "diabetes",
    "penguins",
)
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")

_SKLEARN_LABEL = "target"
_PENGUINS_LABEL = "species"
_NAMED_CLASSES = frozenset({"iris", "wine", "breast_cancer"})
_GLOB_CHARS = frozenset("*?[")
_NON_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")


class DataLoadError(BadInputError):
    """A data source that cannot be resolved or read."""

    label = "bad data file"


def load_frame(source: str | os.PathLike[str], *, base_dir: Path | None = None) -> pd.DataFrame:
    """Loads a data source into a DataFrame.

    Args:
        source: A built-in name from `BUILTIN_SOURCES`, a path to a `.csv` or
            `.parquet` file, or a glob pattern (containing `*`, `?` or `[`)
            whose newest matching file (by modification time) is loaded.
            Built-in names take precedence over files of the same name.
        base_dir: Directory that relative paths and patterns are resolved
            against. Defaults to `None` (the current working directory).

    Returns:
        The raw frame. Built-in sets include their label column (`target`,
        or `species` for `penguins`).

    Raises:
        DataLoadError: If the file is missing, the pattern matches nothing,
            the extension is unsupported, the file cannot be parsed, it has
            no rows, or it has duplicate column names.
    """
    resolved = resolve_source(source, base_dir=base_dir)
    if resolved in BUILTIN_SOURCES:
        return _load_builtin(resolved)
    return _read_file(Path(resolved))


def resolve_source(source: str | os.PathLike[str], *, base_dir: Path | None = None) -> str:
    """Resolves a source to the built-in name or the concrete file it denotes.

    Args:
        source: A built-in name, a file path or a glob pattern; see
            `load_frame`.
        base_dir: Directory that relative paths and patterns are resolved
            against. Defaults to `None` (the current working directory).

    Returns:
        The built-in name unchanged, or the absolute path of the file that
        `load_frame` would read (the newest match for a glob pattern).

    Raises:
        DataLoadError: If the file is missing or not a regular file, the
            pattern matches no supported file, or the extension is
            unsupported.
    """
    text = os.fspath(source)
    if text in BUILTIN_SOURCES:
        return text
    path = _absolute(Path(text).expanduser(), base_dir)
    if _GLOB_CHARS & set(text):
        path = _newest_match(path)
    _check_file(path)
    return str(path)


def fingerprint_frame(df: pd.DataFrame) -> str:
    """Computes a content fingerprint of a frame, stable across runs.

    The digest covers the column names, their dtypes, the index and every
    value, so any change to data or schema changes the fingerprint.

    Args:
        df: Frame to fingerprint.

    Returns:
        Hex-encoded SHA-256 digest.
    """
    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name!s}\x1f{dtype!s}\x1e".encode())
    digest.update(f"rows={len(df)}\x1e".encode())
    row_hashes = pd.util.hash_pandas_object(df, index=True)
    digest.update(row_hashes.to_numpy().tobytes())
    return digest.hexdigest()


def _absolute(path: Path, base_dir: Path | None) -> Path:
    """Anchors a relative path at `base_dir` (or the working directory)."""
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir).expanduser() / path
    return path.absolute()


def _newest_match(pattern: Path) -> Path:
    """Returns the most recently modified supported file matching a pattern."""
    matches = [Path(p) for p in glob.glob(str(pattern), recursive=True)]
    files = [p for p in matches if p.is_file()]
    if not files:
        raise DataLoadError(f"No files match the pattern '{pattern}'.")
    supported = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
    if not supported:
        raise DataLoadError(
            f"The pattern '{pattern}' matches {len(files)} file(s) but none has a "
            f"supported extension ({', '.join(SUPPORTED_SUFFIXES)})."
        )
    return max(supported, key=lambda p: (p.stat().st_mtime_ns, str(p)))


def _check_file(path: Path) -> None:
    """Raises `DataLoadError` unless `path` is an existing supported file."""
    if not path.exists():
        raise DataLoadError(
            f"Data file '{path}' does not exist "
            f"(built-in sources are: {', '.join(BUILTIN_SOURCES)})."
        )
    if not path.is_file():
        raise DataLoadError(f"Data path '{path}' is not a regular file.")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataLoadError(
            f"Unsupported file type '{path.suffix or '(none)'}' for '{path}'; "
            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}."
        )


def _read_file(path: Path) -> pd.DataFrame:
    """Reads a CSV or Parquet file and checks it has unique columns and rows."""
    if path.stat().st_size == 0:
        raise DataLoadError(f"Data file '{path}' is empty.")
    reader = _read_csv if path.suffix.lower() == ".csv" else _read_parquet
    try:
        df = reader(path)
    except pd.errors.EmptyDataError as err:
        raise DataLoadError(f"Data file '{path}' is empty: {err}") from err
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataLoadError(f"Cannot parse data file '{path}': {err}") from err
    _check_columns(df.columns, path)
    if len(df) == 0:
        raise DataLoadError(f"Data file '{path}' has a header but no data rows.")
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    """Reads a CSV file, rejecting duplicate header names before pandas renames them."""
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    _check_columns(pd.Index(header.iloc[0].tolist()), path)
    return pd.read_csv(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    """Reads a Parquet file, rejecting duplicate column names in its schema."""
    import pyarrow.parquet as pq  # Deferred: only Parquet sources need it.

    _check_columns(pd.Index(pq.read_schema(path).names), path)
    return pd.read_parquet(path)


def _check_columns(columns: pd.Index, path: Path) -> None:
    """Raises `DataLoadError` if `columns` holds duplicate names."""
    duplicated = sorted({str(c) for c in columns[columns.duplicated()]})
    if duplicated:
        raise DataLoadError(f"Data file '{path}' has duplicate column names: {duplicated}.")


def _load_builtin(name: str) -> pd.DataFrame:
    """Loads a built-in data set with sanitized feature names."""
    if name == "penguins":
        return _load_penguins()
    return _load_sklearn(name)


def _load_sklearn(name: str) -> pd.DataFrame:
    """Loads a scikit-learn toy set as features plus a `target` column."""
    from sklearn import datasets  # Deferred: importing scikit-learn is slow.

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.rename(columns=_identifier)
    target = bunch.target
    if name in _NAMED_CLASSES:
        names = bunch.target_names[target.to_numpy()]
        target = pd.Series(names, index=frame.index, dtype="str")
    frame[_SKLEARN_LABEL] = target
    _check_identifiers(frame.columns, name)
    return frame


def _load_penguins() -> pd.DataFrame:
    """Loads the Palmer penguins set (bundled with `palmerpenguins`, no download)."""
    import palmerpenguins

    frame = palmerpenguins.load_penguins()
    return frame.rename(columns=_identifier)


def _identifier(name: object) -> str:
    """Turns a column label into a simple identifier, e.g. `mean radius` -> `mean_radius`."""
    return _NON_IDENTIFIER.sub("_", str(name)).strip("_")


def _check_identifiers(columns: pd.Index, name: str) -> None:
    """Guards against sanitized feature names that collide or vanish."""
    if columns.has_duplicates or "" in columns:
        raise DataLoadError(
            f"Built-in source '{name}' has ambiguous column names: {list(columns)}."
        )
