"""The config models of the model families: one list, from which the `model` union and `TUNABLE` are built.

Each family's `model` section is a pydantic model with a `kind: Literal[...]`
field, in a module of its own (`schemas/dense.py`, `schemas/images.py`,
`schemas/text.py`, `schemas/functional.py`). `register_family_config` adds
it to the list, with the search-space names it reads and the config facts
the pipeline checks need. `kerasflow.schemas.config` builds the `model`
union of `PipelineConfig` from the list, and rebuilds it when a family
registers later (a plugin, or a test module that defines a family of its
own); `kerasflow.schemas.tuning` checks search spaces against `TUNABLE`.

The first four built-in families are registered at the end of this module,
in the order a search-space name shared by several keeps the first one's
rule (and `dense` is the default kind); later ones (`schemas/tabm.py`)
register themselves and are imported by `schemas/__init__.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Union

from pydantic import BaseModel, Field

from kerasflow.schemas.base import OptimizerName, Section
from kerasflow.schemas.dense import (
    DENSE_TUNABLE,
    DenseModelConfig,
    dense_space_problems,
    dropout_switch_problems,
    units_rule,
)
from kerasflow.schemas.functional import FUNCTIONAL_TUNABLE, FunctionalModelConfig
from kerasflow.schemas.images import CNN_TUNABLE, CNNConfig, fine_tune_problems
from kerasflow.schemas.text import TEXT_TUNABLE, TextModelConfig

Rule = tuple[tuple[str, ...], Any]
Problems = list[tuple[str, str]]

# Tunable names every family reads: name -> (accepted parameter types, value type).
OPTIMIZER_TUNABLE: dict[str, Rule] = {
    "training.optimizer.name": (("choice",), OptimizerName),
    "training.optimizer.learning_rate": (("float", "choice"), Annotated[float, Field(gt=0, le=10)]),
    "training.optimizer.momentum": (("float", "choice"), Annotated[float, Field(ge=0, lt=1)]),
}


def _no_problems(*_: Any) -> Problems:
    return []


@dataclass(frozen=True)
class FamilyConfig:
    """The config side of one model family.

    Args:
        model: Its `model` section: a pydantic model whose `kind` field is
            a `Literal` of the family's kind.
        tunables: `{dotted name: (accepted parameter types, value type)}`
            of the search-space names its builder reads.
        tunable_rule: The rule of names matched by a pattern rather than
            listed (the dense family's `model.units_<i>`), or None.
        pattern_names: How those pattern names are shown (`model.units_<i>`).
        space_problems: `(model section, tuning.space)` -> `(path below
            tuning, message)` pairs: searched names the model never reads.
        config_problems: `(PipelineConfig)` -> `(dotted path, message)`
            pairs: rules between the family's section and other sections.
        streams: It trains on a streamed table (`data.streaming`).
        images: It is the model of image data (`data.image`), chosen when
            a config with image data has no `model` section.
    """

    model: type[BaseModel]
    tunables: dict[str, Rule] = field(default_factory=dict)
    tunable_rule: Callable[[str], Rule | None] | None = None
    pattern_names: tuple[str, ...] = ()
    space_problems: Callable[[Any, dict[str, Any]], Problems] = _no_problems
    config_problems: Callable[[Section], Problems] = _no_problems
    streams: bool = False
    images: bool = False

    @property
    def kind(self) -> str:
        """The `model.kind` of the family."""
        return kind_of(self.model)


_FAMILIES: dict[str, FamilyConfig] = {}
_LISTENERS: list[Callable[[], None]] = []
# Every tunable name, built from the families (first registration wins) and the optimizer's names.
TUNABLE: dict[str, Rule] = {}


def kind_of(model: type[BaseModel]) -> str:
    """The `kind` a family's config model declares (its `Literal` value).

    Raises:
        ValueError: The model has no `kind: Literal["..."]` field.
    """
    kind = model.model_fields.get("kind")
    values = getattr(kind.annotation, "__args__", ()) if kind is not None else ()
    if len(values) != 1 or not isinstance(values[0], str):
        raise ValueError(f"{model.__name__} needs a field kind: Literal['<kind>'] naming its family")
    return values[0]


def register_family_config(model: type[BaseModel], *, tunables: dict[str, Rule] | None = None,
                           tunable_rule: Callable[[str], Rule | None] | None = None,
                           pattern_names: tuple[str, ...] = (),
                           space_problems: Callable[[Any, dict[str, Any]], Problems] = _no_problems,
                           config_problems: Callable[[Section], Problems] = _no_problems,
                           streams: bool = False, images: bool = False) -> FamilyConfig:
    """Adds a family's config model to the list the `model` union and `TUNABLE` are built from.

    Args:
        model: The family's `model` section (see `FamilyConfig`).
        tunables: Its search-space names and rules. Default none.
        tunable_rule: Rule of pattern-matched names. Default none.
        pattern_names: How the pattern names are shown. Default none.
        space_problems: Checks a search space against the section.
        config_problems: Checks the section against the other sections.
        streams: It trains on streamed tables. Default false.
        images: It is the model of image data. Default false.

    Returns:
        The registered `FamilyConfig`.

    Raises:
        ValueError: The model declares no kind, or another model already
            registered its kind.
    """
    entry = FamilyConfig(model, dict(tunables or {}), tunable_rule, pattern_names, space_problems,
                         config_problems, streams, images)
    known = _FAMILIES.get(entry.kind)
    if known is not None and (known.model.__module__, known.model.__qualname__) != (model.__module__,
                                                                                    model.__qualname__):
        raise ValueError(f"model kind {entry.kind!r} is already registered by {known.model.__module__}")
    _FAMILIES[entry.kind] = entry
    _rebuild_tunables()
    for listener in _LISTENERS:
        listener()
    return entry


def family_configs() -> list[FamilyConfig]:
    """The registered families' config sides, in registration order."""
    return list(_FAMILIES.values())


def family_config(kind: str) -> FamilyConfig:
    """The config side of the family of a `model.kind`.

    Raises:
        ValueError: No family is registered for `kind`.
    """
    if kind not in _FAMILIES:
        raise ValueError(f"no model family is registered for kind {kind!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[kind]


def model_union() -> Any:
    """The type of the `model` section: the registered families' models, told apart by `kind`."""
    members = tuple(entry.model for entry in _FAMILIES.values())
    return Annotated[Union[members], Field(discriminator="kind")]


def default_kind() -> str:
    """The kind of a `model` section that names none: the first registered family (`dense`)."""
    return next(iter(_FAMILIES))


def image_kind() -> str | None:
    """The kind of the family that models image data, chosen when a config has no `model` section."""
    return next((kind for kind, entry in _FAMILIES.items() if entry.images), None)


def on_change(listener: Callable[[], None]) -> None:
    """Calls `listener()` after every later registration (`kerasflow.schemas.config` rebuilds its union)."""
    _LISTENERS.append(listener)


def _rebuild_tunables() -> None:
    table: dict[str, Rule] = {}
    for entry in _FAMILIES.values():
        table.update({name: rule for name, rule in entry.tunables.items() if name not in table})
    TUNABLE.clear()
    TUNABLE.update({**table, **OPTIMIZER_TUNABLE})


# The built-in families. A name shared by several keeps the first family's rule.
register_family_config(DenseModelConfig, tunables=DENSE_TUNABLE, tunable_rule=units_rule,
                       pattern_names=("model.units_<i>",), space_problems=dense_space_problems, streams=True)
register_family_config(CNNConfig, tunables=CNN_TUNABLE, images=True, config_problems=fine_tune_problems,
                       space_problems=lambda model, space: dropout_switch_problems(model.dropout, space))
register_family_config(TextModelConfig, tunables=TEXT_TUNABLE,
                       space_problems=lambda model, space: dropout_switch_problems(model.dropout, space))
register_family_config(FunctionalModelConfig, tunables=FUNCTIONAL_TUNABLE,
                       space_problems=lambda model, space: dropout_switch_problems(model.dropout, space))
