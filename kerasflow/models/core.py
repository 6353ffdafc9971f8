"""Builds and compiles Keras models from config.

`build_model(hp, spec)` is the one builder used both by the tuner search and
by final training: with `hp=None` every value comes from the config; with a
Keras Tuner `HyperParameters` object, the parameters declared in the
config's search space are drawn from `hp` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kerasflow.schemas.config import InitializerConfig, ModelConfig, OptimizerConfig
from kerasflow.features.tabular import FeatureSpec, LabelSpec, build_input_layers

OUTPUT_SEED_OFFSET = 1000


@dataclass
class ModelSpec:
    """Everything `build_model` needs, apart from hyperparameters.

    Args:
        model: The `model` config section.
        optimizer: The `training.optimizer` config section.
        features: Fitted input spec.
        labels: Label spec; a `kerasflow.features.outputs.OutputsSpec` for a
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


def build_model(hp: Any, spec: ModelSpec) -> Any:
    """Builds and compiles the network for a spec.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `ModelSpec`.

    Returns:
        A compiled `keras.Model` that takes the raw named inputs.

    Raises:
        BaseModelError: A `cnn` model's pretrained base cannot be used.
    """
    if spec.model.kind == "cnn":  # images: augmentation, conv blocks or a pretrained base (tasks/cnn.py)
        from kerasflow.models.cnn import build_cnn

        return build_cnn(hp, spec)
    if spec.model.kind == "text":  # text column: vectorization, embedding, sequence encoders (tasks/sequence.py)
        from kerasflow.models.text import build_text_model

        return build_text_model(hp, spec)
    if spec.model.kind == "functional":  # several inputs/outputs, shared encoders (tasks/functional.py)
        from kerasflow.features.outputs import build_functional_model

        return build_functional_model(hp, spec)
    import keras

    inputs, x = build_input_layers(spec.features)
    x = _dense_body(x, hp, spec)
    units, activation, loss = spec.labels.output()
    # A seeded initializer: an unseeded one draws from Python's process-wide `random`,
    # which concurrent trainings (k-fold folds on threads) would interleave.
    kernel = keras.initializers.GlorotUniform(seed=spec.seed + OUTPUT_SEED_OFFSET)
    outputs = keras.layers.Dense(units, activation=activation, kernel_initializer=kernel, name="output")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow")
    model.compile(optimizer=build_optimizer(hp, spec), loss=loss, metrics=spec.labels.metrics())
    return model


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
    from kerasflow.training.tune import declare

    value = declare(hp, name, spec.search_space[name], default, space=spec.search_space)
    return default if value is None else value


def _dense_body(x: Any, hp: Any, spec: ModelSpec) -> Any:
    cfg = spec.model
    layers = choose(hp, spec, "model.layers", len(cfg.hidden_units))
    for i in range(layers):
        default_units = cfg.hidden_units[min(i, len(cfg.hidden_units) - 1)]
        units = choose(hp, spec, f"model.units_{i}", choose(hp, spec, "model.units", default_units))
        x = _dense_block(x, i, units, hp, spec)
    return x


def _dense_block(x: Any, i: int, units: int, hp: Any, spec: ModelSpec) -> Any:
    import keras

    cfg = spec.model
    activation = choose(hp, spec, "model.activation", cfg.activation)
    l1 = choose(hp, spec, "model.l1", cfg.l1)
    l2 = choose(hp, spec, "model.l2", cfg.l2)
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    x = keras.layers.Dense(
        units,
        kernel_initializer=build_initializer(cfg.initializer, spec.seed + i),
        kernel_regularizer=regularizer,
        name=f"dense_{i}",
    )(x)
    if choose(hp, spec, "model.batch_norm", cfg.batch_norm):
        x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
    x = _activation(activation, f"{activation}_{i}")(x)
    use_dropout = choose(hp, spec, "model.use_dropout", cfg.dropout > 0)
    dropout = choose(hp, spec, "model.dropout", cfg.dropout) if use_dropout else 0.0
    if dropout:
        x = keras.layers.Dropout(dropout, seed=spec.seed + i, name=f"dropout_{i}")(x)
    return x


def _activation(name: str, layer_name: str) -> Any:
    import keras

    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.1, name=layer_name)
    if name == "prelu":
        return keras.layers.PReLU(name=layer_name)
    return keras.layers.Activation(name, name=layer_name)
