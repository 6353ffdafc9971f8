"""The `tabm` model family: TabM (Gorishniy et al., ICLR 2025) on the tabular inputs.

An MLP of `depth` BatchEnsemble blocks shared by `k` members, each with its
own linear head (`kerasflow.models.tabm_backbone`), optionally after
periodic or piecewise-linear embeddings of the numeric columns
(`kerasflow.features.numeric_embeddings`). The model is a
`kerasflow.features.tabm_layers.TabMModel`: it returns the mean of the
members' activated outputs, `(batch, out)`, like every other family's
model, so it is scored, saved, ensembled and served unchanged, while its
training step averages the members' losses. `k`, `width`, `depth` and
`dropout` are read through `choose`, so a tuner search can vary them.

The network concatenates its encoded inputs itself rather than through the
`features` layer of `build_input_layers`: it trains as a whole, with its own
training step, instead of being split into a fixed encoder and a plain core
(`kerasflow.training.fitting.split_encoder`), which would train the loss of
the mean prediction.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

from kerasflow.features.tabular import ENCODED_FEATURES, build_input_layers
from kerasflow.models.families import register_family
from kerasflow.models.hyper import build_optimizer, choose
from kerasflow.models.spec import ModelSpec
from kerasflow.models.tabm_backbone import tabm_body, tabm_head, tabm_optimizer

# The paper's optimizer, used when the config has no `training.optimizer` section.
LEARNING_RATE, WEIGHT_DECAY = 2e-3, 3e-4
D_EMBEDDING, N_BINS = 16, 48
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
    inputs, x, chunks = _embedded_inputs(spec)
    x = tabm_body(x, k=k, width=choose(hp, spec, "model.width", cfg.width),
                  depth=choose(hp, spec, "model.depth", cfg.depth), dropout=choose(hp, spec, "model.dropout", cfg.dropout),
                  r_init="random-signs" if cfg.numeric_embedding == "none" else "normal", r_chunks=chunks,
                  seed=spec.seed)
    units, activation, loss = spec.labels.output()
    members = tabm_head(x, units, seed=spec.seed + HEAD_SEED_OFFSET)
    outputs = MeanOverMembers(None if activation == "linear" else activation, name="output")(members)
    model = TabMModel(inputs=inputs, outputs=outputs, name="kerasflow")
    model.compile(optimizer=_optimizer(hp, spec), loss=loss, metrics=spec.labels.metrics())
    return model


def _embedded_inputs(spec: ModelSpec) -> tuple[dict[str, Any], Any, list[int] | None]:
    """The raw inputs and their encoding: numeric columns embedded as configured, then the one-hot columns.

    Returns:
        `(inputs, encoded, r_chunks)`: the chunks give each input feature one
        random scale in the first layer (None: one per column).
    """
    import keras  # deferred: Keras loads TensorFlow

    inputs, encoded = build_input_layers(spec.features)
    parts = keras.Model(inputs, encoded).get_layer(ENCODED_FEATURES).input
    parts = list(parts) if isinstance(parts, (list, tuple)) else [parts]
    embedding = spec.model.numeric_embedding
    if spec.features.numeric and embedding != "none":
        numeric = _numeric_embedding(embedding, len(spec.features.numeric), spec.seed)(parts[0])
        parts[0] = keras.layers.Flatten(name="numeric_embedding_flat")(numeric)
        widths = [D_EMBEDDING] * len(spec.features.numeric) + [int(p.shape[-1]) for p in parts[1:]]
    else:
        widths = None
    x = (keras.layers.Identity(name="tabm_inputs") if len(parts) == 1
         else keras.layers.Concatenate(name="tabm_inputs"))(parts[0] if len(parts) == 1 else parts)
    return inputs, x, widths


def _numeric_embedding(embedding: str, features: int, seed: int) -> Any:
    """The numeric columns' embedding layer, `(batch, f) -> (batch, f, D_EMBEDDING)`."""
    from kerasflow.features.numeric_embeddings import PeriodicEmbedding, PiecewiseLinearEncoding  # deferred: Keras

    if embedding == "periodic":
        return PeriodicEmbedding(D_EMBEDDING, seed=seed, name="periodic_embedding")
    # Placeholder edges: standard normal quantiles of the normalized columns; `TabMModel.fit` refits them
    # on the rows it trains on before the first step.
    edges = [NormalDist().inv_cdf(min(max(q / N_BINS, 1e-3), 1 - 1e-3)) for q in range(N_BINS + 1)]
    return PiecewiseLinearEncoding([edges] * features, d_embedding=D_EMBEDDING, seed=seed,
                                   name="piecewise_linear_encoding")


def _optimizer(hp: Any, spec: ModelSpec) -> Any:
    """The paper's AdamW (weight decay off biases and embeddings' linear parts) unless the config names another.

    A config without `training.optimizer` (and a search that does not vary
    it) gets AdamW(2e-3, weight decay 3e-4); `adamw` by name gets the
    paper's weight decay at the configured learning rate; any other
    optimizer is built as every family builds it.
    """
    configured = bool(spec.optimizer.model_fields_set) or any(
        name.startswith("training.optimizer.") for name in spec.search_space)
    if not configured:
        return tabm_optimizer(LEARNING_RATE, WEIGHT_DECAY)
    if choose(hp, spec, "training.optimizer.name", spec.optimizer.name) == "adamw":
        return tabm_optimizer(choose(hp, spec, "training.optimizer.learning_rate", spec.optimizer.learning_rate),
                              WEIGHT_DECAY)
    return build_optimizer(hp, spec)


def default_values(model: Any) -> dict[str, Any]:
    """Returns the config value of every tunable `tabm` parameter, as `build_tabm` uses it without a tuner.

    Args:
        model: The tabm `TabMModelConfig`.

    Returns:
        `{dotted name: value}`.
    """
    return {"model.k": model.k, "model.width": model.width, "model.depth": model.depth,
            "model.dropout": model.dropout}


register_family("tabm", build=build_tabm, default_values=default_values,
                hidden_layers=lambda model: [("model.width", model.width)],
                dropouts=lambda model: [("model.dropout", model.dropout)])
