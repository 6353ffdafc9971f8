"""The model families, by `model.kind`, and `build_model`, the one builder.

`build_model(hp, spec)` is used both by the tuner search and by final
training: with `hp=None` every value comes from the config; with a Keras
Tuner `HyperParameters` object, the parameters declared in the config's
search space are drawn from `hp` instead. It builds whichever family is
registered for `spec.model.kind`.

Each family is one module of `kerasflow.models` that ends with

    register_family("kind", build=build_kind, default_values=default_values)

and is imported by `kerasflow/models/__init__.py`, so importing any module
of the package registers every family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kerasflow.models.hyper import optimizer_defaults
from kerasflow.models.spec import ModelSpec


@dataclass(frozen=True)
class Family:
    """One model family.

    Args:
        kind: The `model.kind` it builds.
        build: `build(hp, spec)`: builds and compiles the `keras.Model`.
        default_values: `default_values(model)`: the config value of every
            tunable name the family reads from the `model` section.
    """

    kind: str
    build: Callable[[Any, ModelSpec], Any]
    default_values: Callable[[Any], dict[str, Any]]


_FAMILIES: dict[str, Family] = {}


def register_family(kind: str, *, build: Callable[[Any, ModelSpec], Any],
                    default_values: Callable[[Any], dict[str, Any]]) -> Family:
    """Registers the model family of a `model.kind`.

    Args:
        kind: The `model.kind` the family builds.
        build: Builds and compiles the model from `(hp, spec)`.
        default_values: Returns `{dotted name: config value}` of the
            family's tunable names, given the `model` section.

    Returns:
        The registered `Family`.

    Raises:
        ValueError: Another module already registered `kind`.
    """
    known = _FAMILIES.get(kind)
    if known is not None and known.build.__module__ != build.__module__:
        raise ValueError(f"model kind {kind!r} is already registered by {known.build.__module__}")
    _FAMILIES[kind] = Family(kind=kind, build=build, default_values=default_values)
    return _FAMILIES[kind]


def family(kind: str) -> Family:
    """Returns the registered family of a `model.kind`.

    Args:
        kind: The `model.kind`.

    Returns:
        The `Family`.

    Raises:
        ValueError: No family is registered for `kind`.
    """
    if kind not in _FAMILIES:
        raise ValueError(f"no model family is registered for kind {kind!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[kind]


def build_model(hp: Any, spec: ModelSpec) -> Any:
    """Builds and compiles the network of a spec with its family's builder.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `ModelSpec`.

    Returns:
        A compiled `keras.Model` that takes the raw named inputs.

    Raises:
        BaseModelError: A `cnn` model's pretrained base cannot be used.
    """
    return family(spec.model.kind).build(hp, spec)


def family_defaults(model: Any) -> dict[str, Any]:
    """Returns the config value of every tunable name of a `model` section, from its family.

    Args:
        model: The `model` config section.

    Returns:
        `{dotted name: value}`.
    """
    return family(model.kind).default_values(model)


def default_values(spec: ModelSpec) -> dict[str, Any]:
    """Returns the config value of every tunable parameter, as `build_model` uses it without a tuner.

    Args:
        spec: The `ModelSpec`.

    Returns:
        `{dotted name: value}`: the family's `model.*` names and the
        `training.optimizer.*` names.
    """
    return {**family_defaults(spec.model), **optimizer_defaults(spec.optimizer)}
