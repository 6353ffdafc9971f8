"""The Keras inputs of a tabular model and the preprocessing that encodes them, from a fitted `FeatureSpec`.

Two stages, both inside the exported model:

1. A fixed encoding with no trained weights, one tensor (the layer named
   `ENCODED_FEATURES` for the families trained on rows encoded once,
   `kerasflow.training.encoded.split_encoder`): the numeric columns imputed
   and normalized (`standard`: `Normalization`; `quantile`:
   `QuantileNormalization`), then each categorical column in spec order,
   one-hot (`StringLookup`), or, for an embedded column, its integer index.
2. The trained encodings (only when the spec asks for them): the numeric
   block embedded (`periodic`: `PeriodicEmbedding`; `piecewise_linear`:
   `PiecewiseLinearEncoding` on the spec's bins), each embedded categorical
   column through an `Embedding`, flattened and concatenated in the same
   order.

Every tabular family (`dense`, `tabm`, `functional`) builds its inputs here,
so they share one encoding; `feature_widths` gives the width of each input
feature in the result (TabM's per-feature `r_chunks`).
"""

from __future__ import annotations

from typing import Any

from kerasflow.features.encodings import safe_variance
from kerasflow.features.tabular import ENCODED_FEATURES, NUMERIC_INPUT, FeatureSpec, input_name

D_EMBEDDING = 16  # the width of each numeric column's embedding
EMBEDDING_SEED_OFFSET = 500


def build_input_layers(spec: FeatureSpec, *, numeric_embedding: str | None = None, seed: int | None = None,
                       name: str = ENCODED_FEATURES) -> tuple[dict[str, Any], Any]:
    """Builds the Keras inputs and the preprocessing that encodes them.

    Args:
        spec: The fitted feature spec.
        numeric_embedding: `none`, `periodic` or `piecewise_linear`.
            Default: the spec's (a search may choose another).
        seed: Seed of the embeddings' initializers. Default none (Keras'
            global seed generator).
        name: The name of the fixed encoding's layer. Default
            `ENCODED_FEATURES`, which a fit may split off and run once; a model
            with its own training step (TabM) names it otherwise, so it trains
            whole.

    Returns:
        `(inputs, encoded)`: a dict of `keras.Input` by name, and the
        `(batch, d)` float tensor of encoded features.

    Raises:
        ValueError: A piecewise-linear embedding is asked for but the spec
            has no bins.
    """
    inputs, fixed = _fixed_encoding(spec, name)
    embedding = spec.numeric_embedding if numeric_embedding is None else numeric_embedding
    if embedding == "none" and not spec.embedded:
        return inputs, fixed
    return inputs, _embedded(fixed, spec, embedding, seed)


def feature_widths(spec: FeatureSpec, numeric_embedding: str | None = None) -> list[int]:
    """The width of every input feature in `build_input_layers`' encoding, in order.

    Args:
        spec: The fitted feature spec.
        numeric_embedding: As for `build_input_layers`. Default: the spec's.

    Returns:
        One width per numeric column (1, or `D_EMBEDDING` when embedded), then
        one per categorical column (its one-hot width or its embedding width).
    """
    embedding = spec.numeric_embedding if numeric_embedding is None else numeric_embedding
    numeric = [1 if embedding == "none" else D_EMBEDDING] * len(spec.numeric)
    return numeric + [spec.embedded.get(c, len(spec.vocabularies[c]) + 1) for c in spec.categorical]


def _fixed_encoding(spec: FeatureSpec, name: str) -> tuple[dict[str, Any], Any]:
    """The inputs and their untrained encoding, one tensor: numbers, one-hot vectors and embedded columns' indices."""
    import keras

    from kerasflow.features.layers import FillMissing  # deferred: layers imports Keras

    inputs: dict[str, Any] = {}
    parts = []
    if spec.numeric:
        x = inputs[NUMERIC_INPUT] = keras.Input(shape=(len(spec.numeric),), name=NUMERIC_INPUT, dtype="float32")
        parts.append(_normalized(FillMissing(spec.fill, name="fill_missing")(x), spec))
    for column in spec.categorical:
        inputs[input_name(column)] = keras.Input(shape=(1,), name=input_name(column), dtype="string")
        mode = "int" if column in spec.embedded else "one_hot"
        lookup = keras.layers.StringLookup(vocabulary=spec.vocabularies[column], output_mode=mode,
                                           name=f"lookup_{column}")(inputs[input_name(column)])
        parts.append(keras.ops.cast(lookup, "float32") if mode == "int" else lookup)
    encoded = (keras.layers.Identity(name=name) if len(parts) == 1
               else keras.layers.Concatenate(name=name))(parts[0] if len(parts) == 1 else parts)
    return inputs, encoded


def _normalized(x: Any, spec: FeatureSpec) -> Any:
    """The imputed numeric block, normalized as the spec says."""
    import keras

    from kerasflow.features.numeric_embeddings import QuantileNormalization  # deferred: imports TensorFlow

    if spec.normalize == "standard":
        return keras.layers.Normalization(mean=spec.mean, variance=safe_variance(spec.variance), name="normalize")(x)
    if spec.normalize == "quantile":
        return QuantileNormalization(spec.quantiles, name="quantile_normalize")(x)
    return x


def _embedded(fixed: Any, spec: FeatureSpec, embedding: str, seed: int | None) -> Any:
    """The fixed encoding with its numeric block and embedded categorical columns through trained embeddings."""
    import keras

    parts, offset = [], 0
    if spec.numeric:
        offset = len(spec.numeric)
        numeric = fixed[:, :offset]
        if embedding != "none":
            numeric = keras.layers.Flatten(name="numeric_embedding_flat")(
                _numeric_embedding(embedding, spec, seed)(numeric))
        parts.append(numeric)
    for i, column in enumerate(spec.categorical):
        width = 1 if column in spec.embedded else len(spec.vocabularies[column]) + 1
        piece = fixed[:, offset:offset + width]
        offset += width
        if column in spec.embedded:
            initializer = keras.initializers.RandomUniform(-0.05, 0.05, seed=_offset(seed, EMBEDDING_SEED_OFFSET + i))
            table = keras.layers.Embedding(len(spec.vocabularies[column]) + 1, spec.embedded[column],
                                           embeddings_initializer=initializer, name=f"embed_{column}")
            piece = keras.layers.Flatten(name=f"embed_{column}_flat")(table(piece))
        parts.append(piece)
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="embedded_features")(parts)


def _numeric_embedding(embedding: str, spec: FeatureSpec, seed: int | None) -> Any:
    """The numeric columns' embedding layer, `(batch, f) -> (batch, f, D_EMBEDDING)`."""
    from kerasflow.features.numeric_embeddings import PeriodicEmbedding, PiecewiseLinearEncoding  # deferred: Keras

    if embedding == "periodic":
        return PeriodicEmbedding(D_EMBEDDING, seed=seed, name="periodic_embedding")
    if embedding != "piecewise_linear":
        raise ValueError(f"numeric_embedding must be none, periodic or piecewise_linear, got {embedding!r}")
    if len(spec.bins) != len(spec.numeric):
        raise ValueError("numeric_embedding: piecewise_linear needs bins fitted on the training rows "
                         "(fit_features with bins=True)")
    return PiecewiseLinearEncoding(spec.bins, d_embedding=D_EMBEDDING, seed=seed, name="piecewise_linear_encoding")


def _offset(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset
