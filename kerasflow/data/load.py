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

import codecs
import contextlib
import csv
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

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
_OTHER_DELIMITERS = ";\t|"
_TAIL_BYTES = 65_536
# Tried in order on bytes that are not valid in the configured encoding; the first that decodes is suggested.
_LIKELY_ENCODINGS = ("utf-8", "cp1252", "latin-1")
# A file that starts with a byte-order mark says its own encoding (UTF-32 before UTF-16: its mark starts alike).
_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class DataLoadError(BadInputError):
    """A data source that cannot be resolved or read."""

    label = "bad data file"


@dataclass
class Table:
    """A data source as read, with what the reader noticed on the way.

    Args:
        frame: The rows.
        source: The built-in name or the absolute path of the file read.
        delimiter: The CSV delimiter used, `None` for other formats.
        sniffed: True when the delimiter was detected, not configured.
        truncated: `(line, fields)` when the last line of a CSV file has
            fewer fields than its header, else `None`.
    """

    frame: pd.DataFrame
    source: str
    delimiter: str | None = None
    sniffed: bool = False
    truncated: tuple[int, int] | None = None


def load_frame(source: str | os.PathLike[str], *, base_dir: Path | None = None, delimiter: str | None = None,
               encoding: str = "utf-8", decimal: str = ".") -> pd.DataFrame:
    """Loads a data source into a DataFrame.

    Args:
        source: A built-in name from `BUILTIN_SOURCES`, a path to a `.csv` or
            `.parquet` file, or a glob pattern (containing `*`, `?` or `[`)
            whose newest matching file (by modification time) is loaded.
            Built-in names take precedence over files of the same name.
        base_dir: Directory that relative paths and patterns are resolved
            against. Defaults to `None` (the current working directory).
        delimiter: CSV field delimiter. Default `None`: a comma, or the
            `;`, tab or `|` a file evidently uses (see `read_table`).
        encoding: Text encoding of CSV files. Default `utf-8`.
        decimal: The decimal mark of numbers in CSV files, `.` (default) or `,`.

    Returns:
        The raw frame. Built-in sets include their label column (`target`,
        or `species` for `penguins`).

    Raises:
        DataLoadError: If the file is missing, the pattern matches nothing,
            the extension is unsupported, the file cannot be decoded or
            parsed, it has no rows, or it has duplicate column names.
    """
    return read_table(source, base_dir=base_dir, delimiter=delimiter, encoding=encoding, decimal=decimal).frame


def reading_options(params: dict[str, str]) -> dict[str, Any]:
    """Returns how a model's training data was read, for reading its prediction input the same way.

    Args:
        params: The training run's params (`data.delimiter`, `data.encoding`
            and `data.decimal`, as the config logs them). Missing ones keep
            `load_frame`'s defaults.

    Returns:
        Keyword arguments for `load_frame`.

    Example:

    ```python
    reading_options({"data.delimiter": ";", "data.decimal": ","})  # {"delimiter": ";", "decimal": ","}
    ```
    """
    options: dict[str, Any] = {}
    for key in ("delimiter", "encoding", "decimal"):
        value = params.get(f"data.{key}")
        if value not in (None, "", "null"):  # a config's null is logged as `null`
            options[key] = value
    return options


def read_table(source: str | os.PathLike[str], *, base_dir: Path | None = None, delimiter: str | None = None,
               encoding: str = "utf-8", decimal: str = ".") -> Table:
    """Reads a data source and notes how: the delimiter used and a truncated last line.

    Without a configured `delimiter`, a CSV file that parses to a single
    column whose name holds `;`, a tab or `|` is sniffed (`csv.Sniffer`)
    and read again with the delimiter found.

    Args:
        source: A built-in name, a file path or a glob pattern; see `load_frame`.
        base_dir: Directory that relative paths are resolved against. Default
            `None` (the working directory).
        delimiter: CSV field delimiter. Default `None` (comma, or sniffed).
        encoding: Text encoding of CSV files. Default `utf-8`.
        decimal: The decimal mark of numbers in CSV files, `.` (default) or `,`.

    Returns:
        The `Table`.

    Raises:
        DataLoadError: As `load_frame`; bytes invalid in `encoding` are
            reported with their line and a likely encoding.

    Example:

    ```python
    table = read_table("exports/orders.csv")
    if table.sniffed:
        print(f"read with delimiter {table.delimiter!r}")
    ```
    """
    resolved = resolve_source(source, base_dir=base_dir)
    if resolved in BUILTIN_SOURCES:
        return Table(_load_builtin(resolved), resolved)
    path = Path(resolved)
    if path.suffix.lower() == ".csv":
        return _read_csv_table(path, delimiter, encoding, decimal)
    return Table(_read_file(path, _read_parquet), resolved)


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


def source_identity(source: str | os.PathLike[str] | None, *, base_dir: Path | None = None) -> list[Any] | None:
    """Identifies a source's (or any file's) current content cheaply, without reading it: what a step cache keys on.

    A file is identified by its absolute path, size and modification time
    (as `make` does); a folder (of images) by those of every file in it; a
    glob by the newest match; a built-in set by its name and the version
    of the package that ships it.

    Args:
        source: A source as in `load_frame`, a folder, or None.
        base_dir: Directory that relative paths are resolved against.
            Defaults to `None` (the working directory).

    Returns:
        A JSON-serializable list, `[]` for None, or None when the source
        cannot be resolved (the load step then reports why).

    Example:

    ```python
    source_identity("iris")                 # ["iris", "sklearn", "1.7.2"]
    source_identity("data/incoming/*.csv")  # [["/abs/data/incoming/b.csv", 1024, 17...]]
    ```
    """
    if source is None:
        return []
    text = os.fspath(source)
    if text in BUILTIN_SOURCES:
        package = "palmerpenguins" if text == "penguins" else "sklearn"
        return [text, package, _package_version(package)]
    path = _absolute(Path(text).expanduser(), base_dir)
    try:
        if _GLOB_CHARS & set(text):
            path = _newest_match(path)
        if path.is_dir():
            return [_stat_of(p) for p in sorted(path.rglob("*")) if p.is_file()]
        return [_stat_of(path)]
    except (OSError, BadInputError):
        return None


def _stat_of(path: Path) -> list[Any]:
    """Returns `[path, size, mtime_ns]` of a file."""
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _package_version(name: str) -> str | None:
    """Returns an installed distribution's version, None if it is not installed."""

    try:
        return version("scikit-learn" if name == "sklearn" else name)
    except PackageNotFoundError:
        return None


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


def _read_csv_table(path: Path, delimiter: str | None, encoding: str, decimal: str = ".") -> Table:
    """Reads a CSV file with the configured or sniffed delimiter and checks its last line."""
    sep = delimiter or ","
    frame = _read_file(path, lambda p: _read_csv(p, sep, encoding, decimal))
    sniffed = delimiter is None and _looks_delimited(frame)
    if sniffed:
        sep = _sniff_delimiter(path, encoding, str(frame.columns[0]))
        frame = _read_file(path, lambda p: _read_csv(p, sep, encoding, decimal))
    return Table(frame, str(path), sep, sniffed, _truncated_last_line(path, sep, encoding, frame.shape[1]))


@contextlib.contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """Turns what pandas raises while reading `path` (empty, undecodable, unparsable) into a `DataLoadError`.

    Args:
        path: The file being read, named in the message.

    Raises:
        DataLoadError: The file cannot be read; it names the file and why.
    """
    try:
        yield
    except DataLoadError:
        raise
    except pd.errors.EmptyDataError as err:
        raise DataLoadError(f"Data file '{path}' is empty: {err}") from err
    except UnicodeDecodeError as err:
        raise DataLoadError(_decode_problem(path, err)) from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataLoadError(f"Cannot parse data file '{path}': {err}") from err


def _read_file(path: Path, reader) -> pd.DataFrame:
    """Reads a file with `reader` and checks it has unique columns and rows."""
    if path.stat().st_size == 0:
        raise DataLoadError(f"Data file '{path}' is empty.")
    with reading_errors(path):
        df = reader(path)
    _check_columns(df.columns, path)
    if len(df) == 0:
        raise DataLoadError(f"Data file '{path}' has a header but no data rows.")
    return df


def _read_csv(path: Path, sep: str, encoding: str, decimal: str = ".") -> pd.DataFrame:
    """Reads a CSV file, rejecting duplicate header names before pandas renames them."""
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, sep=sep, encoding=encoding)
    _check_columns(pd.Index(header.iloc[0].tolist()), path)
    return pd.read_csv(path, sep=sep, encoding=encoding, decimal=decimal)


def _looks_delimited(frame: pd.DataFrame) -> bool:
    """True when a frame read with commas is one column whose name holds another delimiter."""
    return frame.shape[1] == 1 and any(ch in str(frame.columns[0]) for ch in _OTHER_DELIMITERS)


def _sniff_delimiter(path: Path, encoding: str, header: str) -> str:
    """Detects which of `;`, tab and `|` a file uses, from its first lines."""
    with open(path, encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(_TAIL_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=_OTHER_DELIMITERS).delimiter
    except csv.Error:  # too irregular to sniff: the character that splits the header most
        return max(_OTHER_DELIMITERS, key=header.count)


def _truncated_last_line(path: Path, sep: str, encoding: str, columns: int) -> tuple[int, int] | None:
    """Returns `(line number, fields)` when the file's last line has fewer fields than its header.

    A last line holding a quote is not judged: it may close a quoted field
    that spans several lines.
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().decode(encoding, errors="replace").rstrip("\r\n")
    last = tail.rsplit("\n", 1)[-1].rstrip("\r")
    if not last or '"' in last:
        return None
    fields = len(next(csv.reader([last], delimiter=sep)))
    if fields >= columns:
        return None
    return _count_lines(path), fields


def _count_lines(path: Path) -> int:
    """Counts the lines of a file, the last one with or without its newline."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count, last = count + block.count(b"\n"), block[-1:]
    return count + (last != b"\n")


def _decode_problem(path: Path, err: UnicodeDecodeError) -> str:
    """Describes undecodable bytes: where they are, what they are and the encoding that reads them."""
    data = path.read_bytes()
    try:
        data.decode(err.encoding)
        start = err.start
    except UnicodeDecodeError as whole:  # the error's offset is relative to the chunk pandas decoded
        start = whole.start
    line = data.count(b"\n", 0, start) + 1
    begin = data.rfind(b"\n", 0, start) + 1
    end = data.find(b"\n", start)
    excerpt = data[begin: end if end >= 0 else len(data)][:80].decode(err.encoding, errors="backslashreplace")
    excerpt = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in excerpt)  # no raw NULs on a terminal
    marked = next((name for mark, name in _BYTE_ORDER_MARKS if data.startswith(mark)), None)
    likely = marked or next((name for name in _LIKELY_ENCODINGS if _decodes(data, name)), None)
    hint = f"it decodes as {likely}: set data.encoding: {likely}" if likely else "set data.encoding to the file's encoding"
    return (f"Data file '{path}' is not valid {err.encoding}: byte 0x{data[start]:02x} on line {line} "
            f"(\"{excerpt}\"); {hint}.")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True



def _read_parquet(path: Path) -> pd.DataFrame:
    """Reads a Parquet file, rejecting duplicate column names in its schema."""
    import pyarrow.parquet as pq  # Deferred: only Parquet sources need it.

    _check_columns(pd.Index(pq.read_schema(path).names), path)
    return pd.read_parquet(path)


def _check_columns(columns: pd.Index, path: Path) -> None:
    """Raises `DataLoadError` if `columns` holds duplicate names."""
    duplicated = sorted({str(c) for c in columns[columns.duplicated()]})
    if duplicated:
        raise DataLoadError(f"Data file '{path}' has duplicate column names: {duplicated}. Rename or remove the "
                            "duplicates in its header.")


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
