"""Config model of the `dense` family: a stack of dense layers on the tabular inputs.

The `model` section of a table's pipeline, and the section a config without
`model.kind` gets:

    model: {hidden_units: [64, 32], activation: relu, dropout: 0.2, l2: 1e-4}

A search may vary the number of layers (`model.layers`), their width
(`model.units`, or `model.units_<i>` for layer i) and the other settings
listed in `DENSE_TUNABLE`.

This module imports only `kerasflow.schemas.base`, so `kerasflow.schemas.families` can import it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from kerasflow.schemas.base import (
    NUMERIC_EMBEDDING_TUNABLE,
    Activation,
    Fraction,
    InitializerConfig,
    PositiveInt,
    Section,
)

UNITS_PATTERN = re.compile(r"^model\.units_(\d+)$")
MAX_LAYERS = 16
_LAYERS = Annotated[int, Field(ge=1, le=MAX_LAYERS)]
_NON_NEGATIVE = Annotated[float, Field(ge=0)]

# Tunable names of the `dense` family: name -> (accepted parameter types, value type).
DENSE_TUNABLE: dict[str, tuple[tuple[str, ...], Any]] = {
    "model.layers": (("int", "choice"), _LAYERS),
    "model.units": (("int", "choice"), PositiveInt),
    "model.activation": (("choice",), Activation),
    "model.l1": (("float", "choice"), _NON_NEGATIVE),
    "model.l2": (("float", "choice"), _NON_NEGATIVE),
    "model.use_dropout": (("boolean",), bool),
    "model.dropout": (("float", "choice"), Fraction),
    "model.batch_norm": (("boolean",), bool),
    **NUMERIC_EMBEDDING_TUNABLE,
}
# `model.units_<i>`: the units of hidden layer i (i below `MAX_LAYERS`).
UNITS_RULE: tuple[tuple[str, ...], Any] = (("int", "choice"), PositiveInt)


class DenseModelConfig(Section):
    """The network architecture of the `dense` family.

    Args:
        kind: `dense` (default).
        hidden_units: Units of each hidden layer. Default [64].
        activation: Hidden-layer activation. Default `relu`.
        initializer: Kernel initializer of every hidden layer.
        l1: L1 kernel penalty. Default 0.
        l2: L2 kernel penalty. Default 0.
        dropout: Dropout rate after each hidden layer. Default 0.
        batch_norm: Batch normalization after each hidden layer. Default false.
    """

    kind: Literal["dense"] = "dense"
    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [64])
    activation: Activation = "relu"
    initializer: InitializerConfig = Field(default_factory=InitializerConfig)
    l1: Annotated[float, Field(ge=0)] = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0
    dropout: Fraction = 0.0
    batch_norm: bool = False


def units_rule(name: str) -> tuple[tuple[str, ...], Any] | None:
    """The rule of `model.units_<i>` (i below `MAX_LAYERS`), or None for any other name."""
    match = UNITS_PATTERN.match(name)
    return UNITS_RULE if match and int(match.group(1)) < MAX_LAYERS else None


def dense_space_problems(model: DenseModelConfig, space: dict[str, Any]) -> list[tuple[str, str]]:
    """Search parameters a dense model never reads: `model.units_<i>` beyond its fixed layers.

    Args:
        model: The dense `model` section.
        space: The validated `tuning.space`.

    Returns:
        `(path below tuning, message)` per problem.
    """
    layers = len(model.hidden_units)
    problems = []
    for name, param in space.items():
        match = UNITS_PATTERN.match(name)
        if match and param.parent is None and int(match.group(1)) >= layers:
            problems.append((f"space.{name}", f"never used: the model has {layers} hidden layers "
                                              "(model.hidden_units) and model.layers is not searched"))
    return problems + dropout_switch_problems(model.dropout, space)


def dropout_switch_problems(rate: float, space: dict[str, Any]) -> list[tuple[str, str]]:
    """`model.use_dropout` searched while the rate it switches on is 0 and not searched.

    Args:
        rate: The family's configured `model.dropout`.
        space: The validated `tuning.space`.

    Returns:
        `(path below tuning, message)` per problem.
    """
    if "model.use_dropout" in space and "model.dropout" not in space and rate == 0:
        return [("space.model.use_dropout", "changes nothing: model.dropout is 0 and not "
                                            "searched; search model.dropout too or set it")]
    return []
