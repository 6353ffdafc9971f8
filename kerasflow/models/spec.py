"""`ModelSpec`: everything `kerasflow.models.families.build_model` needs apart from hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.schemas.config import ModelConfig, OptimizerConfig


@dataclass
class ModelSpec:
    """Everything `build_model` needs, apart from hyperparameters.

    Args:
        model: The `model` config section.
        optimizer: The `training.optimizer` config section.
        features: Fitted input spec.
        labels: Label spec; a `kerasflow.features.labels.OutputsSpec` for a
            functional model with several outputs.
        search_space: Hyperparameter definitions by dotted name (e.g.
            `model.dropout`); empty outside a tuner search.
        seed: Seed of the weight initializers.
    """

    model: ModelConfig
    optimizer: OptimizerConfig
    features: FeatureSpec
    labels: LabelSpec
    search_space: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
