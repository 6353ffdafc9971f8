"""The `tabm` model family: TabM (Gorishniy et al., ICLR 2025) on the tabular inputs.

An MLP of `depth` BatchEnsemble blocks shared by `k` members, each with its
own linear head (`kerasflow.models.tabm_backbone`), on the tabular inputs
encoded as the `preprocessing` section says (`kerasflow.features.inputs`:
normalization, periodic or piecewise-linear embeddings of the numeric
columns, embeddings of categorical columns with many levels). The model is a
`kerasflow.features.tabm_layers.TabMModel`: it returns the mean of the
members' activated outputs, `(batch, out)`, like every other family's
model, so it is scored, saved, ensembled and served unchanged, while its
training step averages the members' losses. `k`, `width`, `depth`,
`dropout` and `weight_decay` (and `preprocessing.numeric_embedding`) are
read through `choose`, so a tuner search can vary them; `default_space` is
the search a `tuning` section without a `space` runs.

The network's fixed input encoding is not named as the `features` layer of
`build_input_layers` is by default: it trains as a whole, with its own
training step, instead of being split into a fixed encoder and a plain core
(`kerasflow.training.encoded.split_encoder`), which would train the loss of
the mean prediction.
"""

from __future__ import annotations

from typing import Any

from kerasflow.features.inputs import build_input_layers, feature_widths
from kerasflow.features.labels import inverse_target, training_loss
from kerasflow.models.families import learning_rate_space, register_family
from kerasflow.models.hyper import build_optimizer, choose, numeric_embedding, numeric_embedding_space, widths_around
from kerasflow.models.spec import ModelSpec
from kerasflow.models.tabm_backbone import tabm_body, tabm_head, tabm_optimizer
from kerasflow.schemas.config import PipelineConfig

# The paper's optimizer, used when the config has no `training.optimizer` section (its weight decay,
# 3e-4, is `model.weight_decay`'s default).
LEARNING_RATE = 2e-3
HEAD_SEED_OFFSET = 1000


def build_tabm(hp: Any, spec: ModelSpec) -> Any:
    """Builds and compiles a TabM network on the tabular inputs.

    Args:
        hp: A Keras Tuner `HyperParameters`, or None to use config values.
        spec: The `ModelSpec`; `spec.model` is a tabm `TabMModelConfig`.

    Returns:
        A compiled `TabMModel` named `kerasflow` that takes the raw named
        inputs and returns the members' mean prediction.
    """
    from kerasflow.features.tabm_layers import MeanOverMembers, TabMModel  # deferred: imports Keras

    cfg = spec.model
    k = choose(hp, spec, "model.k", cfg.k)
    embedding = numeric_embedding(hp, spec)
    inputs, x = build_input_layers(spec.features, numeric_embedding=embedding, seed=spec.seed, name="tabm_inputs")
    x = tabm_body(x, k=k, width=choose(hp, spec, "model.width", cfg.width),
                  depth=choose(hp, spec, "model.depth", cfg.depth), dropout=choose(hp, spec, "model.dropout", cfg.dropout),
                  r_init="random-signs" if embedding == "none" else "normal", r_chunks=_chunks(spec, embedding),
                  seed=spec.seed)
    units, activation, loss = spec.labels.output()
    members = inverse_target(tabm_head(x, units, seed=spec.seed + HEAD_SEED_OFFSET), spec.labels)  # each member's
    outputs = MeanOverMembers(None if activation == "linear" else activation, name="output")(members)
    model = TabMModel(inputs=inputs, outputs=outputs, name="kerasflow")
    model.compile(optimizer=_optimizer(hp, spec), loss=training_loss(spec.labels), metrics=spec.labels.metrics())
    return model


def _chunks(spec: ModelSpec, embedding: str) -> list[int] | None:
    """The first layer's per-feature chunks (one random scale per input feature) when any column is embedded.

    Without embeddings every input column gets its own scale (None), as before
    embeddings existed; with them, a numeric column's embedding, a one-hot
    column's vector and a categorical column's embedding are one feature each.
    """
    if embedding == "none" and not spec.features.embedded:
        return None
    return feature_widths(spec.features, embedding)


def _optimizer(hp: Any, spec: ModelSpec) -> Any:
    """The configured optimizer; `adamw` is the paper's (weight decay off biases and embeddings' linear parts).

    What the run logs as `training.optimizer.*` is what trains: a config
    without a `training` section gets `adamw` at 2e-3 from
    `default_training`, and a `training` section without an optimizer gets
    the schema's default, as in every family.
    """
    if choose(hp, spec, "training.optimizer.name", spec.optimizer.name) == "adamw":
        return tabm_optimizer(choose(hp, spec, "training.optimizer.learning_rate", spec.optimizer.learning_rate),
                              choose(hp, spec, "model.weight_decay", spec.model.weight_decay))
    return build_optimizer(hp, spec)


def default_training(training: dict[str, Any], profile: Any) -> dict[str, Any]:
    """The `training` section of a TabM without one: the paper's AdamW at a learning rate of 2e-3.

    Args:
        training: The section chosen for any model (`kerasflow.lint.defaults`).
        profile: The data's profile (unused: the paper's optimizer suits every size).

    Returns:
        The section with `optimizer: {name: adamw, learning_rate: 2e-3}`.
    """
    return {**training, "optimizer": {"name": "adamw", "learning_rate": LEARNING_RATE}}


def default_values(model: Any) -> dict[str, Any]:
    """Returns the config value of every tunable `tabm` parameter, as `build_tabm` uses it without a tuner.

    Args:
        model: The tabm `TabMModelConfig`.

    Returns:
        `{dotted name: value}`.
    """
    return {"model.k": model.k, "model.width": model.width, "model.depth": model.depth,
            "model.dropout": model.dropout, "model.weight_decay": model.weight_decay}


def default_space(config: PipelineConfig, profile: Any) -> dict[str, Any]:
    """The `tuning.space` of a TabM whose `tuning` section leaves it out: the paper's space, cut to a CPU.

    The TabM paper tunes the learning rate (log), the depth (1-5 blocks),
    the width (64-1024), dropout (0 or up to 0.5), AdamW's weight decay (0
    or 1e-4 to 1e-1) and the numeric embedding, with k fixed at 32. Here:
    the learning rate from a quarter to 2.5 times the configured one (5e-4
    to 5e-3 around the paper's 2e-3), 1 to 4 blocks, half to twice the
    configured width, dropout 0 to 0.5, weight decay 0 or 1e-4 to 1e-2 (with
    `adamw` only: other optimizers have none) and
    `preprocessing.numeric_embedding` when the table has numeric columns
    and the config does not fix it.

    Args:
        config: The pipeline config, with its defaults in place.
        profile: Its data's `DataProfile`.

    Returns:
        `{dotted name: parameter}`.
    """
    decay = {"model.weight_decay": {"type": "choice", "values": [0.0, 1e-4, 1e-3, 1e-2]}} \
        if config.training.optimizer.name == "adamw" else {}
    return {**learning_rate_space(config, 1 / 4, 2.5),
            "model.depth": {"type": "int", "min": 1, "max": 4},
            "model.width": {"type": "choice", "values": widths_around(config.model.width, below=1)},
            "model.dropout": {"type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
            **decay, **numeric_embedding_space(config, profile)}


register_family("tabm", build=build_tabm, default_values=default_values, default_training=default_training,
                hidden_layers=lambda model: [("model.width", model.width)],
                dropouts=lambda model: [("model.dropout", model.dropout)],
                default_space=default_space)
