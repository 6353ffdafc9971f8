"""Hyperparameter helpers shared by every model family.

A family reads each tunable value through `choose`: the config value, or,
inside a tuner search, the value `declare` draws from Keras Tuner for a
parameter of the config's `tuning.space` (inside the conditional scopes of
its parents). `build_optimizer`, `build_initializer` and `activation_layer`
turn config values into Keras objects; Keras is imported inside them, so
importing this module does not load TensorFlow.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import InitializerConfig, OptimizerConfig


def choose(hp: Any, spec: ModelSpec, name: str, default: Any) -> Any:
    """Returns a hyperparameter's value: searched if declared, else `default`.

    Args:
        hp: Hyperparameters or None.
        spec: The `ModelSpec` holding the search space.
        name: Dotted parameter name, e.g. `model.dropout`.
        default: The config value.

    Returns:
        The value to build with; `default` when the parameter is
        conditional and its condition does not hold.
    """
    if hp is None or name not in spec.search_space:
        return default
    value = declare(hp, name, spec.search_space[name], default, space=spec.search_space)
    return default if value is None else value


def numeric_embedding(hp: Any, spec: ModelSpec) -> str:
    """How the numeric columns enter a tabular network: the fitted spec's, or the searched value.

    Args:
        hp: Hyperparameters or None.
        spec: The `ModelSpec` (its feature spec carries `preprocessing.numeric_embedding`).

    Returns:
        `none`, `periodic` or `piecewise_linear`.
    """
    return choose(hp, spec, "preprocessing.numeric_embedding", getattr(spec.features, "numeric_embedding", "none"))


def numeric_embedding_space(config: Any, profile: Any) -> dict[str, Any]:
    """`preprocessing.numeric_embedding` searched over its three values, for a tabular family's default space.

    Periodic and piecewise-linear embeddings lift an MLP most on some sets
    and not on others (Gorishniy et al., NeurIPS 2022), so a search tries
    them; a table without numeric columns, or a config whose
    `preprocessing` section sets the encoding, does not search it.

    Args:
        config: The pipeline config, with its defaults in place.
        profile: Its data's profile (`numeric_std`: the numeric columns).

    Returns:
        `{"preprocessing.numeric_embedding": {type: choice, values}}`, or empty.
    """
    if not getattr(profile, "numeric_std", None) or "numeric_embedding" in config.preprocessing.model_fields_set:
        return {}
    return {"preprocessing.numeric_embedding": {"type": "choice", "values": ["none", "periodic", "piecewise_linear"]}}


def widths_around(width: int, below: int = 2, above: int = 1, cap: int = 1024) -> list[int]:
    """Powers-of-two steps around a width: `below` halvings and `above` doublings, at least 16 and at most `cap`.

    Args:
        width: The family's width as configured (or chosen by the defaults).
        below: Halvings of it to include. Default 2.
        above: Doublings of it to include. Default 1.
        cap: The widest value. Default 1024.

    Returns:
        The distinct widths, ascending, e.g. `[64, 128, 256, 512]` around 256.
    """
    return sorted({min(max(int(width * 2.0 ** step), 16), cap) for step in range(-below, above + 1)})


def declare(hp: Any, name: str, param: Any, default: Any, space: dict[str, Any] | None = None) -> Any:
    """Declares one searched parameter on `hp` and returns its current value.

    A parameter with a `parent` is declared inside Keras Tuner conditional
    scopes for its whole chain of parents, which are declared first if the
    builder has not drawn them yet.

    Args:
        hp: A `keras_tuner.HyperParameters`.
        name: Dotted parameter name, e.g. `model.dropout`.
        param: The parameter's definition (a dict or pydantic model with a
            `type` of `int`, `float`, `choice`, `boolean` or `fixed`).
        default: The config's value, used as the search's default.
        space: The whole search space, to look up parents. Default none.

    Returns:
        The value for this trial, or None when a condition does not hold.
    """
    spec = _as_dict(param)
    if name in hp.values:
        return hp.get(name)
    with contextlib.ExitStack() as scopes:
        for parent, values in _conditions(name, spec, space or {}):
            _ensure_declared(hp, parent, space or {})
            scopes.enter_context(hp.conditional_scope(parent, values))
        return _draw(hp, name, spec, default)


def declaration_order(space: dict[str, Any]) -> list[str]:
    """Returns the names of a search space, each after the parents it is conditioned on.

    Args:
        space: Parameter definitions by dotted name.

    Returns:
        The names, parents first.
    """
    return sorted(space, key=lambda n: len(_conditions(n, _as_dict(space[n]), space)))


def build_optimizer(hp: Any, spec: ModelSpec) -> Any:
    """Creates the configured optimizer.

    Args:
        hp: Hyperparameters or None.
        spec: The `ModelSpec`; `training.optimizer.*` may be searched.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    import keras

    cfg = spec.optimizer
    name = choose(hp, spec, "training.optimizer.name", cfg.name)
    lr = choose(hp, spec, "training.optimizer.learning_rate", cfg.learning_rate)
    momentum = choose(hp, spec, "training.optimizer.momentum", cfg.momentum)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=cfg.nesterov)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, momentum=momentum)
    classes = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
               "adagrad": keras.optimizers.Adagrad, "nadam": keras.optimizers.Nadam}
    return classes[name](learning_rate=lr)


def optimizer_defaults(cfg: OptimizerConfig) -> dict[str, Any]:
    """Returns the config value of every tunable optimizer name, as `build_optimizer` uses it without a tuner.

    Args:
        cfg: The `training.optimizer` section.

    Returns:
        `{dotted name: value}`.
    """
    return {"training.optimizer.name": cfg.name, "training.optimizer.learning_rate": cfg.learning_rate,
            "training.optimizer.momentum": cfg.momentum}


def build_initializer(cfg: InitializerConfig, seed: int) -> Any:
    """Creates a kernel initializer.

    Args:
        cfg: The initializer config.
        seed: Seed of random initializers.

    Returns:
        A `keras.initializers.Initializer`.
    """
    import keras

    init = keras.initializers
    if cfg.name == "truncated_normal":
        return init.TruncatedNormal(mean=cfg.mean, stddev=cfg.stddev, seed=seed)
    if cfg.name == "random_normal":
        return init.RandomNormal(mean=cfg.mean, stddev=cfg.stddev, seed=seed)
    if cfg.name == "random_uniform":
        return init.RandomUniform(minval=cfg.minval, maxval=cfg.maxval, seed=seed)
    if cfg.name in ("zeros", "ones"):
        return init.get(cfg.name)
    return init.get({"class_name": cfg.name, "config": {"seed": seed}})


def activation_layer(name: str, layer_name: str) -> Any:
    """Creates an activation layer: `LeakyReLU` and `PReLU` are layers of their own, the rest `Activation`.

    Args:
        name: Activation name from the config, e.g. `relu` or `leaky_relu`.
        layer_name: Name of the layer.

    Returns:
        A `keras.layers.Layer`.
    """
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=layer_name)
    if name == "prelu":
        return keras.layers.PReLU(name=layer_name)
    return keras.layers.Activation(name, name=layer_name)


def _as_dict(param: Any) -> dict[str, Any]:
    return dict(param) if isinstance(param, dict) else param.model_dump()


def _conditions(name: str, spec: dict[str, Any], space: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    chain = []
    parent, values = spec.get("parent"), spec.get("parent_values")
    while parent:
        chain.append((parent, list(values)))
        parent_spec = _as_dict(space[parent]) if parent in space else {}
        parent, values = parent_spec.get("parent"), parent_spec.get("parent_values")
    return list(reversed(chain))


def _ensure_declared(hp: Any, name: str, space: dict[str, Any]) -> None:
    try:
        hp.get(name)
    except KeyError:
        declare(hp, name, space[name], None, space)
    except ValueError:
        pass  # declared, but inactive in this trial


def _draw(hp: Any, name: str, spec: dict[str, Any], default: Any) -> Any:
    kind = spec["type"]
    if kind == "fixed":
        return hp.Fixed(name, spec["value"])
    if kind == "int":
        return hp.Int(name, spec["min"], spec["max"], step=spec.get("step") or 1,
                      sampling=spec.get("sampling", "linear"), default=_within(default, spec))
    if kind == "float":
        return hp.Float(name, spec["min"], spec["max"], step=spec.get("step"),
                        sampling=spec.get("sampling", "linear"), default=_within(default, spec))
    if kind == "boolean":
        return hp.Boolean(name, default=bool(default))
    values = spec["values"]
    return hp.Choice(name, values, default=default if default in values else values[0])


def _within(default: Any, spec: dict[str, Any]) -> Any:
    if isinstance(default, (int, float)) and not isinstance(default, bool) and spec["min"] <= default <= spec["max"]:
        return default
    return None
