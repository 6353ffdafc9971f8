"""`build_model` turns every documented config switch into real Keras layers."""

from __future__ import annotations

import pandas as pd
import pytest

from kerasflow.features.labels import fit_labels
from kerasflow.features.tabular import fit_features
from kerasflow.models.families import build_model
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import ModelConfig, OptimizerConfig

FRAME = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0], "y": ["p", "q", "r", "p"]})


def _model(optimizer: dict | None = None, **model):
    spec = ModelSpec(model=ModelConfig(**model), optimizer=OptimizerConfig(**(optimizer or {})),
                     features=fit_features(FRAME, ["a", "b"], []), labels=fit_labels(FRAME["y"]))
    return build_model(None, spec)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "prelu", "elu", "selu", "tanh", "sigmoid"])
def test_activations(activation: str) -> None:
    assert _model(activation=activation).get_layer(f"{activation}_0") is not None


def test_regularization_layers() -> None:
    model = _model(hidden_units=[8, 4], dropout=0.3, batch_norm=True, l1=0.01, l2=0.02,
                   initializer={"name": "truncated_normal", "mean": 0.0, "stddev": 0.1})
    names = [layer.name for layer in model.layers]
    assert {"dropout_0", "dropout_1", "batch_norm_0", "batch_norm_1"} <= set(names)
    dense = model.get_layer("dense_0")
    assert dense.kernel_regularizer.l1 == pytest.approx(0.01) and dense.kernel_regularizer.l2 == pytest.approx(0.02)
    assert type(dense.kernel_initializer).__name__ == "TruncatedNormal"


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizers(name: str) -> None:
    model = _model(optimizer={"name": name, "learning_rate": 0.01, "momentum": 0.9 if name == "sgd" else 0.0})
    assert type(model.optimizer).__name__.lower() == name
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
