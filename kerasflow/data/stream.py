"""Tables larger than memory, read batch by batch from Parquet (`data.streaming: true`).

In streaming mode no step holds the whole table. The load step makes one
pass over every row and keeps:

- a **sample**: an evenly spaced `SAMPLE_ROWS` rows, indexed by their row
  number in the table. Everything that judges the data by example runs on it:
  the data contract's findings, the Great Expectations suite, the design
  lint, the model signature and the drift reference;
- **exact full-pass counts** (`StreamScan`): rows, missing values per column,
  non-finite values and the finite range per numeric column, label values.
  They decide what the sample cannot: a label with fewer than two classes,
  missing labels, infinite values anywhere;
- a **manifest** (`stream.json`, beside the sample): the shard files and
  the counts.

The split is a rule, not a list: row `i` goes to train, validation or test
by a hash of `(i, seed)` (`assign_partitions`), so every pass sees the same
partition without storing ten million positions. Preprocessing statistics
come from one pass over the training rows (`fit_stream_features`); training
and evaluation read `tf.data` pipelines over the shards
(`kerasflow.training.stream`).

This module imports neither TensorFlow, Prefect nor MLflow.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from kerasflow.data.findings import Finding
from kerasflow.data.load import DataLoadError
from kerasflow.data.split import Split
from kerasflow.features.encodings import embedded_columns, fit_numeric_encoding, normalization
from kerasflow.features.labels import LabelSpec, TargetMoments, fit_labels
from kerasflow.features.tabular import FeatureSpec, category_tokens, natural_key

SAMPLE_ROWS = 50_000
BATCH_ROWS = 65_536
MANIFEST = "stream.json"
TRAIN, VAL, TEST = 0, 1, 2


@dataclass
class StreamScan:
    """Exact counts from one pass over every row of a streamed table.

    Args:
        rows: Rows in the table.
        missing: Missing values by column.
        non_finite: Infinite (or beyond float32) values by numeric column.
        ranges: `[min, max]` of the finite values by numeric column.
        labels: Row count by label value (as text).
        first_bad: Up to 5 row numbers with a non-finite value, by column.
        digest: sha256 of every row's content (as `fingerprint_frame`
            hashes a frame), column names and types.
    """

    rows: int = 0
    digest: str = ""
    missing: dict[str, int] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    first_bad: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class StreamManifest:
    """What the streaming steps need to read the table again: its shards and counts.

    Args:
        files: The Parquet shards, in reading order.
        scan: The full-pass counts.
        seed: Seed of the hash split (`split.seed`). Set by the split step.
        test_fraction: Share of rows in the test partition.
        val_fraction: Share of rows in the validation partition.
        sizes: Rows per partition (`train_rows`, `val_rows`, `test_rows`).
        stride: The sample holds every `stride`-th row: its row `p` is row
            `p * stride` of the table.
    """

    files: list[str]
    scan: StreamScan
    stride: int = 1
    seed: int = 0
    test_fraction: float = 0.0
    val_fraction: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Writes the manifest as JSON and returns the path."""
        Path(path).write_text(json.dumps(asdict(self), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "StreamManifest":
        """Reads a manifest written by `save`."""
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "scan": StreamScan(**data["scan"])})


def stream_files(source: str, base_dir: Path | None = None) -> list[str]:
    """Resolves a streaming source to its Parquet shards.

    Args:
        source: A Parquet file, a folder (every `*.parquet` under it) or a
            glob of Parquet files.
        base_dir: Folder relative paths are resolved against. Default the
            working directory.

    Returns:
        Absolute paths, sorted.

    Raises:
        DataLoadError: Nothing matches, or a match is not a Parquet file.
    """
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet") if not p.name.startswith("."))
    elif any(ch in source for ch in "*?["):
        files = sorted(glob.glob(str(path), recursive=True))
    else:
        files = [str(path)] if path.exists() else []
    if not files:
        raise DataLoadError(f"data.source {source!r}: no Parquet files found at {path}; data.streaming reads a "
                            f"Parquet file, a folder of Parquet shards, or a glob of them")
    wrong = [f for f in files if not f.endswith(".parquet")]
    if wrong:
        raise DataLoadError(f"data.source {source!r}: data.streaming reads Parquet only, got {wrong[:3]}; convert "
                            f"the files (pandas: df.to_parquet) or set data.streaming: false")
    return files


def count_rows(files: list[str]) -> int:
    """Returns the rows of Parquet shards from their metadata, without reading them."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def iter_chunks(files: list[str], columns: list[str] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """Reads Parquet shards batch by batch.

    Args:
        files: The shards, read in order.
        columns: Columns to read. Default all.
        batch_rows: Most rows per batch. Default 65,536.

    Yields:
        DataFrames indexed by row number in the whole table.
    """
    import pyarrow.parquet as pq

    offset = 0
    for file in files:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=columns):
            frame = batch.to_pandas()
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            yield frame


def assign_partitions(rows: np.ndarray, seed: int, test_fraction: float, val_fraction: float) -> np.ndarray:
    """Assigns rows to train (0), validation (1) or test (2) by a hash of their row number and the seed.

    The same row always lands in the same partition, in any pass and any
    batch size; the shares approach the fractions as rows grow (1M rows:
    within 0.1 percentage point).

    Args:
        rows: Row numbers in the table.
        seed: `split.seed`.
        test_fraction: Share of test rows.
        val_fraction: Share of validation rows.

    Returns:
        A uint8 array of partition codes.
    """
    with np.errstate(over="ignore"):  # splitmix64: wrapping multiplication is the point
        x = rows.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    share = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.where(share < test_fraction, TEST, np.where(share < test_fraction + val_fraction, VAL, TRAIN)).astype(
        np.uint8)


def sample_stride(rows: int, sample_rows: int = SAMPLE_ROWS) -> int:
    """The sample's stride for a table of `rows` rows: every `stride`-th row, about `sample_rows` in all."""
    return max(1, rows // sample_rows)


def scan_stream(files: list[str], target: str, sample_rows: int = SAMPLE_ROWS) -> tuple[StreamScan, pd.DataFrame]:
    """Counts what the data contract needs over every row, and keeps an evenly spaced sample.

    Args:
        files: The shards.
        target: The label column.
        sample_rows: Rows in the sample. Default 50,000.

    Returns:
        `(scan, sample)`: the counts, and the sample indexed by row number.

    Raises:
        DataLoadError: The label column is missing (the available columns are named).
    """
    import pyarrow.parquet as pq

    columns = pq.ParquetFile(files[0]).schema_arrow.names
    if target not in columns:
        raise DataLoadError(f"data.target {target!r} is not a column of {files[0]}; its columns are {columns}")
    total = count_rows(files)
    stride = sample_stride(total, sample_rows)
    scan, labels, parts, digest = StreamScan(rows=total), Counter(), [], hashlib.sha256(f"rows={total}".encode())
    for chunk in iter_chunks(files):
        if not parts:
            digest.update("".join(f"{name}\x1f{dtype}\x1e" for name, dtype in chunk.dtypes.items()).encode())
        digest.update(pd.util.hash_pandas_object(chunk, index=True).to_numpy().tobytes())
        parts.append(chunk[chunk.index % stride == 0])
        labels.update({str(k): int(v) for k, v in chunk[target].value_counts().items()})
        for column in chunk.columns:
            scan.missing[column] = scan.missing.get(column, 0) + int(chunk[column].isna().sum())
            if pd.api.types.is_numeric_dtype(chunk[column]) and not pd.api.types.is_bool_dtype(chunk[column]):
                _count_non_finite(chunk[column], scan)
    scan.labels, scan.digest = dict(labels), digest.hexdigest()
    return scan, pd.concat(parts)


def check_scan(scan: StreamScan, target: str, task: str, non_finite: str, source: str) -> list[Finding]:
    """Returns what the full pass forbids or repairs, as data contract findings.

    Missing labels and a label with fewer than two classes are errors; so
    are infinite values (or values beyond float32) under
    `preprocessing.non_finite: fail`, and warnings naming the repair
    otherwise. Row numbers count from 0 over the whole table.

    Args:
        scan: The counts.
        target: The label column.
        task: `data.task`.
        non_finite: `preprocessing.non_finite`.
        source: The source, for messages.

    Returns:
        The findings.
    """
    found = []
    if scan.missing.get(target):
        found.append(Finding("error", "missing_labels", source, target, scan.missing[target], [],
                             f"{scan.missing[target]:,} of {scan.rows:,} rows have no label",
                             "drop those rows or fill in their labels"))
    if task != "regression" and len(scan.labels) < 2:
        found.append(Finding("error", "single_class", source, target, scan.rows, sorted(scan.labels)[:3],
                             f"the label has {len(scan.labels)} class(es) in {scan.rows:,} rows; classification "
                             "needs at least 2 classes", "add rows of the other classes, or check data.target"))
    for column, count in scan.non_finite.items():
        if column == target or not count:
            continue
        message = (f"{count:,} value(s) are infinite or beyond float32's range (rows "
                   f"{', '.join(map(str, scan.first_bad.get(column, [])))})")
        if non_finite == "fail":
            found.append(Finding("error", "non_finite", source, column, count, scan.first_bad.get(column, []),
                                 message, "fix the values, or set preprocessing.non_finite: missing (impute them) "
                                          "or clip (clip them to the column's finite range)"))
        else:
            found.append(Finding("warning", "non_finite", source, column, count, scan.first_bad.get(column, []),
                                 message, f"repaired in every batch by preprocessing.non_finite: {non_finite}"))
    return found


def fit_stream_features(manifest: StreamManifest, sample: pd.DataFrame, numeric: list[str], categorical: list[str],
                        target: str, *, impute: str, normalize: bool | str, max_categories: int | None, task: str,
                        encoding: str, non_finite: str, numeric_embedding: str = "none",
                        categorical_embedding: Any = None,
                        target_transform: str | None = None) -> tuple[FeatureSpec, LabelSpec]:
    """Fits the feature statistics and the label encoding in one pass over the training rows.

    Means, variances, vocabularies and classes are exact (sums in
    float64). The task (`auto`) is inferred from the sample's labels as for
    an in-memory table, and `impute: median` and `normalize: quantile` use
    the median and the quantiles of the sample's training rows (exact ones
    would need another pass; scikit-learn's `QuantileTransformer` fits on a
    subsample too). Piecewise-linear bins are not fitted (the config refuses
    them with `data.streaming`). A regression target's transform is fitted
    in the same pass (`kerasflow.features.labels.TargetMoments`: exact mean
    and scale; `auto` judges the skewness on the sample).

    Args:
        manifest: The stream, with its split rule.
        sample: The sample's training rows.
        numeric: Numeric columns.
        categorical: Categorical columns.
        target: The label column.
        impute: `mean`, `median` or `zero`.
        normalize: `standard`, `quantile` or `none` (`true`/`false`: `standard`/`none`).
        max_categories: Keep the most frequent levels only; None keeps all.
        task: `data.task`.
        encoding: `data.label_encoding`.
        non_finite: `preprocessing.non_finite` (how infinite values are repaired).
        numeric_embedding: `none` (default) or `periodic`.
        categorical_embedding: `preprocessing.categorical_embedding`, or None (default: one-hot).
        target_transform: `preprocessing.target_transform`, or None (default: a regression network
            learns the raw label).

    Returns:
        `(features, labels)`, as `fit_features` and `fit_labels` give them.

    Raises:
        FeatureError: `target_transform: log` meets a label below 0.
    """
    n = len(numeric)
    count, total, squares = np.zeros(n), np.zeros(n), np.zeros(n)
    levels = {column: Counter() for column in categorical}
    classes: set[str] = set()
    labels = fit_labels(sample[target], task, encoding)
    moments = TargetMoments(target_transform, sample[target]) if (
        labels.task == "regression" and target_transform is not None) else None
    for chunk in train_chunks(manifest, [*numeric, *categorical, target]):
        values = repair_numbers(chunk, numeric, manifest.scan, non_finite)
        present = np.where(np.isnan(values), 0.0, values)
        count += (~np.isnan(values)).sum(axis=0)
        total += present.sum(axis=0)
        squares += (present**2).sum(axis=0)
        for column in categorical:
            levels[column].update(category_tokens(chunk[column]).tolist())
        if labels.task == "classification":
            classes.update(str(value) for value in pd.unique(chunk[target]))
        elif moments is not None:
            moments.update(chunk[target])
    mean = np.divide(total, count, out=np.zeros(n), where=count > 0)
    variance = np.maximum(np.divide(squares, count, out=np.zeros(n), where=count > 0) - mean**2, 0.0)
    fill = {"mean": mean, "zero": np.zeros(n)}.get(impute)
    sampled = sample[numeric].to_numpy(dtype="float64", na_value=np.nan)
    if fill is None:  # median, from the sample
        fill = np.nan_to_num(np.nanmedian(sampled, axis=0))
    normalize = normalization(normalize)
    quantiles = fit_numeric_encoding(sampled, None, mean, variance, normalize, bins=False)["quantiles"] if n else []
    vocabularies = {c: _top_levels(levels[c], max_categories) for c in categorical}
    spec = FeatureSpec(numeric=list(numeric), categorical=list(categorical), fill=fill.tolist(), mean=mean.tolist(),
                       variance=variance.tolist(), normalize=normalize, vocabularies=vocabularies,
                       quantiles=quantiles, numeric_embedding=numeric_embedding,
                       embedded=embedded_columns(vocabularies, categorical_embedding))
    if labels.task == "classification":
        labels = LabelSpec("classification", target, sorted(classes, key=natural_key), encoding)
    elif moments is not None:
        labels.transform, labels.offset, labels.scale, labels.bounds = moments.result()
    return spec, labels


def train_chunks(manifest: StreamManifest, columns: list[str], partition: int = TRAIN) -> Iterator[pd.DataFrame]:
    """Reads the rows of one partition (train, validation or test) batch by batch.

    Args:
        manifest: The stream, with its split rule.
        columns: Columns to read.
        partition: `TRAIN` (default), `VAL` or `TEST`.

    Yields:
        DataFrames indexed by row number.
    """
    for chunk in iter_chunks(manifest.files, columns):
        keep = assign_partitions(chunk.index.to_numpy(), manifest.seed, manifest.test_fraction,
                                 manifest.val_fraction) == partition
        if keep.any():
            yield chunk[keep]


def non_finite_mask(values: np.ndarray) -> np.ndarray:
    """Marks values that are infinite or beyond float32's range (missing values are not marked)."""
    return ~np.isnan(values) & ~(np.abs(values) <= np.finfo(np.float32).max)


def repair_numbers(chunk: pd.DataFrame, numeric: list[str], scan: StreamScan, non_finite: str) -> np.ndarray:
    """Returns a batch's numeric columns as float64, infinite values repaired as `preprocessing.non_finite` says.

    `missing` makes them NaN (imputed by the model); `clip` clips them to
    the column's finite range over the whole table (`StreamScan.ranges`).
    """
    values = chunk[numeric].to_numpy(dtype="float64", na_value=np.nan) if numeric else np.empty((len(chunk), 0))
    return _repaired(values, non_finite_mask(values), numeric, scan, non_finite)


def _repaired(values: np.ndarray, bad: np.ndarray, numeric: list[str], scan: StreamScan, non_finite: str) -> np.ndarray:
    if not bad.any():
        return values
    if non_finite == "clip":
        low = np.array([scan.ranges.get(c, [0.0, 0.0])[0] for c in numeric])
        high = np.array([scan.ranges.get(c, [0.0, 0.0])[1] for c in numeric])
        return np.where(bad, np.clip(values, low, high), values)
    return np.where(bad, np.nan, values)


def repaired_chunk(chunk: pd.DataFrame, numeric: list[str], scan: StreamScan, non_finite: str) -> pd.DataFrame:
    """Returns a batch with its numeric columns repaired by `repair_numbers` (the batch itself if none needs it)."""
    values = chunk[numeric].to_numpy(dtype="float64", na_value=np.nan) if numeric else np.empty((len(chunk), 0))
    bad = non_finite_mask(values)
    if not bad.any():
        return chunk
    values = _repaired(values, bad, numeric, scan, non_finite)
    return chunk.assign(**{column: values[:, j] for j, column in enumerate(numeric)})


def split_stream(manifest: StreamManifest, seed: int, test_fraction: float, val_fraction: float) -> tuple[
        StreamManifest, Split]:
    """Sets the stream's hash split and splits its sample by the same rule.

    Args:
        manifest: The stream from the load step.
        seed: `split.seed`.
        test_fraction: `split.test_fraction`.
        val_fraction: `split.val_fraction`.

    Returns:
        `(manifest, split)`: the manifest with the rule and the exact
        partition sizes over every row, and the `Split` of the sample's
        positions (what the steps that work on the sample use).
    """
    sizes = np.zeros(3, dtype=np.int64)
    for start in range(0, manifest.scan.rows, 1 << 22):  # row numbers only: nothing is read
        rows = np.arange(start, min(start + (1 << 22), manifest.scan.rows))
        sizes += np.bincount(assign_partitions(rows, seed, test_fraction, val_fraction), minlength=3)
    ruled = replace(manifest, seed=seed, test_fraction=test_fraction, val_fraction=val_fraction,
                    sizes={"train_rows": int(sizes[TRAIN]), "val_rows": int(sizes[VAL]), "test_rows": int(sizes[TEST])})
    sample_rows = int(np.ceil(manifest.scan.rows / manifest.stride))
    codes = assign_partitions(np.arange(sample_rows) * manifest.stride, seed, test_fraction, val_fraction)
    split = Split(train=np.flatnonzero(codes == TRAIN).tolist(), val=np.flatnonzero(codes == VAL).tolist(),
                  test=np.flatnonzero(codes == TEST).tolist())
    return ruled, split


def manifest_beside(path: str | Path) -> StreamManifest | None:
    """The stream manifest a step wrote next to its output (the sample or the split), or None for an in-memory table."""
    path = Path(path).with_name(MANIFEST)
    return StreamManifest.load(path) if path.exists() else None


def _count_non_finite(series: pd.Series, scan: StreamScan) -> None:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    bad = non_finite_mask(values)
    finite = values[~np.isnan(values) & ~bad]
    name = str(series.name)
    if finite.size:
        low, high = scan.ranges.get(name, [np.inf, -np.inf])
        scan.ranges[name] = [float(min(low, finite.min())), float(max(high, finite.max()))]
    if bad.any():
        scan.non_finite[name] = scan.non_finite.get(name, 0) + int(bad.sum())
        shown = scan.first_bad.setdefault(name, [])
        shown.extend(int(i) for i in series.index[bad][:5 - len(shown)])


def _top_levels(counts: Counter, max_categories: int | None) -> list[str]:
    # the missing token ("") stays a level when it occurs, as in `fit_features`
    kept = [level for level, _ in counts.most_common(max_categories)]
    return sorted(kept, key=natural_key)


def files_identity(files: list[str]) -> list[Any]:
    """Path, size and modification time of every shard: what the step cache keys a stream on."""
    return [[f, Path(f).stat().st_size, Path(f).stat().st_mtime_ns] for f in files]
