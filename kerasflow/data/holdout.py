"""A given test file as the held-out test set (`data.test_source`).

Plain functions (no Prefect, no MLflow). The test file's rows are appended
after the training file's, and their count is stored in the raw Parquet
file's schema metadata, so the split step (which only gets the path) makes
exactly those rows the test set and splits train/validation (or folds) from
the training file alone. `rows_at` reads some of the raw rows (the test
rows, a sample) without holding them all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kerasflow.data.split import Split, split_holdout, split_kfold
from kerasflow.schemas.config import SplitConfig

TEST_ROWS_KEY = b"kerasflow.test_rows"
HEAD_ROWS = 100
"""Rows `save_raw` also writes to a small file beside the raw rows, for `raw_head`."""


def save_raw(frame: pd.DataFrame, path: str | Path, test_rows: int,
             metadata: dict[bytes, bytes] | None = None) -> Path:
    """Writes raw rows as Parquet, recording how many trailing rows are test rows.

    Args:
        frame: The combined rows.
        path: Output file.
        test_rows: Count of trailing test rows.
        metadata: More schema metadata to store. Default none.

    Returns:
        The path written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), **(metadata or {}), TEST_ROWS_KEY: str(test_rows).encode()}
    table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    pq.write_table(table.slice(0, HEAD_ROWS), _head_path(path))
    return Path(path)


def raw_head(path: str | Path, rows: int = 5) -> pd.DataFrame:
    """The first `rows` raw rows, as `pd.read_parquet(path).head(rows)` returns them, without reading the table.

    They come from the small file `save_raw` writes beside the raw rows
    (the same schema and metadata, so the same dtypes), even when the raw
    rows themselves are gone (a registration reads no rows); a raw file
    without one, or with an older one, is read whole.

    Args:
        path: A raw Parquet file (`save_raw`).
        rows: How many rows, at most `HEAD_ROWS`. Default 5.

    Returns:
        The frame of the first rows.
    """
    head, raw = _head_path(path), Path(path)
    if rows <= HEAD_ROWS and head.exists() and (not raw.exists() or head.stat().st_mtime_ns >= raw.stat().st_mtime_ns):
        return pd.read_parquet(head).head(rows)
    return pd.read_parquet(path).head(rows)


def _head_path(path: str | Path) -> Path:
    return Path(path).with_name(Path(path).name + ".head")


def raw_rows(path: str | Path) -> int | None:
    """Rows of a raw Parquet file from its footer (nothing else is read), or None if it is no Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return None


def test_rows_of(path: str | Path) -> int:
    """Returns how many trailing rows of a raw Parquet file are a given test set (0 if none)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    return int(metadata.get(TEST_ROWS_KEY, b"0"))


def split_with_test(labels: pd.Series, test_rows: int, *, kind: str = "holdout", val_fraction: float = 0.1,
                    folds: int = 5, stratify: bool = True, shuffle: bool = True, seed: int = 42) -> Split:
    """Splits the training rows and keeps the trailing `test_rows` as the test set.

    Args:
        labels: Label of every row, training rows first.
        test_rows: Count of trailing test rows.
        kind: `holdout` (default) or `kfold`.
        val_fraction: Share of the training rows for validation. Default 0.1.
        folds: Folds for `kfold`. Default 5.
        stratify: Stratify by class. Default true.
        shuffle: Shuffle before splitting. Default true.
        seed: Seed of the splitters. Default 42.

    Returns:
        A `Split` whose `test` is exactly the trailing rows.

    Raises:
        SplitError: Too few training rows or class members.
    """
    n_train = len(labels) - test_rows
    train_labels = labels.iloc[:n_train].reset_index(drop=True)
    if kind == "kfold":
        split = split_kfold(train_labels, folds=folds, test_fraction=0.0, stratify=stratify, shuffle=shuffle,
                            seed=seed)
    else:
        split = split_holdout(train_labels, test_fraction=0.0, val_fraction=val_fraction, stratify=stratify,
                              shuffle=shuffle, seed=seed)
    split.test = list(range(n_train, len(labels)))
    return split


def split_rows(labels: pd.Series, cfg: SplitConfig, *, classify: bool, test_rows: int = 0) -> Split:
    """Splits rows as a `split` config section asks, with scikit-learn splitters.

    Stratification applies to classification labels only. When the raw rows
    end with `test_rows` rows of a given test file (`data.test_source`),
    those are the test set and the rest is split into train/validation (or
    folds).

    Args:
        labels: The label of each row.
        cfg: The `split` section (`kind`, fractions, `folds`, `stratify`,
            `shuffle`, `seed`).
        classify: Whether the task is classification.
        test_rows: Rows at the end that form the test set. Default 0.

    Returns:
        The `Split`.

    Raises:
        SplitError: Too few rows or class members for the requested split.
    """
    stratify = cfg.stratify and classify
    if test_rows:
        return split_with_test(labels, test_rows, kind=cfg.kind, val_fraction=cfg.val_fraction, folds=cfg.folds,
                               stratify=stratify, shuffle=cfg.shuffle, seed=cfg.seed)
    if cfg.kind == "kfold":
        return split_kfold(labels, folds=cfg.folds, test_fraction=cfg.test_fraction, stratify=stratify,
                           shuffle=cfg.shuffle, seed=cfg.seed)
    return split_holdout(labels, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                         stratify=stratify, shuffle=cfg.shuffle, seed=cfg.seed)


def rows_at(raw_path: str | Path, positions: list[int] | np.ndarray) -> pd.DataFrame:
    """Reads raw rows at positions (the test rows, a sample, the canary rows), one column at a time.

    The same frame as `pd.read_parquet(raw_path).iloc[positions]`, without
    ever holding every row: each column is read, its rows taken, and
    dropped before the next, so only the rows taken become pandas objects
    (50 canary rows of a million: 0.3 s of CPU and a few MB at a time,
    instead of 1.1 s and some 450 MB).

    Args:
        raw_path: Raw rows (Parquet).
        positions: Positions in the raw rows; those beyond its end are left out.

    Returns:
        The rows, label columns included, in the order of `positions`.
    """
    import pyarrow as pa  # deferred: only the steps that read raw Parquet need it
    import pyarrow.parquet as pq

    source = pq.ParquetFile(raw_path)
    kept = np.asarray(positions, dtype=np.int64).reshape(-1)
    kept = kept[kept < source.metadata.num_rows]
    schema = source.schema_arrow
    columns = [source.read(columns=[name]).column(0).take(kept) for name in schema.names]
    frame = pa.Table.from_arrays(columns, schema=schema).to_pandas()
    stored = (schema.pandas_metadata or {}).get("index_columns") or [{"kind": "range", "start": 0, "step": 1}]
    if isinstance(stored[0], dict) and stored[0].get("kind") == "range":  # a RangeIndex lives in the metadata only
        frame.index = pd.Index(stored[0]["start"] + stored[0]["step"] * kept, name=stored[0].get("name"))
    return frame
