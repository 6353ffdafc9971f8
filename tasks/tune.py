"""Hyperparameter search spaces declared in config, drawn through Keras Tuner."""

from __future__ import annotations

from typing import Any


def declare(hp: Any, name: str, param: Any, default: Any) -> Any:
    """Declares one searched parameter on `hp` and returns its current value.

    Args:
        hp: A `keras_tuner.HyperParameters`.
        name: Dotted parameter name, e.g. `model.dropout`.
        param: The parameter's definition (a dict or pydantic model with a
            `type` of `int`, `float`, `choice`, `boolean` or `fixed`).
        default: The config's value, used as the search's default.

    Returns:
        The value for this trial.
    """
    spec = param if isinstance(param, dict) else param.model_dump()
    if name in hp.values:
        return hp.get(name)
    kind = spec["type"]
    if kind == "fixed":
        return hp.Fixed(name, spec["value"])
    if kind == "int":
        return hp.Int(name, spec["min"], spec["max"], step=spec.get("step") or 1, default=_within(default, spec))
    if kind == "float":
        return hp.Float(name, spec["min"], spec["max"], step=spec.get("step"),
                        sampling=spec.get("sampling", "linear"), default=_within(default, spec))
    if kind == "boolean":
        return hp.Boolean(name, default=bool(default))
    values = spec["values"]
    return hp.Choice(name, values, default=default if default in values else values[0])


def _within(default: Any, spec: dict[str, Any]) -> Any:
    if isinstance(default, (int, float)) and spec["min"] <= default <= spec["max"]:
        return default
    return None
