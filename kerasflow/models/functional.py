"""The `functional` model family: several input branches, several output heads, shared layers.

Tabular columns enter through `build_input_layers`, each text column as one
raw string input; text branches (optionally a segment of their column) run
through their own `TextEncoder`, or all through one shared encoder. The
branches are concatenated and pass a dense trunk that feeds one output, or
one output per head of an `OutputsSpec`. Inputs and labels are fitted by
`fit_functional_inputs` (through `kerasflow.features.outputs.fit_model_inputs`).
"""

from __future__ import annotations

from typing import Any

from kerasflow.features.inputs import build_input_layers
from kerasflow.features.labels import LabelSpec, inverse_target, training_loss
from kerasflow.features.outputs import fit_model_inputs
from kerasflow.features.tabular import select_columns, text_input_name
from kerasflow.models.families import TextSection, register_family
from kerasflow.models.hyper import build_optimizer, choose
from kerasflow.models.text import TextEncoder, encoder_defaults, text_input, text_specs
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.functional import FunctionalModelConfig


def build_functional_model(hp: Any, spec: Any) -> Any:
    """Builds and compiles a `functional` model.

    Tabular columns enter through `build_input_layers`, each text column as
    one raw string input; text branches (optionally a segment of their
    column) run through their own encoder, or all through one shared
    encoder; branches are concatenated, pass a dense trunk, and feed one
    output per head with the head's loss and loss weight.

    Args:
        hp: Keras Tuner hyperparameters, or None for config values.
        spec: The `ModelSpec`; `spec.model` is a `FunctionalModelConfig`.

    Returns:
        A compiled `keras.Model`; with listed outputs, its outputs are a
        dict by head name.
    """
    import keras

    cfg = spec.model
    inputs, parts = _branches(hp, spec)
    x = keras.layers.Concatenate(name="branches")(parts) if len(parts) > 1 else parts[0]
    x = _trunk(x, hp, spec)
    if isinstance(spec.labels, LabelSpec):
        units, activation, loss = spec.labels.output()
        outputs = inverse_target(keras.layers.Dense(units, activation=activation, name="output")(x), spec.labels)
        model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow_functional")
        model.compile(optimizer=build_optimizer(hp, spec), loss=training_loss(spec.labels), metrics=spec.labels.metrics())
        return model
    configs = {out.name: out for out in cfg.outputs}
    outputs, losses, weights, metrics = {}, {}, {}, {}
    for head in spec.labels.heads:
        h = x
        for i, units in enumerate(configs[head.name].hidden_units):
            h = keras.layers.Dense(units, activation=cfg.activation, name=f"{head.name}_dense_{i}")(h)
        units, activation, losses[head.name] = head.labels.output()
        if head.labels.task == "regression":  # learn a standardized target, answer in label units
            h = keras.layers.Dense(units, activation=activation, name=f"{head.name}_standardized")(h)
            outputs[head.name] = keras.layers.Rescaling(head.scale, offset=head.offset, name=head.name)(h)
        else:
            outputs[head.name] = keras.layers.Dense(units, activation=activation, name=head.name)(h)
        weights[head.name] = head.loss_weight
        metrics[head.name] = head.labels.metrics()
    model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow_functional")
    model.compile(optimizer=build_optimizer(hp, spec), loss=losses, loss_weights=weights, metrics=metrics)
    return model


def default_values(model: FunctionalModelConfig) -> dict[str, Any]:
    """Returns the config value of every tunable name of a `functional` model, as built without a tuner.

    Args:
        model: The `FunctionalModelConfig`.

    Returns:
        `{dotted name: value}`: the shared encoder settings (`model.text.*`)
        and the trunk's.
    """
    return {**encoder_defaults(model.text, "model.text"), "model.layers": len(model.hidden_units),
            "model.units": (model.hidden_units or [64])[0], "model.dropout": model.dropout,
            "model.activation": model.activation}


def _branches(hp: Any, spec: Any) -> tuple[dict[str, Any], list[Any]]:
    from kerasflow.features.text_layers import TextSegment  # deferred: text_layers imports TensorFlow

    cfg = spec.model
    inputs: dict[str, Any] = {}
    parts: list[Any] = []
    if spec.features.columns != spec.features.text_columns:
        tabular, encoded = build_input_layers(spec.features)
        inputs.update(tabular)
        parts.append(encoded)
    texts = text_specs(spec.features)
    shared = TextEncoder(hp, spec, cfg.text, texts[0], "model.text", "shared") if cfg.shared_encoder else None
    for text in texts:
        key = text_input_name(text.column)
        if key not in inputs:
            inputs[key] = text_input(text.column)
        x = inputs[key]
        if text.segment != "all":
            x = TextSegment(text.segment, name=f"segment_{text.name}")(x)
        parts.append((shared or TextEncoder(hp, spec, cfg.text, text, "model.text", text.name))(x))
    return inputs, parts


def _trunk(x: Any, hp: Any, spec: Any) -> Any:
    import keras

    cfg = spec.model
    layers = choose(hp, spec, "model.layers", len(cfg.hidden_units))
    activation = choose(hp, spec, "model.activation", cfg.activation)
    dropout = choose(hp, spec, "model.dropout", cfg.dropout)
    for i in range(layers):
        default = cfg.hidden_units[min(i, len(cfg.hidden_units) - 1)] if cfg.hidden_units else 64
        units = choose(hp, spec, "model.units", default)
        x = keras.layers.Dense(units, activation=activation, name=f"trunk_dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=spec.seed + 300 + i, name=f"trunk_dropout_{i}")(x)
    return x


def feature_columns(model: FunctionalModelConfig) -> tuple[list[str], list[str]]:
    """The columns a functional model reads (`(features, categorical)`): its text columns and tabular input."""
    texts = [i.column for i in model.text_inputs]
    tab = model.tabular_input
    return [*texts, *(tab.columns if tab else [])], [*texts, *((tab.categorical or []) if tab else [])]


def fit_functional_inputs(config: PipelineConfig, train: Any) -> Any:
    """Fits a functional model's tabular input, vocabularies and output labels on the training rows.

    Args:
        config: The pipeline config; `model` is a `FunctionalModelConfig`.
        train: The training rows only.

    Returns:
        The `kerasflow.features.outputs.FittedInputs`.

    Raises:
        FeatureError: Columns are missing, an output target is also an
            input, or a text column has no tokens.
    """
    model = config.model
    tab = model.tabular_input
    numeric, categorical = ([], []) if tab is None else select_columns(train, config.data.target, tab.columns,
                                                                        tab.categorical)
    return fit_model_inputs(config, train, branches=[(i.name, i.column, i.segment) for i in model.text_inputs],
                            numeric=numeric, categorical=categorical, encoder=model.text, encoder_path="model.text.",
                            shared=model.shared_encoder, outputs=model.outputs)


def _dropouts(model: FunctionalModelConfig) -> list[tuple[str, float]]:
    return [("model.dropout", model.dropout), ("model.text.dropout", model.text.dropout),
            ("model.text.recurrent_dropout", model.text.recurrent_dropout)]


register_family("functional", build=build_functional_model, default_values=default_values, tabular=False,
                feature_columns=feature_columns, fit_inputs=fit_functional_inputs,
                text=lambda model: TextSection("model.text.", model.text, [i.column for i in model.text_inputs]),
                outputs=lambda model: model.outputs,
                hidden_layers=lambda model: [(f"model.hidden_units[{i}]", u) for i, u in enumerate(model.hidden_units)],
                dropouts=_dropouts)
