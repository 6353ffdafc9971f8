"""Files of rows read and written in chunks of bounded size, for batch prediction.

`read_chunks` reads a CSV file with pandas' `chunksize` (the delimiter,
encoding and decimal mark as `kerasflow.data.load.load_frame` takes them,
sniffing the delimiter the same way) and a Parquet file batch by batch with
PyArrow, so a file of any length is scored in bounded memory. Each chunk is
indexed as the whole file would be: by row number, or by the index a
Parquet file stores. `ChunkWriter` writes the rows with their predictions
chunk by chunk into a temporary file beside the output, renamed into place
only when every chunk was written (a refused input leaves no output).

This module deliberately imports neither Prefect, MLflow nor TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from kerasflow.data.load import (
    BUILTIN_SOURCES,
    DataLoadError,
    _check_columns,
    _sniff_delimiter,
    load_frame,
    reading_errors,
)

CHUNK_ROWS = 50_000  # rows per chunk: about 20 MB of a 25-column table, however long the file
_OTHER_DELIMITERS = ";\t|"


def read_chunks(source: str, chunk_rows: int = CHUNK_ROWS, *, delimiter: str | None = None,
                encoding: str = "utf-8", decimal: str = ".", text: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Reads a file of rows chunk by chunk.

    Args:
        source: A resolved source (`kerasflow.data.load.resolve_source`): a
            `.csv` or `.parquet` path, or a built-in set (read whole).
        chunk_rows: Most rows per chunk. Default 50,000.
        delimiter: CSV field delimiter. Default `None` (comma, or sniffed).
        encoding: Text encoding of CSV files. Default `utf-8`.
        decimal: The decimal mark of numbers in CSV files. Default `.`.
        text: CSV columns read as text in every chunk (the model's string inputs): a chunk whose
            codes all look like numbers is not read as numbers. Default none.

    Yields:
        DataFrames of at most `chunk_rows` rows, indexed as in the whole file.

    Raises:
        DataLoadError: As `load_frame`: an empty or unparsable file,
            undecodable bytes, duplicate columns, no data rows.
    """
    if source in BUILTIN_SOURCES:
        yield load_frame(source)
        return
    path = Path(source)
    if path.stat().st_size == 0:
        raise DataLoadError(f"Data file '{path}' is empty.")
    chunks = _parquet_chunks(path, chunk_rows) if path.suffix.lower() == ".parquet" \
        else _csv_chunks(path, chunk_rows, delimiter, encoding, decimal, text or [])
    rows = 0
    while True:
        with reading_errors(path):
            chunk = next(chunks, None)
        if chunk is None:
            break
        rows += len(chunk)
        yield chunk
    if rows == 0:
        raise DataLoadError(f"Data file '{path}' has a header but no data rows.")


def _csv_chunks(path: Path, chunk_rows: int, delimiter: str | None, encoding: str,
                decimal: str, text: list[str]) -> Iterator[pd.DataFrame]:
    """A CSV file's chunks, with the delimiter `load_frame` would use."""
    sep = delimiter or ","
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, sep=sep, encoding=encoding)
    names = header.iloc[0].tolist()
    if delimiter is None and len(names) == 1 and any(ch in str(names[0]) for ch in _OTHER_DELIMITERS):
        sep = _sniff_delimiter(path, encoding, str(names[0]))
        names = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, sep=sep,
                            encoding=encoding).iloc[0].tolist()
    _check_columns(pd.Index(names), path)
    dtype = {c: str for c in text if c in names}
    with pd.read_csv(path, sep=sep, encoding=encoding, decimal=decimal, chunksize=chunk_rows,
                     dtype=dtype or None) as reader:
        yield from reader  # indexed by row number across chunks


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file's record batches as frames, with its stored index or row numbers."""
    import pyarrow as pa  # deferred: only Parquet inputs need it
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    _check_columns(pd.Index(file.schema_arrow.names), path)
    stored = (file.schema_arrow.pandas_metadata or {}).get("index_columns") or []
    numbered = all(isinstance(c, dict) for c in stored)  # a RangeIndex is stored as metadata only
    start, step = (stored[0].get("start", 0), stored[0].get("step", 1)) if len(stored) == 1 and numbered else (0, 1)
    offset = 0
    for batch in file.iter_batches(batch_size=chunk_rows):
        frame = pa.Table.from_batches([batch]).to_pandas()
        if numbered:
            frame.index = pd.RangeIndex(start + offset * step, start + (offset + len(frame)) * step, step)
        offset += len(frame)
        yield frame


class ChunkWriter:
    """Writes rows chunk by chunk as CSV, or as Parquet for a `.parquet` path, then moves them into place.

    Args:
        path: The output file; its folder is created.

    Example:

    ```python
    with ChunkWriter("out.csv") as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()  # without it, nothing is left at out.csv
    ```
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self.parts: list[Path] = []

    def write(self, frame: pd.DataFrame) -> None:
        """Appends rows (a CSV header before the first)."""
        if self.parquet:  # each chunk a part; `commit` joins them under one schema
            part = self.folder / f"part-{len(self.parts):05d}.parquet"
            frame.to_parquet(part, index=False)
            self.parts.append(part)
            return
        partial = self.folder / "rows.csv"
        frame.to_csv(partial, index=False, mode="a" if self.parts else "w", header=not self.parts)
        self.parts = [partial]

    def commit(self) -> Path:
        """Moves the rows written into place and returns the output path."""
        target = self.folder / "rows"
        if self.parquet:
            _join_parquet(self.parts, target)
        elif self.parts:
            self.parts[0].rename(target)
        else:
            target.touch()
        os.replace(target, self.path)
        return self.path

    def close(self) -> None:
        """Removes what was written and not committed."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "ChunkWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _join_parquet(parts: list[Path], target: Path) -> None:
    """Writes Parquet parts as one file, under the schema that holds them all (an int column with
    missing values in a later chunk becomes float, as in one frame), one part in memory at a time."""
    import pyarrow as pa  # deferred: only Parquet outputs need it
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p) for p in parts]
    schema = schemas[0]
    if any(not s.equals(schema) for s in schemas[1:]):  # pandas' metadata would name the first part's dtypes
        schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).cast(schema))

