"""Shared building blocks of the config schema: the strict section base, value types and the several-problems error."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

Activation = Literal["relu", "leaky_relu", "prelu", "elu", "selu", "tanh", "sigmoid", "gelu", "swish", "linear"]
Initializer = Literal[
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "truncated_normal",
    "random_normal",
    "random_uniform",
    "orthogonal",
    "zeros",
    "ones",
]
OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam"]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
# How numeric columns enter a tabular network (`preprocessing.numeric_embedding`), and its search-space name,
# read by the families that build on `kerasflow.features.inputs` (`dense`, `tabm`).
NumericEmbedding = Literal["none", "periodic", "piecewise_linear"]
NUMERIC_EMBEDDING_TUNABLE = {"preprocessing.numeric_embedding": (("choice",), NumericEmbedding)}


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class InitializerConfig(Section):
    """A kernel initializer and its arguments.

    Args:
        name: Keras initializer name. Default `glorot_uniform`.
        mean: Mean for `random_normal` and `truncated_normal`. Default 0.
        stddev: Standard deviation for the normal initializers. Default 0.05.
        minval: Lower bound for `random_uniform`. Default -0.05.
        maxval: Upper bound for `random_uniform`. Default 0.05.
    """

    name: Initializer = "glorot_uniform"
    mean: float = 0.0
    stddev: Annotated[float, Field(gt=0)] = 0.05
    minval: float = -0.05
    maxval: float = 0.05


def problems_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """Builds one validation error that reports several problems, each on its own line.

    Args:
        problems: `(dotted path below the validated section, message)` pairs.

    Returns:
        An error whose type `problems` `kerasflow.schemas.config` expands line by line.
    """
    text = "; ".join(f"{where}: {message}" for where, message in problems)
    return PydanticCustomError("problems", "{text}", {"text": text, "problems": problems})
