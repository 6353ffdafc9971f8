"""The model families, by `model.kind`: each one's builder and every family-specific behaviour, as hooks.

`build_model(hp, spec)` is used both by the tuner search and by final
training: with `hp=None` every value comes from the config; with a Keras
Tuner `HyperParameters` object, the parameters declared in the config's
search space are drawn from `hp` instead. It builds whichever family is
registered for `spec.model.kind`.

Each family is one module of `kerasflow.models` that ends with

    register_family("kind", build=build_kind, default_values=default_values, ...)

and is imported by `kerasflow/models/__init__.py`, so importing any module
of the package registers every family. Its config section is registered in
`kerasflow.schemas.families`. Every hook but `build` has a default that
describes a plain tabular family (the columns of the table, one encoded
input, one label), so a simple family gives its builder and its config
model only. Code outside `kerasflow.models` asks the family through the
functions below and never branches on `model.kind`; the hooks return plain
facts (columns, config sections, fitted specs), so the layers above
(`data`, `training`, `lint`, `tasks`) use them without this package
importing any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from kerasflow.models.hyper import numeric_embedding, optimizer_defaults
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import ModelSection, PipelineConfig
from kerasflow.schemas.families import family_config
from kerasflow.schemas.images import BaseModelConfig, FineTuneConfig


@dataclass(frozen=True)
class TextSection:
    """The text encoder section of a family that reads text columns.

    Args:
        path: Config path of the section, with its trailing dot: `model.`
            or `model.text.`.
        encoder: The section (a `TextEncoderConfig`: `vectorize`,
            `embedding`, `encoder`, ...).
        columns: The text columns the model reads, in config order.
    """

    path: str
    encoder: Any
    columns: list[str]


@dataclass(frozen=True)
class WeightPenalty:
    """The L1/L2 penalty of a family's hidden `Dense` kernels, for the lint.

    Args:
        l1: The L1 strength (`model.l1`).
        l2: The L2 strength (`model.l2`).
        hidden_units: Widths of the penalized hidden layers.
        initializer: Their kernel initializer section.
    """

    l1: float
    l2: float
    hidden_units: list[int]
    initializer: Any


def _none(*_: Any) -> None:
    return None


def _empty(*_: Any) -> list[Any]:
    return []


def _no_description(_: dict[str, Any]) -> str:
    return ""


def _same_training(training: dict[str, Any], _: Any) -> dict[str, Any]:
    return training


def learning_rate_space(config: PipelineConfig, low: float = 1 / 3, high: float = 3.0) -> dict[str, Any]:
    """The learning rate searched on a log scale around the config's own (`training.optimizer.learning_rate`).

    Every family's default space searches it (it matters most, Gorishniy et
    al. 2022); a family without a `default_space` of its own searches it
    alone.

    Args:
        config: The pipeline config, with its defaults in place.
        low: Smallest value, as a multiple of the config's rate. Default 1/3.
        high: Largest value, as a multiple of the config's rate. Default 3.

    Returns:
        `{"training.optimizer.learning_rate": {type: float, min, max, sampling: log}}`.
    """
    rate = config.training.optimizer.learning_rate
    return {"training.optimizer.learning_rate": {"type": "float", "min": float(f"{rate * low:.3g}"),
                                                 "max": float(f"{min(rate * high, 10.0):.3g}"), "sampling": "log"}}


def _learning_rate_only(config: PipelineConfig, _: Any) -> dict[str, Any]:
    return learning_rate_space(config)


def _no_preprocessing(*_: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Family:
    """One model family and its hooks.

    Args:
        kind: The `model.kind` it builds.
        build: `build(hp, spec)`: builds and compiles the `keras.Model`.
        default_values: `default_values(model)`: the config value of every
            tunable name the family reads from the `model` section.
        tabular: Its inputs are the table's columns (`data.features`, or
            every column but the targets), each encoded on its own: the data
            contract drops constant columns and the lint profiles the input
            width. Default true.
        feature_columns: `(model)` -> `(features, categorical)`: the
            columns it reads, when they come from the `model` section (text
            and functional models); None (default) reads `data.features`.
        fit_inputs: `(config, train rows)` -> a
            `kerasflow.features.outputs.FittedInputs`, when the family fits
            more than the tabular feature and label specs (vocabularies,
            several outputs); None (default): the tabular fit.
        text: `(model)` -> its `TextSection`, or None (default).
        outputs: `(model)` -> its listed output heads (`OutputConfig`s),
            or None (default): one head on `data.target`.
        pretrained_base: `(model)` -> its pretrained base section
            (`BaseModelConfig`: `source`, `origin`, `fine_tune`), or None.
        unfreeze: `(keras model, layers)` -> names of the layers it made
            trainable for the fine-tuning phase; None: no such phase.
        hidden_layers: `(model)` -> `[(config path, units)]` of the hidden
            `Dense` widths it fixes, for the lint.
        dropouts: `(model)` -> `[(config path, rate)]`, for the lint.
        weight_penalty: `(model)` -> its `WeightPenalty`, or None.
        default_section: `(config, data profile)` -> the `model` section
            chosen for a config without one, or None when the family does
            not suit the data; families are asked by `default_rank`.
        default_rank: Order in which `default_section` is asked (lowest first).
        default_training: `(training section, data profile)` -> the
            `training` section chosen for a config without one whose model
            is of this family, from the one chosen for any model (the
            default keeps it).
        describe_section: `(section)` -> a few words about a chosen
            section (e.g. its widths), for the run's log.
        default_space: `(config, data profile)` -> the `tuning.space` of a
            config whose `tuning` section leaves it out (`{dotted name:
            parameter}`, as a config writes it), given the config with its
            other defaults in place; the default searches the learning rate
            alone (`learning_rate_space`).
        default_preprocessing: `(config, data profile)` -> `preprocessing`
            values that go with the family's chosen `model` section (e.g.
            the numeric embedding); only asked when the model section is
            chosen, and values the file sets win. Default none.
        kfold_below_rows: A config without a `split` whose table has fewer
            rows is cross-validated in 5 folds ending with their ensemble
            (`kerasflow.lint.defaults.default_split`). Default 2,000: above
            that the five fits cost more than they add for most families.
    """

    kind: str
    build: Callable[[Any, ModelSpec], Any]
    default_values: Callable[[Any], dict[str, Any]]
    tabular: bool = True
    feature_columns: Callable[[Any], tuple[list[str], list[str]]] | None = None
    fit_inputs: Callable[[PipelineConfig, Any], Any] | None = None
    text: Callable[[Any], TextSection | None] = _none
    outputs: Callable[[Any], list[Any] | None] = _none
    pretrained_base: Callable[[Any], BaseModelConfig | None] = _none
    unfreeze: Callable[[Any, int], list[str]] | None = None
    hidden_layers: Callable[[Any], list[tuple[str, int]]] = _empty
    dropouts: Callable[[Any], list[tuple[str, float]]] = _empty
    weight_penalty: Callable[[Any], WeightPenalty | None] = _none
    default_section: Callable[[PipelineConfig, Any], dict[str, Any] | None] = _none
    default_rank: int = 100
    default_training: Callable[[dict[str, Any], Any], dict[str, Any]] = _same_training
    describe_section: Callable[[dict[str, Any]], str] = _no_description
    default_space: Callable[[PipelineConfig, Any], dict[str, Any]] = _learning_rate_only
    default_preprocessing: Callable[[PipelineConfig, Any], dict[str, Any]] = _no_preprocessing
    kfold_below_rows: int = 2000

    @property
    def streams(self) -> bool:
        """It trains on a streamed table (`data.streaming`), as its config registration says."""
        return family_config(self.kind).streams


_FAMILIES: dict[str, Family] = {}


def register_family(kind: str, *, build: Callable[[Any, ModelSpec], Any],
                    default_values: Callable[[Any], dict[str, Any]], **hooks: Any) -> Family:
    """Registers the model family of a `model.kind`.

    Args:
        kind: The `model.kind` the family builds.
        build: Builds and compiles the model from `(hp, spec)`.
        default_values: Returns `{dotted name: config value}` of the
            family's tunable names, given the `model` section.
        **hooks: Any other field of `Family` (`tabular`, `feature_columns`,
            `fit_inputs`, `text`, `outputs`, ...); left out, each keeps its
            tabular default.

    Returns:
        The registered `Family`.

    Raises:
        ValueError: Another module already registered `kind`.
        TypeError: A hook is not a field of `Family`.
    """
    known = _FAMILIES.get(kind)
    if known is not None and known.build.__module__ != build.__module__:
        raise ValueError(f"model kind {kind!r} is already registered by {known.build.__module__}")
    _FAMILIES[kind] = Family(kind=kind, build=build, default_values=default_values, **hooks)
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


def families() -> list[Family]:
    """The registered families, in registration order."""
    return list(_FAMILIES.values())


def family_of(model: ModelSection) -> Family:
    """Returns the family of a `model` config section."""
    return family(model.kind)


def build_model(hp: Any, spec: ModelSpec) -> Any:
    """Builds and compiles the network of a spec with its family's builder.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `ModelSpec`.

    Returns:
        A compiled `keras.Model` that takes the raw named inputs.

    Raises:
        BaseModelError: A model's pretrained base cannot be used.
    """
    return family(spec.model.kind).build(hp, spec)


def family_defaults(model: ModelSection) -> dict[str, Any]:
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
        `{dotted name: value}`: the family's `model.*` names, the
        `training.optimizer.*` names and `preprocessing.numeric_embedding`.
    """
    return {**family_defaults(spec.model), **optimizer_defaults(spec.optimizer),
            "preprocessing.numeric_embedding": numeric_embedding(None, spec)}


def fit_model_inputs(config: PipelineConfig, train: Any) -> Any:
    """Fits the inputs and labels of a model whose family fits more than the tabular specs.

    Args:
        config: The pipeline config.
        train: The training rows only.

    Returns:
        The `kerasflow.features.outputs.FittedInputs`.

    Raises:
        ValueError: The family has no `fit_inputs` hook (it fits the
            tabular feature and label specs).
        FeatureError: Columns are missing, an output target is also an
            input, or a text column has no tokens.
    """
    fit = family_of(config.model).fit_inputs
    if fit is None:
        raise ValueError(f"model kind {config.model.kind!r} fits the tabular feature and label specs")
    return fit(config, train)


def model_outputs(model: ModelSection) -> list[Any] | None:
    """The output heads a `model` section lists, or None (one head on `data.target`)."""
    return family_of(model).outputs(model)


def pretrained_base(model: ModelSection) -> BaseModelConfig | None:
    """The pretrained base section a `model` section starts from, or None."""
    return family_of(model).pretrained_base(model)


def fine_tuning(model: ModelSection) -> FineTuneConfig | None:
    """The fine-tuning phase settings (`layers`, `learning_rate`, `epochs`) of a `model` section, or None."""
    base = pretrained_base(model)
    return base.fine_tune if base is not None and family_of(model).unfreeze is not None else None


def text_section(model: ModelSection) -> TextSection | None:
    """The text encoder section of a `model` section, or None."""
    return family_of(model).text(model)


def power_of_two(value: float, low: int, high: int) -> int:
    """The power of two at or above `value`, clipped to `[low, high]` (widths and batch sizes)."""
    return int(min(max(2 ** math.ceil(math.log2(max(value, 1))), low), high))
