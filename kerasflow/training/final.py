"""Glue between files on disk and the model: the model spec, final fit, test scoring.

Plain functions (no Prefect, no MLflow) shared by the training, tuning and
k-fold boundaries; the champion of a retrain is scored here too, exactly as
the challenger. How the rows are read (a table in memory, a stream of
shards) is the data kind's (`kerasflow.training.kinds`).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.models.families import build_model
from kerasflow.models.spec import ModelSpec
from kerasflow.progress import status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.distribute import distribution_scope
from kerasflow.training.fitting import EpochHook, TrainingResult, set_seed
from kerasflow.training.kinds import kind_of


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
    kind = kind_of(config.data)
    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    set_seed(config.training.seed)
    with distribution_scope(config.training.distribute):  # model, preprocessing layers and optimizer on the replicas
        with status("building the model"):
            model = build_model(fixed_hyperparameters(hyperparameters), model_spec(config, features, labels,
                                                                                  search_space_of(hyperparameters)))
        with status("training the model"):
            result = kind.train(config, model, raw_path, split_path, features, labels, refit=refit, epochs=epochs,
                                on_epoch=on_epoch, checkpoint=checkpoint)
    with status("saving the model"):
        model.save(model_path)
    return replace(result, replicas=int(model.distribute_strategy.num_replicas_in_sync))


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
    import kerasflow.features.layers  # noqa: F401  (registers custom layers; deferred: imports Keras)

    return kind_of(config.data).evaluate(config, raw_path, split_path, features_path, labels_path, model_path,
                                         out_dir)


def score_champion(config: PipelineConfig, model_dir: str | Path, raw_path: str, split_path: str,
                   out_dir: str | Path | None = None) -> dict[str, float]:
    """Scores a downloaded kerasflow model on the test rows, exactly as the challenger is scored.

    The champion keeps its own preprocessing and label encoding (its
    `features.json` and `labels.json`); the metrics, Keras's loss included,
    come from the same `evaluate_saved_model`.

    Args:
        config: The pipeline config.
        model_dir: The downloaded pyfunc model folder.
        raw_path: Raw rows (Parquet), including the label column.
        split_path: The challenger's split JSON (its test rows are used).
        out_dir: Folder to keep its reports in (its per-row predictions,
            for a paired comparison). Default none: they are dropped.

    Returns:
        The test metrics, named as the challenger's.

    Raises:
        FeatureError: The rows do not fit the champion (missing columns,
            unknown classes).
    """
    folder = Path(model_dir)
    files = [next(folder.rglob(pattern)) for pattern in ("features.json", "labels.json", "*.keras")]
    if out_dir is not None:
        evaluation, _ = evaluate_saved_model(config, raw_path, split_path, *(str(f) for f in files), Path(out_dir))
        return dict(evaluation.metrics)
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
