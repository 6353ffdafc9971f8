"""The `dense` model family: tabular inputs, a stack of dense blocks, one output layer.

The inputs are encoded as the `preprocessing` section says
(`kerasflow.features.inputs`: normalization, numeric embeddings, categorical
embeddings); `preprocessing.numeric_embedding` may be searched.

Each block is a `Dense` layer with an optional L1/L2 penalty, batch
normalization, an activation and dropout; every setting is read through
`choose`, so a tuner search can vary it (`model.layers`, `model.units`,
`model.units_<i>`, `model.dropout`, ...).
"""

from __future__ import annotations

from typing import Any

from kerasflow.features.inputs import build_input_layers
from kerasflow.features.labels import inverse_target, training_loss
from kerasflow.models.families import WeightPenalty, learning_rate_space, power_of_two, register_family
from kerasflow.models.hyper import (
    activation_layer,
    build_initializer,
    build_optimizer,
    choose,
    numeric_embedding,
    numeric_embedding_space,
    widths_around,
)
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import PipelineConfig
from kerasflow.schemas.dense import MAX_LAYERS, DenseModelConfig

OUTPUT_SEED_OFFSET = 1000


def build_dense(hp: Any, spec: ModelSpec) -> Any:
    """Builds and compiles a dense network on the tabular inputs.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `ModelSpec`; `spec.model` is a dense `ModelConfig`.

    Returns:
        A compiled `keras.Model` named `kerasflow` that takes the raw named inputs.
    """
    import keras

    inputs, x = build_input_layers(spec.features, numeric_embedding=numeric_embedding(hp, spec), seed=spec.seed)
    x = _dense_body(x, hp, spec)
    units, activation, loss = spec.labels.output()
    # A seeded initializer: an unseeded one draws from Python's process-wide `random`,
    # which concurrent trainings (k-fold folds on threads) would interleave.
    kernel = keras.initializers.GlorotUniform(seed=spec.seed + OUTPUT_SEED_OFFSET)
    outputs = keras.layers.Dense(units, activation=activation, kernel_initializer=kernel, name="output")(x)
    model = keras.Model(inputs=inputs, outputs=inverse_target(outputs, spec.labels), name="kerasflow")
    model.compile(optimizer=build_optimizer(hp, spec), loss=training_loss(spec.labels), metrics=spec.labels.metrics())
    return model


def default_values(model: DenseModelConfig) -> dict[str, Any]:
    """Returns the config value of every tunable `dense` parameter, as `build_dense` uses it without a tuner.

    Args:
        model: The dense `ModelConfig`.

    Returns:
        `{dotted name: value}`.
    """
    units = {f"model.units_{i}": model.hidden_units[min(i, len(model.hidden_units) - 1)] for i in range(MAX_LAYERS)}
    return {"model.layers": len(model.hidden_units), "model.units": model.hidden_units[0], **units,
            "model.activation": model.activation, "model.l1": model.l1, "model.l2": model.l2,
            "model.use_dropout": model.dropout > 0, "model.dropout": model.dropout,
            "model.batch_norm": model.batch_norm}


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
    x = activation_layer(activation, f"{activation}_{i}")(x)
    use_dropout = choose(hp, spec, "model.use_dropout", cfg.dropout > 0)
    dropout = choose(hp, spec, "model.dropout", cfg.dropout) if use_dropout else 0.0
    if dropout:
        x = keras.layers.Dropout(dropout, seed=spec.seed + i, name=f"dropout_{i}")(x)
    return x


DENSE_KFOLD_BELOW_ROWS = 10_000
"""Tables below this many rows are cross-validated and averaged over 5 folds by default (`Family.kfold_below_rows`).

Measured with `benchmarks/quality.py --seeds 3 --methods defaults,hgb`
(2026-12-07), 5-fold ensemble on the four sets of 2,000-10,000 rows,
against HistGradientBoosting on the same test rows (seed 0 with the
former holdout split in brackets): ames MAE 13,470 +- 820 vs 14,270
(16,690), credit_data 0.8002 vs 0.7909 (0.8002), satellite 0.9283 vs
0.9298 (0.9005), mlc_churn 0.9467 vs 0.9550 (0.9280), for 2.5-5x the
training time. Text and image families keep 2,000: their cost at these
sizes was not measured.
"""


def default_section(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `model` section of a table without one (see `kerasflow.lint.defaults`).

    Two ReLU layers of 256 units (wider for more than 128 classes: the power
    of two at or above twice the class count, up to 512), He initialization,
    dropout 0.1 and no weight penalty. Measured in
    `benchmarks/tabular_probe.py` on 13 real sets, 3 seeds: this plain wide
    network beat the former input-sized one (first layer twice the input
    width, dropout 0.2, L2 1e-4) and, on 6 of the 9 small sets, default
    gradient boosting; early stopping does the regularizing.
    """
    width = power_of_two(2 * max(profile.classes, 128), 256, 512)
    return {"kind": "dense", "hidden_units": [width, width], "activation": "relu",
            "initializer": {"name": "he_normal"}, "dropout": 0.1, "l2": 0.0}


EMBED_ABOVE_LEVELS = 32
"""A chosen dense network embeds categorical columns with more levels than this (`categorical_embedding.above`)."""

EMBED_FROM_ROWS = 1_000
"""... on tables of at least this many rows (measured on mlc_churn's 5,000; smaller tables keep one-hot)."""


def default_preprocessing(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `preprocessing` values that go with `default_section`: piecewise-linear numeric embeddings.

    Each numeric column enters the network as its piecewise-linear encoding
    on 48 quantile bins of the standardized training values, plus a linear
    embedding (16 wide; `kerasflow.features.inputs`). Measured in
    `benchmarks/tabular_probe.py` (`def_ple` against `def`, 3 seeds): it
    lowered concrete's RMSE from 6.5 to 4.7 and lifted glass and
    ionosphere, without losing on the sets the plain network already won.
    A streamed table keeps `none` (its bins would need the training rows in
    memory), and a table without numeric columns has nothing to embed.
    Fewer bins (`preprocessing.numeric_bins: 8`) lifted vehicle by 5.5
    points through the 5-fold pipeline but cost glass one test row per
    seed and were not confirmed on the other sets, so the default keeps
    48 (`benchmarks/tabular_probe.py`, Dec 2026).

    A table of at least `EMBED_FROM_ROWS` rows (not streamed) with a
    categorical column of more than `EMBED_ABOVE_LEVELS` levels also gets
    `categorical_embedding: {above: 32}`: such columns enter as learned
    embeddings (15 wide for 51 levels), the others stay one-hot. Measured
    through `benchmarks/quality.py` (3 seeds): mlc_churn, whose one-hot
    51-level `state` let the network fit noise, rose from 0.9467 to 0.9527
    (HistGradientBoosting 0.9550); ames, whose largest columns have 17 and
    28 levels, lost 1.5% MAE when they were embedded (above 16), so they
    stay one-hot (`benchmarks/tabular_probe.py`).
    """
    if config.data.streaming:
        return {}
    values: dict[str, Any] = {"numeric_embedding": "piecewise_linear"} if profile.numeric_std else {}
    if profile.rows >= EMBED_FROM_ROWS and max(profile.categorical_levels.values(), default=0) > EMBED_ABOVE_LEVELS:
        values["categorical_embedding"] = {"above": EMBED_ABOVE_LEVELS}
    return values


RECIPE_BELOW_ROWS = 2_000
"""Tables below this many rows train the default dense network with TabM's recipe (`default_training`)."""


def default_training(training: dict[str, Any], profile: Any) -> dict[str, Any]:
    """The `training` section of a dense network without one: on small tables, the TabM paper's recipe.

    Below `RECIPE_BELOW_ROWS` rows the optimizer is AdamW at 2e-3 (Keras's
    weight decay, 0.004) and early stopping waits 16 epochs instead of 20;
    the batch and the learning-rate schedule stay the defaults'. Measured
    through the whole pipeline (`benchmarks/quality_with.py`, 3 seeds, the
    5-fold ensemble; `benchmarks/tabular_probe.py`): ionosphere 0.944 ->
    0.958 (HistGradientBoosting's 0.958), glass 0.767 -> 0.760 (one test
    row on one seed), at about half the training time; the other small sets
    that beat HistGradientBoosting still do (sonar 0.825 -> 0.825, pima
    0.758 -> 0.755, breast_cancer_wbc 0.967 -> 0.969, vehicle 0.792 ->
    0.798, Boston MAE 1.935 -> 1.950, concrete MAE 2.818 -> 2.804).
    Larger tables keep Adam at 1e-3 and patience 20 (not rerun).

    Args:
        training: The section chosen for any model (`kerasflow.lint.defaults`).
        profile: The data's profile (`rows`).

    Returns:
        The section, with the recipe on small tables.
    """
    if profile.rows >= RECIPE_BELOW_ROWS:
        return training
    return {**training, "optimizer": {"name": "adamw", "learning_rate": 2e-3},
            "early_stopping": {**training["early_stopping"], "patience": 16}}


def weight_penalty(model: DenseModelConfig) -> WeightPenalty | None:
    """The L1/L2 penalty of the hidden kernels, or None without one."""
    if not (model.l1 or model.l2):
        return None
    return WeightPenalty(model.l1, model.l2, list(model.hidden_units), model.initializer)


def default_space(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `tuning.space` of a dense network whose `tuning` section leaves it out.

    What the tabular literature tunes for an MLP (Gorishniy et al. 2022 and
    TabM, 2025), cut to a CPU and a few dozen trials: the learning rate on
    a log scale (a quarter to four times the configured one), 1 to 4
    layers, their width in powers of two around the configured first layer
    (a quarter to twice it), no dropout or 0.1 to 0.5, an L2 kernel penalty (weight
    decay) of 0 or 1e-5 to 1e-3, and the numeric columns' encoding
    (`preprocessing.numeric_embedding`: none, periodic, piecewise-linear)
    when the table has numeric columns and the config does not fix it.

    Args:
        config: The pipeline config, with its defaults in place.
        profile: Its data's `DataProfile`.

    Returns:
        `{dotted name: parameter}`.
    """
    return {**learning_rate_space(config, 1 / 4, 4.0),
            "model.layers": {"type": "int", "min": 1, "max": 4},
            "model.units": {"type": "choice", "values": widths_around(config.model.hidden_units[0])},
            "model.use_dropout": {"type": "boolean"},
            "model.dropout": {"type": "float", "min": 0.1, "max": 0.5, "step": 0.1,
                              "parent": "model.use_dropout", "parent_values": [True]},
            "model.l2": {"type": "choice", "values": [0.0, 1e-5, 1e-4, 1e-3]},
            **numeric_embedding_space(config, profile)}


register_family("dense", build=build_dense, default_values=default_values,
                hidden_layers=lambda model: [(f"model.hidden_units[{i}]", u) for i, u in enumerate(model.hidden_units)],
                dropouts=lambda model: [("model.dropout", model.dropout)], weight_penalty=weight_penalty,
                default_section=default_section, default_rank=1000, default_preprocessing=default_preprocessing,
                describe_section=lambda section: f" {section['hidden_units']}",
                default_space=default_space, kfold_below_rows=DENSE_KFOLD_BELOW_ROWS,
                default_training=default_training)
