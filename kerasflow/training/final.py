"""Glue between files on disk and the model: partitions, final fit, test scoring.

Plain functions (no Prefect, no MLflow) shared by the training, tuning and
k-fold boundaries; the champion of a retrain is scored here too, exactly as
the challenger.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.data.split import Split
from kerasflow.data.stream import manifest_beside
from kerasflow.features.outputs import encode_targets, raw_targets
from kerasflow.features.tabular import FeatureSpec, LabelSpec, frame_to_inputs
from kerasflow.models.families import build_model
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import PipelineConfig, TrainingConfig
from kerasflow.training.distribute import distribution_scope
from kerasflow.training.evaluate import Evaluation, evaluate_heads, evaluate_model, save_reports
from kerasflow.training.fitting import EpochHook, TrainingResult, fit_model, set_seed, without_early_stopping


@dataclass
class Partition:
    """Model-ready arrays of one set of rows.

    Args:
        x: Named model inputs.
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
        A `Partition`; with several outputs (`OutputsSpec`), `y` is a dict
        and `raw_y` a frame, by head name.
    """
    part = frame.iloc[rows]
    target = raw_targets(part, labels)
    return Partition(x=frame_to_inputs(part, features), y=encode_targets(target, labels), raw_y=target)


def model_spec(config: PipelineConfig, features: FeatureSpec, labels: LabelSpec,
               search_space: dict[str, Any] | None = None) -> ModelSpec:
    """Assembles the `ModelSpec` of a pipeline.

    Args:
        config: The pipeline config.
        features: Fitted feature spec.
        labels: Label spec.
        search_space: Tuner search space by dotted name. Default none.

    Returns:
        The `ModelSpec`.
    """
    return ModelSpec(model=config.model, optimizer=config.training.optimizer, features=features,
                     labels=labels, search_space=search_space or {}, seed=config.training.seed)


def fit_final_model(config: PipelineConfig, raw_path: str, split_path: str, features_path: str,
                    labels_path: str, model_path: str | Path, *, hyperparameters: dict[str, Any] | None = None,
                    refit: str = "train", epochs: int | None = None,
                    on_epoch: EpochHook | None = None, checkpoint: str | Path | None = None) -> TrainingResult:
    """Builds, trains and saves the final model.

    Args:
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        features_path: Feature spec JSON.
        labels_path: Label spec JSON.
        model_path: Where to save the `.keras` file.
        hyperparameters: Fixed values for searched parameters. Default none.
        refit: `train` (default) fits on the training rows and validates on
            the validation rows; `train+val` fits on all non-test rows
            without validation, for `epochs` epochs.
        epochs: Epoch count for `train+val`. Default `training.epochs`.
        on_epoch: Per-epoch hook. Default none.
        checkpoint: Persistent folder of per-epoch checkpoints; an
            interrupted fit with the same folder resumes (see
            `kerasflow.training.resume`). Default none.

    Returns:
        The `TrainingResult`.
    """
    stream = manifest_beside(split_path)
    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    set_seed(config.training.seed)
    with distribution_scope(config.training.distribute):  # model, preprocessing layers and optimizer on the replicas
        model = build_model(fixed_hyperparameters(hyperparameters), model_spec(config, features, labels,
                                                                              search_space_of(hyperparameters)))
        if stream is not None:  # read batch by batch from the shards
            from kerasflow.training.stream import fit_stream_model

            result = fit_stream_model(config, stream, model, features, labels, on_epoch=on_epoch,
                                      checkpoint=checkpoint)
        else:
            result = fit_on_split(model, pd.read_parquet(raw_path), Split.load(split_path), features, labels,
                                  config.training, refit=refit, epochs=epochs, on_epoch=on_epoch,
                                  checkpoint=checkpoint)
    model.save(model_path)
    return replace(result, replicas=int(model.distribute_strategy.num_replicas_in_sync))


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


def evaluate_saved_model(config: PipelineConfig, raw_path: str, split_path: str, features_path: str,
                         labels_path: str, model_path: str, out_dir: Path) -> tuple[Any, list[Path]]:
    """Scores a saved model on the test rows and writes its reports.

    Args:
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        features_path: Feature spec JSON.
        labels_path: Label spec JSON.
        model_path: The `.keras` file.
        out_dir: Folder for reports and plots.

    Returns:
        `(evaluation, files)`.

    Raises:
        ValueError: The split has no test rows.
    """
    import keras

    import kerasflow.features.layers  # noqa: F401  (registers custom layers; deferred: imports Keras)

    stream = manifest_beside(split_path)
    if stream is not None:  # every test row, batch by batch from the shards
        from kerasflow.training.stream import evaluate_stream_model

        return evaluate_stream_model(config, stream, FeatureSpec.load(features_path), LabelSpec.load(labels_path),
                                     model_path, out_dir)
    split = Split.load(split_path)
    if not split.test:
        raise ValueError("the split has no test rows (split.test_fraction is 0); nothing to evaluate on")
    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    test = make_partition(pd.read_parquet(raw_path), split.test, features, labels)
    model = keras.models.load_model(model_path)
    if not isinstance(labels, LabelSpec):  # several outputs: each head scored on its own
        return evaluate_heads(model, test.x, test.raw_y, labels, test.y, out_dir,
                              reports=config.evaluation.classification_report)
    evaluation, predictions = evaluate_model(model, test.x, test.raw_y, labels, test.y)
    if not config.evaluation.classification_report:
        evaluation = Evaluation(metrics=evaluation.metrics)
    return evaluation, save_reports(evaluation, predictions, test.raw_y, out_dir)


def score_champion(config: Any, model_dir: str | Path, raw_path: str, split_path: str) -> dict[str, float]:
    """Scores a downloaded kerasflow model on the test rows, exactly as the challenger is scored.

    The champion keeps its own preprocessing and label encoding (its
    `features.json` and `labels.json`); the metrics, Keras's loss included,
    come from the same `evaluate_saved_model`.

    Args:
        config: The pipeline config.
        model_dir: The downloaded pyfunc model folder.
        raw_path: Raw rows (Parquet), including the label column.
        split_path: The challenger's split JSON (its test rows are used).

    Returns:
        The test metrics, named as the challenger's.

    Raises:
        FeatureError: The rows do not fit the champion (missing columns,
            unknown classes).
    """
    folder = Path(model_dir)
    files = [next(folder.rglob(pattern)) for pattern in ("features.json", "labels.json", "*.keras")]
    with tempfile.TemporaryDirectory() as reports:
        evaluation, _ = evaluate_saved_model(config, raw_path, split_path, *(str(f) for f in files), Path(reports))
    return dict(evaluation.metrics)


def fixed_hyperparameters(values: dict[str, Any] | None) -> Any:
    """Wraps fixed hyperparameter values so `build_model` can read them.

    Args:
        values: `{dotted_name: value}` or None.

    Returns:
        A `keras_tuner.HyperParameters` with each value fixed, or None.
    """
    if not values:
        return None
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def search_space_of(values: dict[str, Any] | None) -> dict[str, Any]:
    """Returns a search space in which every given name is fixed."""
    return {name: {"type": "fixed", "value": value} for name, value in (values or {}).items()}
