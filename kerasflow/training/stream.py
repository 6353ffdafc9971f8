"""Training and evaluation on a streamed table (`data.streaming: true`): `tf.data` pipelines over Parquet shards.

Each pipeline reads the shards batch by batch (`kerasflow.data.stream`),
keeps the rows of one partition of the hash split, converts them to the
model's named inputs exactly as an in-memory table is converted
(`frame_to_inputs`), and prefetches the next batches while the model trains.
Training rows are shuffled within each read batch (65,536 rows) with a seed
per epoch, and the batches are shuffled again in a small buffer. Memory holds
a few read batches, not the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from kerasflow.data.stream import TEST, TRAIN, VAL, StreamManifest, repaired_chunk, train_chunks
from kerasflow.features.labels import LabelSpec, decode_predictions, encode_labels
from kerasflow.features.tabular import (
    NUMERIC_INPUT,
    FeatureSpec,
    as_model_inputs,
    frame_to_inputs,
    inference_batch_size,
    input_name,
)
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.evaluate import Evaluation, classification_evaluation, regression_metrics, save_reports
from kerasflow.training.fitting import EpochHook, TrainingResult, best_epoch, build_callbacks
from kerasflow.training.resume import resume_callback

SHUFFLE_BATCHES = 16


def stream_dataset(config: PipelineConfig, manifest: StreamManifest, partition: int, features: FeatureSpec,
                   labels: LabelSpec, batch_size: int, *, shuffle: bool = False) -> Any:
    """Returns a `tf.data.Dataset` of `(inputs, labels)` batches of one partition of the stream.

    Args:
        config: The pipeline config (`preprocessing.non_finite`, `training.seed`).
        manifest: The stream, with its split rule.
        partition: `TRAIN`, `VAL` or `TEST` (`kerasflow.data.stream`).
        features: The fitted feature spec.
        labels: The label spec.
        batch_size: Rows per batch.
        shuffle: Shuffle the rows, differently every epoch. Default false.

    Returns:
        A prefetching dataset; each pass over it reads the shards again.
    """
    import tensorflow as tf

    columns = [*features.numeric, *features.categorical, labels.column]
    epochs = iter(range(1 << 30))

    def batches() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        rng = np.random.default_rng([config.training.seed, next(epochs)])
        for chunk in train_chunks(manifest, columns, partition):
            chunk = repaired_chunk(chunk, features.numeric, manifest.scan, config.preprocessing.non_finite)
            if shuffle:
                chunk = chunk.iloc[rng.permutation(len(chunk))]
            x, y = frame_to_inputs(chunk, features), encode_labels(chunk[labels.column], labels)
            for start in range(0, len(chunk), batch_size):
                yield {k: v[start:start + batch_size] for k, v in x.items()}, y[start:start + batch_size]

    dataset = tf.data.Dataset.from_generator(batches, output_signature=(_input_signature(features),
                                                                        _label_signature(labels)))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BATCHES, seed=config.training.seed)
    return dataset.prefetch(tf.data.AUTOTUNE)


def fit_stream_model(config: PipelineConfig, manifest: StreamManifest, model: Any, features: FeatureSpec,
                     labels: LabelSpec, *, on_epoch: EpochHook | None = None,
                     checkpoint: str | Path | None = None) -> TrainingResult:
    """Trains a compiled model on the stream's training rows, validating on its validation rows.

    Args:
        config: The pipeline config.
        manifest: The stream, with its split rule.
        model: The compiled `keras.Model` (built under the strategy's scope, if any).
        features: The fitted feature spec.
        labels: The label spec.
        on_epoch: Per-epoch hook. Default none.
        checkpoint: Persistent folder of checkpoints at epoch ends; an
            interrupted fit with the same folder resumes at its last
            checkpointed epoch (`kerasflow.training.resume`). Default none.

    Returns:
        The `TrainingResult`.
    """
    has_val = manifest.sizes.get("val_rows", 0) > 0
    batch = config.training.batch_size
    train = stream_dataset(config, manifest, TRAIN, features, labels, batch, shuffle=config.split.shuffle)
    val = stream_dataset(config, manifest, VAL, features, labels, max(batch, 1024)) if has_val else None
    callbacks = build_callbacks(config.training, on_epoch, has_val=has_val)
    resume = resume_callback(checkpoint, list(callbacks)) if checkpoint is not None else None
    history = model.fit(train, validation_data=val, epochs=config.training.epochs, verbose=0,
                        callbacks=[*callbacks, *([resume] if resume else [])]).history
    history = resume.history if resume else history
    history = {k: [float(v) for v in values] for k, values in history.items()}
    monitor = config.training.early_stopping.monitor if has_val else "loss"
    return TrainingResult(history=history, epochs_run=len(next(iter(history.values()), [])),
                          best_epoch=best_epoch(history, monitor))


def evaluate_stream_model(config: PipelineConfig, manifest: StreamManifest, features: FeatureSpec,
                          labels: LabelSpec, model_path: str, out_dir: Path) -> tuple[Evaluation, list[Path]]:
    """Scores a saved model on every test row of the stream and writes its reports.

    Args:
        config: The pipeline config.
        manifest: The stream, with its split rule.
        features: The feature spec.
        labels: The label spec.
        model_path: The `.keras` file.
        out_dir: Folder for reports and plots.

    Returns:
        `(evaluation, files)`, as `evaluate_saved_model` gives them.

    Raises:
        ValueError: The split has no test rows.
    """
    import keras

    import kerasflow.features.layers  # noqa: F401  (registers the custom layers)

    if not manifest.sizes.get("test_rows"):
        raise ValueError("the split has no test rows (split.test_fraction is 0); nothing to evaluate on")
    model = keras.models.load_model(model_path)
    loss = model.evaluate(stream_dataset(config, manifest, TEST, features, labels, 8192), verbose=0,
                          return_dict=True)["loss"]
    truth, predicted = [], []
    columns = [*features.numeric, *features.categorical, labels.column]
    for chunk in train_chunks(manifest, columns, TEST):
        chunk = repaired_chunk(chunk, features.numeric, manifest.scan, config.preprocessing.non_finite)
        inputs = as_model_inputs(frame_to_inputs(chunk, features))
        raw = model.predict(inputs, batch_size=inference_batch_size(inputs), verbose=0)
        predicted.append(decode_predictions(raw, labels))
        truth.append(chunk[labels.column].reset_index(drop=True))
    y, predictions = pd.concat(truth, ignore_index=True), pd.concat(predicted, ignore_index=True)
    if labels.task == "regression":
        evaluation = Evaluation(metrics={"loss": float(loss), **regression_metrics(
            y.to_numpy(dtype="float64"), predictions["prediction"].to_numpy())})
    else:
        evaluation = classification_evaluation(y.astype(str), predictions, labels, loss)
    if not config.evaluation.classification_report:
        evaluation = Evaluation(metrics=evaluation.metrics)
    return evaluation, save_reports(evaluation, predictions, y, out_dir)


def _input_signature(features: FeatureSpec) -> dict[str, Any]:
    import tensorflow as tf

    signature = {}
    if features.numeric:
        signature[NUMERIC_INPUT] = tf.TensorSpec((None, len(features.numeric)), tf.float32)
    for column in features.categorical:
        signature[input_name(column)] = tf.TensorSpec((None, 1), tf.string)
    return signature


def _label_signature(labels: LabelSpec) -> Any:
    import tensorflow as tf

    if labels.task == "regression" or labels.binary:
        return tf.TensorSpec((None,), tf.float32)
    if labels.encoding == "one_hot":
        return tf.TensorSpec((None, len(labels.classes)), tf.float32)
    return tf.TensorSpec((None,), tf.int32)


