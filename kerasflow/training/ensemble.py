"""The k fold models of a cross-validation, averaged inside one exported Keras model.

Every fold model takes the same raw inputs (its preprocessing layers hold
its own fold's statistics), so one functional model that feeds its inputs
to all of them and averages their outputs serves, batch-predicts and
exports exactly like a single model. Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def average_models(paths: list[str], out_path: str | Path) -> Path:
    """Saves one model whose outputs are the mean of the given models' outputs.

    Args:
        paths: Saved `.keras` models with the same inputs and outputs (the folds).
        out_path: Where to save the ensemble (`.keras`).

    Returns:
        `out_path`.

    Raises:
        ValueError: No models, or models whose input names differ.

    Example:

    ```python
    average_models(["fold-0/fold_model.keras", "fold-1/fold_model.keras"], "model.keras")
    ```
    """
    import keras

    import kerasflow.features.layers  # noqa: F401  (registers the custom layers the members hold)

    if not paths:
        raise ValueError("an ensemble needs at least one model")
    members = [keras.saving.load_model(path) for path in paths]
    names = [sorted(t.name for t in m.inputs) for m in members]
    if any(n != names[0] for n in names):
        raise ValueError(f"the models take different inputs: {names}")
    for index, member in enumerate(members):
        member.name = f"fold_{index}"  # unique layer names inside the ensemble
    inputs = {t.name: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in members[0].inputs}
    ensemble = keras.Model(inputs, _average([member(inputs) for member in members]), name="fold_ensemble")
    ensemble.compile(loss=members[0].loss, metrics=None)  # the loss makes `evaluate` comparable; nothing trains
    ensemble.save(out_path)
    return Path(out_path)


def _average(outputs: list[Any]) -> Any:
    """Averages the members' outputs: one tensor, or each head of a multi-output model by name or position."""
    import keras

    first = outputs[0]
    if len(outputs) == 1:
        return first
    if isinstance(first, dict):
        return {name: keras.layers.Average(name=name)([o[name] for o in outputs]) for name in first}
    if isinstance(first, (list, tuple)):
        return [keras.layers.Average()([o[i] for o in outputs]) for i in range(len(first))]
    return keras.layers.Average()(outputs)
