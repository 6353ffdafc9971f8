"""The table kind: a pandas frame in memory, read from CSV, Parquet or a built-in set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from kerasflow.data.contract import check_contract, dropped_columns, dropped_metadata, label_columns, read_sources
from kerasflow.data.findings import ContractReport, require_contract, unreadable_report
from kerasflow.data.holdout import save_raw, split_rows, test_rows_of
from kerasflow.data.load import DataLoadError, fingerprint_frame, resolve_source
from kerasflow.data.split import Split, class_balance
from kerasflow.features.labels import fit_labels
from kerasflow.features.options import preprocessing_options
from kerasflow.features.tabular import fit_features, select_columns
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.training.baseline import Baseline, fit_baseline
from kerasflow.training.fitting import EpochHook, TrainingResult
from kerasflow.training.kinds.base import DataKind, FileCheck, Fitted, StepLog, reference_of, register
from kerasflow.training.rows import evaluate_rows, fit_on_split


@register
class Table(DataKind):
    """A table held in memory: the default kind, which claims any `data` section."""

    name: ClassVar[str] = "table"
    priority: ClassVar[int] = 0

    @classmethod
    def claims(cls, data: DataConfig) -> bool:
        return True

    def sources(self, config: PipelineConfig) -> list[Any]:
        """`data.source` and `data.test_source`."""
        return [config.data.source, config.data.test_source]

    def read(self, config: PipelineConfig) -> Any:
        """The source table and the test table (or None), as read (`read_sources`)."""
        return read_sources(config.data)

    def load(self, config: PipelineConfig, workdir: str, log: StepLog, read: Any = None) -> str:
        """Reads the table (and test table), checks the data contract, fingerprints the rows and logs them.

        Tables `read` already returned for this config are checked as they are, not read again.

        Returns:
            Path of the raw rows as Parquet in `workdir`.

        Raises:
            DataLoadError: A file cannot be read; the report is logged first.
            DataContractError: The rows break the contract; the report is logged first.
        """
        try:
            tables = read if read is not None else read_sources(config.data)
        except DataLoadError as exc:  # unreadable: the report still says which file and what to do
            log_contract(log, unreadable_report(exc))
            raise
        report = check_contract(config, *tables)
        log_contract(log, report)
        frame, test_rows = require_contract(report).frame, report.test_rows
        source = resolve_source(config.data.source)
        digest = fingerprint_frame(frame)
        log.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": source})
        log.counts({"rows": len(frame), "columns": frame.shape[1]}, prefix="data.")
        if test_rows:
            log.tags({"kerasflow.test_source": resolve_source(config.data.test_source)})
            log.counts({"test_rows": test_rows}, prefix="data.")
        log.dataset(frame, source=source, digest=digest, target=label_columns(config)[0][0])
        path = Path(workdir) / "raw.parquet"
        save_raw(frame, path, test_rows, dropped_metadata(report.dropped))
        return str(path)

    def profile_rows(self, config: PipelineConfig, read: Any = None) -> tuple[pd.DataFrame, int]:
        """The source table, and the test table after it (from `read`'s tables when given)."""
        source, test_table = read if read is not None else read_sources(config.data)
        if test_table is None:
            return source.frame, 0
        return pd.concat([source.frame, test_table.frame], ignore_index=True), len(test_table.frame)

    def check(self, config: PipelineConfig, raw_path: str) -> FileCheck:
        """Nothing beyond the expectation suite."""
        return FileCheck()

    def split(self, config: PipelineConfig, raw_path: str, workdir: str, log: StepLog) -> str:
        """Splits the rows with scikit-learn (the test table's rows, if any, are the test set).

        Logs `split.*` sizes and, for classification, `split/class_balance.json`.
        """
        labels = pd.read_parquet(raw_path, columns=[config.data.target])[config.data.target]  # the labels only
        classify = fit_labels(labels, config.data.task).task == "classification"
        split = split_rows(labels, config.split, classify=classify, test_rows=test_rows_of(raw_path))
        log.counts(split.sizes(), prefix="split.")
        if classify:
            log.json(class_balance(labels, split), "split/class_balance.json")
        return str(split.save(Path(workdir) / "split.json"))

    def fit_features(self, config: PipelineConfig, raw_path: str, split_path: str) -> Fitted:
        """Fits feature statistics and the label encoding on the training rows (constant columns left out).

        The training rows' drift reference is computed here too, while they are in memory (`reference_of`).
        """
        frame = pd.read_parquet(raw_path)
        train = frame.iloc[Split.load(split_path).train]
        d = config.data
        usable = frame.drop(columns=dropped_columns(raw_path))  # constant columns the data contract dropped
        numeric, categorical = select_columns(usable, d.target, d.features, d.categorical)
        features, labels = self.fit_columns(config, train, numeric, categorical, split_path)
        return Fitted(features, labels, {"task": labels.task, "numeric_columns": len(numeric),
                                         "categorical_columns": len(categorical), "classes": labels.classes,
                                         "loss": labels.output()[2], **labels.target_params()},
                      reference_of(config, train, features))

    def fit_columns(self, config: PipelineConfig, train: pd.DataFrame, numeric: list[str], categorical: list[str],
                    split_path: str) -> tuple[Any, Any]:
        """Fits the `FeatureSpec` and `LabelSpec` of the chosen columns on the training rows in memory."""
        d = config.data
        labels = fit_labels(train[d.target], d.task, d.label_encoding, config.preprocessing.target_transform)
        return fit_features(train, numeric, categorical, **preprocessing_options(config, train, labels)), labels

    def train(self, config: PipelineConfig, model: Any, raw_path: str, split_path: str, features: Any, labels: Any,
              *, refit: str = "train", epochs: int | None = None, on_epoch: EpochHook | None = None,
              checkpoint: str | Path | None = None) -> TrainingResult:
        """Fits on the split's rows as arrays (`kerasflow.training.rows.fit_on_split`)."""
        return fit_on_split(model, pd.read_parquet(raw_path), Split.load(split_path), features, labels,
                            config.training, refit=refit, epochs=epochs, on_epoch=on_epoch, checkpoint=checkpoint)

    def evaluate(self, config: PipelineConfig, raw_path: str, split_path: str, features_path: str,
                 labels_path: str, model_path: str | Path, out_dir: Path) -> tuple[Any, list[Path]]:
        """Scores the test rows in memory (`kerasflow.training.rows.evaluate_rows`)."""
        return evaluate_rows(config.evaluation, raw_path, split_path, features_path, labels_path, model_path, out_dir,
                             categorical=config.data.categorical)

    def baseline(self, config: PipelineConfig, raw_path: str, split_path: str, labels_path: str) -> Baseline:
        """HistGradientBoosting on the feature columns, or TF-IDF and a linear model on text columns.

        See `kerasflow.training.baseline.fit_baseline`.
        """
        return fit_baseline(config, raw_path, split_path, labels_path)

    def checkpoint_key(self, raw_path: str | Path) -> str:
        """The fingerprint of the raw rows."""
        return fingerprint_frame(pd.read_parquet(raw_path))


def log_contract(log: StepLog, report: ContractReport) -> None:
    """Logs the contract report (`contract/report.json` and `.txt`) and shows its warnings.

    Args:
        log: Where the step logs (the pipeline's MLflow run and the terminal).
        report: The contract report.
    """
    log.json(report.as_dict(), "contract/report.json")
    log.text(report.summary(), "contract/report.txt")
    log.counts({"errors": len(report.errors), "warnings": len(report.warnings)}, prefix="contract.")
    for finding in report.warnings:
        log.warning(str(finding))
