"""Phase 2 of transfer learning: fine-tuning the top of a CNN's pretrained base.

Phase 1 (`kerasflow.models.cnn`) trains the head on a frozen base;
`fine_tune_saved_model` reloads that model, unfreezes the base's top layers
(`BatchNormalization` stays frozen) and trains on at a lower learning rate.
Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec, training_loss
from kerasflow.features.tabular import FeatureSpec
from kerasflow.models.families import family_of, fine_tuning
from kerasflow.models.hyper import build_optimizer
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.final import model_spec
from kerasflow.training.fitting import EpochHook, TrainingResult, set_seed
from kerasflow.training.rows import fit_on_split


def fine_tune_saved_model(config: PipelineConfig, raw_path: str, split_path: str, features_path: str, labels_path: str,
                          model_path: str | Path, *, refit: str = "train",
                          hyperparameters: dict[str, Any] | None = None,
                          on_epoch: EpochHook | None = None) -> tuple[TrainingResult, list[str]]:
    """Phase 2 of transfer learning: unfreezes the base's top layers and trains on.

    Args:
        config: The pipeline config; `model.base.fine_tune` is set.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        features_path: The `ImageSpec` JSON.
        labels_path: The `LabelSpec` JSON.
        model_path: The phase-1 `.keras` file; overwritten with the result.
        refit: `train` (default) validates on the validation rows;
            `train+val` fits on all non-test rows for the phase's epochs.
        hyperparameters: Tuned values; the tuned optimizer name is kept.
        on_epoch: Per-epoch hook. Default none.

    Returns:
        `(result, unfrozen)`: the phase's `TrainingResult` and the names of
        the unfrozen layers.

    Raises:
        BaseModelError: The model has no pretrained base.
    """
    import keras

    tune = fine_tuning(config.model)
    frame, split = pd.read_parquet(raw_path), Split.load(split_path)
    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    set_seed(config.training.seed)
    model = keras.models.load_model(model_path, compile=False)
    unfrozen = family_of(config.model).unfreeze(model, tune.layers)
    name = (hyperparameters or {}).get("training.optimizer.name", config.training.optimizer.name)
    optimizer = config.training.optimizer.model_copy(update={"name": name, "learning_rate": tune.learning_rate})
    spec = replace(model_spec(config, features, labels), optimizer=optimizer)
    model.compile(optimizer=build_optimizer(None, spec), loss=training_loss(labels), metrics=labels.metrics())
    training = config.training.model_copy(update={"epochs": tune.epochs})
    result = fit_on_split(model, frame, split, features, labels, training, refit=refit, on_epoch=on_epoch)
    model.save(model_path)
    return result, unfrozen
