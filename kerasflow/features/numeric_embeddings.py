"""Numeric-feature encodings for tabular networks, as Keras layers that ship inside the model.

From Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022) and the TabM paper (ICLR 2025) that reuses them:

- `PeriodicEmbedding` (PLR): per feature, `v = [cos(2πcx), sin(2πcx)]` with
  trainable frequencies `c ~ N(0, sigma)`, then Linear + ReLU. `lite=True`
  (the default) shares that Linear across features.
- `PiecewiseLinearEncoding` (PLE): per feature, one component per quantile
  bin: 1 right of the bin, 0 left of it, the relative position inside; the
  first bin is open to the left and the last to the right, so values outside
  the training range extrapolate linearly. With `d_embedding`, a trainable
  per-feature linear embedding follows (the TabM paper's "version B": a plain
  linear embedding plus a zero-initialized piecewise-linear part, so training
  starts from a linear embedding).
- `QuantileNormalization`: maps each feature through its training quantiles to
  a standard normal, exactly as scikit-learn's
  `QuantileTransformer(output_distribution="normal")` does on the same rows.

Bin edges and quantiles are fitted on training rows only (`fit_quantile_bins`,
`fit_quantiles`, NumPy functions of `kerasflow.features.encodings`, which the
feature spec calls) and become part of the layer: PLE edges live in its config,
quantiles in a float64 non-trainable weight, so a saved `.keras` model
serves exactly as it trained.

Shipped with every logged model (MLflow `code_paths`): imports nothing from
kerasflow beyond Keras, TensorFlow and its NumPy sibling `encodings`. Importers defer importing it
(it imports TensorFlow).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from kerasflow.features.encodings import (  # noqa: F401  (re-exported: the fitting side of these layers)
    BOUNDS_THRESHOLD,
    NORMAL_CLIP,
    fit_quantile_bins,
    fit_quantiles,
)


def _uniform(bound: float, seed=None):
    """Initializer drawing from U(-bound, bound), PyTorch's default for Linear layers."""
    return keras.initializers.RandomUniform(-bound, bound, seed=seed)


def _offset(seed, offset: int):
    """A distinct seed per weight of a layer (None stays None: Keras' global seed generator)."""
    return None if seed is None else int(seed) + offset


@keras.saving.register_keras_serializable(package="kerasflow")
class PeriodicEmbedding(keras.layers.Layer):
    """Periodic embeddings (PLR) of numeric features: `(batch, f) -> (batch, f, d_embedding)`.

    Frequencies are initialized from a normal distribution with standard
    deviation `sigma`, truncated at two standard deviations (the reference
    truncates at three), and are trained with the rest of the network.

    Args:
        d_embedding: The embedding size per feature.
        n_frequencies: Frequencies per feature (`k` in the paper).
        sigma: The scale of the initial frequencies, an important hyperparameter:
            0.01 (the reference default) is safe, too large a value hurts; the
            reference suggests tuning it in LogUniform[0.01, 1].
        lite: Share the output Linear layer across features (the "lite" variant).
        activation: Apply ReLU after the Linear layer (the "R" of PLR).
        seed: Optional seed of the initializers (concurrent trainings stay reproducible).
    """

    def __init__(self, d_embedding=24, n_frequencies=48, sigma=0.01, lite=True, activation=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.d_embedding, self.n_frequencies = int(d_embedding), int(n_frequencies)
        self.sigma, self.lite, self.activation = float(sigma), bool(lite), bool(activation)

    def build(self, input_shape):
        n_features = int(input_shape[-1])
        self.frequencies = self.add_weight(
            name="frequencies",
            shape=(n_features, self.n_frequencies),
            initializer=keras.initializers.TruncatedNormal(stddev=self.sigma, seed=self.seed),
        )
        fan_in = 2 * self.n_frequencies
        prefix = () if self.lite else (n_features,)
        self.kernel = self.add_weight(
            name="kernel", shape=(*prefix, fan_in, self.d_embedding), initializer=_uniform(fan_in**-0.5, _offset(self.seed, 1))
        )
        bias_init = _uniform(fan_in**-0.5, _offset(self.seed, 2))
        self.bias = self.add_weight(name="bias", shape=(*prefix, self.d_embedding), initializer=bias_init)

    def call(self, inputs):
        angles = 2 * math.pi * keras.ops.expand_dims(inputs, -1) * self.frequencies
        periodic = keras.ops.concatenate([keras.ops.cos(angles), keras.ops.sin(angles)], axis=-1)
        equation = "bfi,io->bfo" if self.lite else "bfi,fio->bfo"
        outputs = keras.ops.einsum(equation, periodic, self.kernel) + self.bias
        return keras.ops.relu(outputs) if self.activation else outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.d_embedding)

    def get_config(self):
        return {
            **super().get_config(),
            "d_embedding": self.d_embedding,
            "n_frequencies": self.n_frequencies,
            "sigma": self.sigma,
            "lite": self.lite,
            "activation": self.activation,
            "seed": self.seed,
        }


def _ple_tables(bins: list[list[float]]) -> tuple[np.ndarray, ...]:
    """The affine map and clipping bounds that compute the PLE of every feature at once.

    Component `j` of a feature is `(x - edge_j) / width_j` clipped to [0, 1];
    the first component is only clipped above, the last only below, and a
    feature's last component always sits in the last column (the columns
    between are zeros), as in the reference implementation.

    Args:
        bins: Sorted bin edges per feature.

    Returns:
        `(slope, offset, lower, upper)`, each `(n_features, max_bins)` float32.
    """
    widths = max(len(edges) - 1 for edges in bins)
    slope, offset = np.zeros((len(bins), widths)), np.zeros((len(bins), widths))
    lower, upper = np.zeros((len(bins), widths)), np.ones((len(bins), widths))
    lower[:, 0], upper[:, -1] = -np.inf, np.inf
    for i, edges in enumerate(bins):
        edges = np.asarray(edges, dtype="float64")
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bin edges of feature {i} must be at least two strictly increasing values")
        w, b = 1.0 / np.diff(edges), -edges[:-1] / np.diff(edges)
        columns = [*range(len(w) - 1), widths - 1]
        slope[i, columns], offset[i, columns] = w, b
        if len(w) == 1:  # a single bin is plain min-max scaling, unclipped
            lower[i, -1] = -np.inf
    return tuple(table.astype("float32") for table in (slope, offset, lower, upper))


@keras.saving.register_keras_serializable(package="kerasflow")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Piecewise-linear encoding (PLE) of numeric features, with an optional linear embedding.

    Without `d_embedding`: `(batch, f) -> (batch, f, max_bins)`, no weights.
    With it: `(batch, f) -> (batch, f, d_embedding)`, the sum of a per-feature
    linear embedding of `x` and a per-feature linear map of its encoding
    (initialized to zero, so training starts from the linear embedding).

    Args:
        bins: Sorted bin edges per feature, from `fit_quantile_bins` on training rows.
        d_embedding: The embedding size, or None for the bare encoding.
        activation: Apply ReLU to the piecewise-linear part of the embedding.
        seed: Optional seed of the initializers.
    """

    def __init__(self, bins, d_embedding=None, activation=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.bins = [[float(edge) for edge in edges] for edges in bins]
        self.d_embedding = None if d_embedding is None else int(d_embedding)
        self.activation = bool(activation)
        self.tables = _ple_tables(self.bins)

    def build(self, input_shape):
        if int(input_shape[-1]) != len(self.bins):
            raise ValueError(f"expected {len(self.bins)} features, got input shape {input_shape}")
        if self.d_embedding is None:
            return
        n_features, width = self.tables[0].shape
        bound = self.d_embedding**-0.5
        self.linear_kernel = self.add_weight(
            name="linear_kernel", shape=(n_features, self.d_embedding), initializer=_uniform(bound, self.seed)
        )
        bias_init = _uniform(bound, _offset(self.seed, 1))
        self.linear_bias = self.add_weight(name="linear_bias", shape=(n_features, self.d_embedding), initializer=bias_init)
        self.ple_kernel = self.add_weight(name="ple_kernel", shape=(n_features, width, self.d_embedding), initializer="zeros")

    def encode(self, inputs):
        """The bare encoding, `(batch, f) -> (batch, f, max_bins)`."""
        slope, offset, lower, upper = (keras.ops.convert_to_tensor(table, dtype=inputs.dtype) for table in self.tables)
        encoded = keras.ops.expand_dims(inputs, -1) * slope + offset
        return keras.ops.minimum(keras.ops.maximum(encoded, lower), upper)

    def call(self, inputs):
        encoded = self.encode(inputs)
        if self.d_embedding is None:
            return encoded
        linear = keras.ops.expand_dims(inputs, -1) * self.linear_kernel + self.linear_bias
        piecewise = keras.ops.einsum("bfi,fio->bfo", encoded, self.ple_kernel)
        return linear + (keras.ops.relu(piecewise) if self.activation else piecewise)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.d_embedding or self.tables[0].shape[1])

    def get_config(self):
        return {
            **super().get_config(),
            "bins": self.bins,
            "d_embedding": self.d_embedding,
            "activation": self.activation,
            "seed": self.seed,
        }


def _interpolate(x, xp, fp):
    """`np.interp` for every feature at once.

    Args:
        x: Values `(f, batch)`.
        xp: Non-decreasing knots `(f, n)`, n >= 2.
        fp: Values at the knots `(f, n)`.

    Returns:
        `(f, batch)`: `fp[0]` left of the knots, `fp[-1]` at or right of the last one.
    """
    count = tf.shape(xp)[1]
    right = tf.searchsorted(xp, x, side="right")
    index = tf.clip_by_value(right - 1, 0, count - 2)
    x0, x1 = tf.gather(xp, index, batch_dims=1), tf.gather(xp, index + 1, batch_dims=1)
    y0, y1 = tf.gather(fp, index, batch_dims=1), tf.gather(fp, index + 1, batch_dims=1)
    gap = x1 - x0
    inside = y0 + (y1 - y0) * (x - x0) / tf.where(gap > 0, gap, tf.ones_like(gap))
    result = tf.where(right == 0, fp[:, :1], inside)
    return tf.where(right >= count, fp[:, -1:], result)


@keras.saving.register_keras_serializable(package="kerasflow")
class QuantileNormalization(keras.layers.Layer):
    """Maps each numeric feature through its training quantiles to a standard normal.

    Matches `sklearn.preprocessing.QuantileTransformer(output_distribution="normal")`
    fitted on the same rows (when they are at most its `subsample`, 10,000):
    the rank is the mean of the forward and backward interpolation (so ties
    map to the middle of their range), values at or beyond the extreme
    quantiles map to ±5.1993, and NaN stays NaN. The transform runs in
    float64 and returns the layer's compute dtype.

    Args:
        quantiles: `(n_features, n_quantiles)` from `fit_quantiles`, or None to call `adapt` later.
        n_quantiles: The number of quantiles `adapt` fits (the actual count is kept in the config).
    """

    def __init__(self, quantiles=None, n_quantiles=1000, **kwargs):
        super().__init__(**kwargs)
        self.initial = None if quantiles is None else np.asarray(quantiles, dtype="float64")
        self.n_quantiles = int(n_quantiles if self.initial is None else self.initial.shape[1])

    def adapt(self, values) -> None:
        """Fits the quantiles on training rows (before the layer is built, or to refit it).

        Args:
            values: Training rows only, shape `(n_rows, n_features)`.
        """
        self.initial = fit_quantiles(values, self.n_quantiles)
        self.n_quantiles = self.initial.shape[1]
        if self.built:
            self.quantiles.assign(self.initial)

    def build(self, input_shape):
        n_features = int(input_shape[-1])
        if self.initial is not None and self.initial.shape[0] != n_features:
            raise ValueError(f"quantiles are for {self.initial.shape[0]} features, input has {n_features}")
        initial = self.initial
        self.quantiles = self.add_weight(
            name="quantiles",
            shape=(n_features, self.n_quantiles),
            dtype="float64",
            trainable=False,
            initializer="zeros" if initial is None else (lambda shape, dtype=None: tf.constant(initial, dtype="float64")),
        )

    def call(self, inputs):
        x = tf.transpose(tf.cast(inputs, tf.float64))
        quantiles = tf.convert_to_tensor(self.quantiles)
        ranks = self._ranks(x, quantiles)
        scores = tf.clip_by_value(tf.math.ndtri(ranks), -NORMAL_CLIP, NORMAL_CLIP)
        return tf.cast(tf.transpose(scores), self.compute_dtype)

    def _ranks(self, x, quantiles):
        """Uniform ranks in [0, 1] of `x` `(f, batch)` among `quantiles` `(f, n)`."""
        count = tf.shape(quantiles)[1]
        levels = tf.linspace(tf.constant(0.0, tf.float64), 1.0, count)
        levels = tf.broadcast_to(levels[None, :], tf.shape(quantiles))
        if self.n_quantiles == 1:  # every value is at or beyond the one quantile
            ranks = tf.zeros_like(x)
        else:
            forward = _interpolate(x, quantiles, levels)
            backward = _interpolate(-x, -tf.reverse(quantiles, [1]), -tf.reverse(levels, [1]))
            ranks = 0.5 * (forward - backward)
        ranks = tf.where(x + BOUNDS_THRESHOLD > quantiles[:, -1:], tf.ones_like(ranks), ranks)
        ranks = tf.where(x - BOUNDS_THRESHOLD < quantiles[:, :1], tf.zeros_like(ranks), ranks)
        return tf.where(tf.math.is_nan(x), x, ranks)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "n_quantiles": self.n_quantiles}
