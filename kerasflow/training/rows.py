"""Rows held in memory (a table, pixel table or image folder listing): partitions, the fit and test scoring.

Plain functions (no Prefect, no MLflow) used by the in-memory data kinds
(`kerasflow.training.kinds.table`) and by k-fold and tuning, which always
hold their rows in memory. An image folder's partition may instead hold its
file paths, read from disk batch by batch (`ImageSpec.streamed`,
`kerasflow.training.image_stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.holdout import rows_at
from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec
from kerasflow.features.outputs import encode_targets, raw_targets
from kerasflow.features.tabular import FeatureSpec, frame_to_inputs
from kerasflow.schemas.config import EvaluationConfig, TrainingConfig
from kerasflow.training.evaluate import (
    Evaluation,
    evaluate_heads,
    evaluate_model,
    head_metrics,
    save_reports,
    score_heads,
)
from kerasflow.training.fitting import EpochHook, TrainingResult, fit_model, without_early_stopping
from kerasflow.training.image_stream import is_streamed, streamed_inputs
from kerasflow.training.slices import evaluate_slices


@dataclass
class Partition:
    """Model-ready arrays of one set of rows.

    Args:
        x: Named model inputs (arrays), or `StreamedImages` of image files
            read from disk (`kerasflow.training.image_stream`).
        y: Encoded labels.
        raw_y: The original labels.
    """

    x: dict[str, np.ndarray]
    y: np.ndarray
    raw_y: pd.Series

    def __len__(self) -> int:
        return len(self.raw_y)


def make_partition(frame: pd.DataFrame, rows: list[int], features: FeatureSpec, labels: LabelSpec) -> Partition:
    """Selects rows and converts them to model inputs and encoded labels.

    Args:
        frame: Raw rows.
        rows: Positions to take.
        features: Fitted feature spec.
        labels: Label spec.

    Returns:
        A `Partition`; for an image spec that streams (`ImageSpec.streamed`),
        `x` is a `StreamedImages` of the rows' files, decoded from disk
        batch by batch, not arrays; with several outputs (`OutputsSpec`), `y` is a dict
        and `raw_y` a frame, by head name.
    """
    part = frame.iloc[rows]
    target = raw_targets(part, labels)
    x = streamed_inputs(part, features) if getattr(features, "streamed", False) else frame_to_inputs(part, features)
    return Partition(x=x, y=encode_targets(target, labels), raw_y=target)




def fit_on_split(model: Any, frame: pd.DataFrame, split: Split, features: FeatureSpec, labels: LabelSpec,
                 training: TrainingConfig, *, refit: str = "train", epochs: int | None = None,
                 on_epoch: EpochHook | None = None, checkpoint: str | Path | None = None) -> TrainingResult:
    """Fits a compiled model on a split's rows, with validation or on all non-test rows.

    Args:
        model: A compiled `keras.Model`.
        frame: All raw rows.
        split: The pipeline's split.
        features: Fitted feature spec.
        labels: Label spec.
        training: The `training` section.
        refit: `train` (default) fits on the training rows and validates on
            the validation rows; `train+val` (or a split without validation
            rows) fits on all non-test rows without early stopping.
        epochs: Epoch count for `train+val`. Default `training.epochs`.
        on_epoch: Per-epoch hook. Default none.
        checkpoint: Persistent folder of per-epoch checkpoints. Default none.

    Returns:
        The `TrainingResult`.
    """
    if refit == "train+val" or not split.val:
        train = make_partition(frame, sorted(split.train + split.val), features, labels)
        return fit_model(model, train.x, train.y, without_early_stopping(training), epochs=epochs, on_epoch=on_epoch,
                         checkpoint=checkpoint)
    train = make_partition(frame, split.train, features, labels)
    val = make_partition(frame, split.val, features, labels)
    return fit_model(model, train.x, train.y, training, validation=(val.x, val.y), on_epoch=on_epoch,
                     checkpoint=checkpoint)




def evaluate_rows(evaluation_section: EvaluationConfig, raw_path: str, split_path: str, features_path: str, labels_path: str,
                  model_path: str | Path, out_dir: Path, categorical: list[str] | None = None) -> tuple[Any, list[Path]]:
    """Scores a saved model on the test rows, read into memory, and writes its reports.

    Args:
        evaluation_section: The config's `evaluation` section.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        features_path: Feature spec JSON.
        labels_path: Label spec JSON.
        model_path: The `.keras` file.
        out_dir: Folder for reports and plots.
        categorical: `data.categorical` (numeric columns sliced by value).
            Default none.

    Returns:
        `(evaluation, files)`; with `evaluation.slices` configured, the
        evaluation also holds the slice table and the worst slices
        (`kerasflow.training.slices`).

    Raises:
        ValueError: The split has no test rows.
    """
    import keras  # deferred: importing Keras starts TensorFlow

    split = Split.load(split_path)
    if not split.test:
        raise ValueError("the split has no test rows (split.test_fraction is 0); nothing to evaluate on")
    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    sliced = bool(evaluation_section.slices)  # slices cut numeric columns at the training rows' quantiles
    frame = pd.read_parquet(raw_path) if sliced else rows_at(raw_path, split.test)  # else the test rows alone
    test = make_partition(frame, split.test if sliced else list(range(len(frame))), features, labels)
    model = keras.models.load_model(model_path)
    if not isinstance(labels, LabelSpec):  # several outputs: each head scored on its own
        evaluation, files = evaluate_heads(model, test.x, test.raw_y, labels, test.y, out_dir,
                                           reports=evaluation_section.classification_report)
    else:
        evaluation, predictions = evaluate_model(model, test.x, test.raw_y, labels, test.y)
        if not evaluation_section.classification_report:
            evaluation = Evaluation(metrics=evaluation.metrics)
        files = save_reports(evaluation, predictions, test.raw_y, out_dir)
    if not sliced:  # no slices: the training rows were not read (a million rows: 800k of them)
        return evaluation, files
    train = split.train or sorted(set(range(len(frame))) - set(split.test))  # k-fold: every non-test row
    evaluation = evaluate_slices(evaluation, evaluation_section, frame.iloc[split.test], frame.iloc[train],
                                 lambda mask: score_subset(model, test, labels, mask), categorical)
    return evaluation, files


def score_subset(model: Any, test: Partition, labels: Any, mask: np.ndarray) -> dict[str, float]:
    """Scores the rows of a partition a mask selects, with the metrics of the whole partition.

    Args:
        model: The trained model.
        test: The test partition.
        labels: Its `LabelSpec` (or `OutputsSpec`).
        mask: Booleans, one per row of `test`.

    Returns:
        The metrics by name, as `evaluate_model` (or, with several outputs,
        `score_heads`) names them.
    """
    x = test.x.take(mask) if is_streamed(test.x) else {name: values[mask] for name, values in test.x.items()}
    if not isinstance(labels, LabelSpec):
        y = {name: values[mask] for name, values in test.y.items()}
        evaluations, _ = score_heads(model, x, test.raw_y.iloc[mask], labels, y, reports=False)
        return head_metrics(evaluations)
    evaluation, _ = evaluate_model(model, x, test.raw_y.iloc[mask], labels, test.y[mask])
    return evaluation.metrics
