"""The stream kind (`data.streaming: true`): a table larger than memory, read batch by batch from Parquet shards.

The load step scans every row once and keeps an evenly spaced sample as the
raw rows; a `stream.json` manifest beside the sample (and beside the split)
tells the later steps where the shards are and how the rows are split
(`kerasflow.data.stream`). Training and scoring read the shards through
`tf.data` pipelines (`kerasflow.training.stream`). Everything else (the
contract on the sample, the profile) is the table's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from kerasflow.data.contract import check_contract, dropped_metadata
from kerasflow.data.findings import require_contract
from kerasflow.data.holdout import save_raw
from kerasflow.data.load import Table as Read
from kerasflow.data.stream import (
    MANIFEST,
    StreamManifest,
    check_scan,
    fit_stream_features,
    manifest_beside,
    sample_stride,
    scan_stream,
    split_stream,
    stream_files,
)
from kerasflow.errors import BadInputError
from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.training.baseline import Baseline
from kerasflow.training.fitting import EpochHook, TrainingResult
from kerasflow.training.kinds.base import StepLog, register
from kerasflow.training.kinds.table import Table, log_contract
from kerasflow.training.stream import evaluate_stream_model, fit_stream_model


@register
class Stream(Table):
    """A streamed table: exact counts and statistics from full passes, the contract on a sample."""

    name: ClassVar[str] = "stream"
    priority: ClassVar[int] = 10

    @classmethod
    def claims(cls, data: DataConfig) -> bool:
        return data.streaming

    def sources(self, config: PipelineConfig) -> list[Any]:
        """Every shard of `data.source` (or the source itself when it has none: the load step reports why)."""
        try:
            return stream_files(config.data.source)
        except BadInputError:  # nothing to key on: the load step reports why
            return [config.data.source]

    def read(self, config: PipelineConfig) -> Any:
        """None: a stream is scanned shard by shard, never held whole."""
        return None

    def load(self, config: PipelineConfig, workdir: str, log: StepLog, read: Any = None) -> str:
        """Scans the shards once: exact counts over every row, the contract on an evenly spaced sample.

        Returns:
            Path of the sample as Parquet in `workdir`, with the stream's
            manifest beside it (`kerasflow.data.stream`).

        Raises:
            DataLoadError: No Parquet shards, or the label column is missing.
            DataContractError: The sample breaks the contract, or the full pass
                finds missing labels, one class or (under `non_finite: fail`)
                infinite values; the report is logged first.
        """
        files = stream_files(config.data.source)
        scan, sample = scan_stream(files, config.data.target)
        report = check_contract(config, Read(sample, source=config.data.source))
        report.findings += check_scan(scan, config.data.target, config.data.task, config.preprocessing.non_finite,
                                      config.data.source)
        log_contract(log, report)
        frame = require_contract(report).frame
        digest = scan.digest
        log.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": config.data.source,
                  "kerasflow.streaming": "true"})
        log.counts({"rows": scan.rows, "columns": frame.shape[1], "files": len(files), "sample_rows": len(frame)},
                    prefix="data.")
        log.dataset(frame, source=config.data.source, digest=digest, target=config.data.target, rows=scan.rows)
        manifest = StreamManifest(files=files, scan=scan, stride=sample_stride(scan.rows))
        path = Path(workdir) / "raw.parquet"
        save_raw(frame, path, 0, dropped_metadata(report.dropped))
        manifest.save(path.with_name(MANIFEST))
        return str(path)

    def split(self, config: PipelineConfig, raw_path: str, workdir: str, log: StepLog) -> str:
        """Splits every row by a hash of its row number (`kerasflow.data.stream.split_stream`).

        Returns:
            Path of the sample's `Split` JSON, with the stream's manifest (now holding the rule) beside it.
        """
        s = config.split
        ruled, split = split_stream(stream_beside(raw_path), s.seed, s.test_fraction, s.val_fraction)
        log.counts(ruled.sizes, prefix="split.")
        path = split.save(Path(workdir) / "split.json")
        ruled.save(path.with_name(MANIFEST))
        return str(path)

    def fit_columns(self, config: PipelineConfig, train: pd.DataFrame, numeric: list[str], categorical: list[str],
                    split_path: str) -> tuple[Any, Any]:
        """Exact statistics from one pass over every training row (the sample's training rows start it)."""
        d, p = config.data, config.preprocessing
        return fit_stream_features(stream_beside(split_path), train, numeric, categorical, d.target, impute=p.impute,
                                   normalize=p.normalize, max_categories=p.max_categories, task=d.task,
                                   encoding=d.label_encoding, non_finite=p.non_finite,
                                   numeric_embedding=p.numeric_embedding,
                                   categorical_embedding=p.categorical_embedding,
                                   target_transform=p.target_transform)

    def train(self, config: PipelineConfig, model: Any, raw_path: str, split_path: str, features: Any, labels: Any,
              *, refit: str = "train", epochs: int | None = None, on_epoch: EpochHook | None = None,
              checkpoint: str | Path | None = None) -> TrainingResult:
        """Fits on the training partition read batch by batch from the shards (`refit`, `epochs` do not apply)."""
        return fit_stream_model(config, stream_beside(split_path), model, features, labels, on_epoch=on_epoch,
                                checkpoint=checkpoint)

    def evaluate(self, config: PipelineConfig, raw_path: str, split_path: str, features_path: str,
                 labels_path: str, model_path: str | Path, out_dir: Path) -> tuple[Any, list[Path]]:
        """Scores every test row, batch by batch from the shards."""
        return evaluate_stream_model(config, stream_beside(split_path), FeatureSpec.load(features_path),
                                     LabelSpec.load(labels_path), model_path, out_dir)

    def baseline(self, config: PipelineConfig, raw_path: str, split_path: str, labels_path: str) -> Baseline:
        """None: a streamed table is not held in memory, and a sample would not be scored on the same rows."""
        return Baseline(reason="a streamed table has no baseline (its rows are not held in memory)")

    def table_rows(self, raw_path: str) -> int | None:
        """Rows of the streamed table (the manifest's count); the raw rows are its sample."""
        return stream_beside(raw_path).scan.rows

    def checkpoint_key(self, raw_path: str | Path) -> str:
        """The fingerprint of every row (the manifest's), not of the sample the raw rows hold."""
        return stream_beside(raw_path).scan.digest


def stream_beside(path: str | Path) -> StreamManifest:
    """The stream manifest the load (or split) step wrote beside its output.

    Raises:
        FileNotFoundError: There is none (the output is not a streamed table's).
    """
    manifest = manifest_beside(path)
    if manifest is None:
        raise FileNotFoundError(f"no {MANIFEST} beside {path}: not the output of a streaming load or split step")
    return manifest
