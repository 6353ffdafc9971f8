"""The numeric embeddings checked against the papers' formulas, on columns with many repeated values.

Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022), eq. 1 (piecewise-linear encoding) and section 3.3
(periodic, PLR); NumPy references of those formulas against the Keras
layers, on a column shaped like concrete's slag and fly ash (half zeros), and
the pipeline's wiring: the embedding receives the normalized numbers and its
bins are quantiles of those same numbers (the former probe fed raw numbers,
which made piecewise-linear networks lose badly on regression sets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kerasflow.heavy import import_tensorflow

import_tensorflow()

import keras  # noqa: E402

from kerasflow.features.inputs import build_input_layers  # noqa: E402
from kerasflow.features.numeric_embeddings import (  # noqa: E402
    PeriodicEmbedding,
    PiecewiseLinearEncoding,
    fit_quantile_bins,
)
from kerasflow.features.tabular import fit_features, frame_to_inputs  # noqa: E402


def _zero_heavy(n=400, seed=0):
    """Two concrete-like columns: half zeros then a skewed tail in the hundreds, and integers with ties."""
    rng = np.random.default_rng(seed)
    slag = np.where(rng.random(n) < 0.5, 0.0, rng.gamma(2.0, 60.0, n))
    age = rng.choice([3.0, 7.0, 14.0, 28.0, 28.0, 28.0, 56.0, 90.0, 365.0], n)
    return np.c_[slag, age]


def _ple_reference(x, edges):
    """Eq. 1 of the paper for one feature: component t is 1 right of bin t, 0 left of it, the relative position inside.

    The first bin is open to the left and the last to the right (values
    outside the training range extrapolate); a single bin is unclipped.
    """
    edges = np.asarray(edges, dtype="float64")
    left, width = edges[:-1], np.diff(edges)
    components = (np.asarray(x, dtype="float64")[:, None] - left) / width
    lower = np.zeros(len(width))
    upper = np.ones(len(width))
    lower[0], upper[-1] = -np.inf, np.inf
    return np.clip(components, lower, upper)


def _layout(components, max_bins):
    """The layer's layout: a feature's last component in the last column, zeros between."""
    out = np.zeros((components.shape[0], max_bins))
    out[:, :components.shape[1] - 1] = components[:, :-1]
    out[:, -1] = components[:, -1]
    return out


def test_quantile_bins_of_a_zero_heavy_column_have_no_empty_bin():
    rows = _zero_heavy()
    bins = fit_quantile_bins(rows, 48)
    for edges, column in zip(bins, rows.T):
        assert np.all(np.diff(edges) > 0)  # the tied quantiles (every zero) merged: no zero-width bin
        assert edges[0] == column.min() and edges[-1] == column.max()
        counts = np.histogram(column, edges)[0]
        assert counts.min() > 0  # every bin holds training rows
    assert bins[0][0] == 0.0 and len(bins[0]) < 30  # half the quantiles are 0: about 25 bins remain
    # few distinct values: each is an edge (quantiles interpolate between them, as the reference's do)
    assert {3.0, 7.0, 14.0, 28.0, 56.0, 90.0, 365.0} <= set(bins[1]) and len(bins[1]) <= 9


def test_piecewise_linear_encoding_is_the_papers_formula_on_repeated_values():
    rows = _zero_heavy()
    bins = fit_quantile_bins(rows, 48)
    layer = PiecewiseLinearEncoding(bins)
    probe = np.r_[rows[:50], [[-10.0, 1.0], [1000.0, 400.0], [0.0, 28.0]]].astype("float32")
    encoded = np.asarray(layer(probe))
    max_bins = max(len(edges) - 1 for edges in bins)
    assert encoded.shape == (len(probe), 2, max_bins)
    for j, edges in enumerate(bins):
        expected = _layout(_ple_reference(probe[:, j], edges), max_bins)
        np.testing.assert_allclose(encoded[:, j], expected, rtol=1e-5, atol=1e-4)
        # the encoding is lossless: x = first edge + sum of components x bin widths
        widths = np.zeros(max_bins)
        widths[:len(edges) - 2], widths[-1] = np.diff(edges)[:-1], np.diff(edges)[-1]
        np.testing.assert_allclose(edges[0] + encoded[:, j] @ widths, probe[:, j], rtol=1e-4, atol=1e-2)
    assert np.all(encoded[-1, 0] == 0.0)  # a zero (the first edge) encodes as all zeros


def test_periodic_embedding_is_relu_of_a_linear_map_of_cos_and_sin():
    rows = ((_zero_heavy(32) - 50.0) / 100.0).astype("float32")
    for lite in (True, False):
        layer = PeriodicEmbedding(d_embedding=5, n_frequencies=6, sigma=0.1, lite=lite, seed=3)
        outputs = np.asarray(layer(rows))
        c = np.asarray(layer.frequencies, dtype="float64")
        angles = 2 * np.pi * rows[:, :, None] * c
        periodic = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)
        kernel, bias = np.asarray(layer.kernel, dtype="float64"), np.asarray(layer.bias, dtype="float64")
        linear = periodic @ kernel + bias if lite else np.einsum("bfi,fio->bfo", periodic, kernel) + bias
        np.testing.assert_allclose(outputs, np.maximum(linear, 0.0), atol=1e-5)
        assert np.all(np.abs(c) <= 2 * 0.1 + 1e-7)  # N(0, sigma) truncated at two standard deviations


def test_the_pipeline_embeds_normalized_numbers_with_bins_of_normalized_numbers():
    values = _zero_heavy()
    frame = pd.DataFrame(values, columns=["slag", "age"])
    spec = fit_features(frame, ["slag", "age"], [], numeric_embedding="piecewise_linear")
    inputs, encoded = build_input_layers(spec, seed=0)
    model = keras.Model(inputs, encoded)
    layer = model.get_layer("piecewise_linear_encoding")
    received = np.asarray(keras.Model(model.inputs, layer.input)(frame_to_inputs(frame, spec)))
    z = (values - values.mean(0)) / values.std(0)
    np.testing.assert_allclose(received, z, rtol=1e-4, atol=1e-4)
    for j, edges in enumerate(spec.bins):
        np.testing.assert_allclose(edges, fit_quantile_bins(z, 48)[j], atol=1e-6)
        assert max(abs(edges[0]), abs(edges[-1])) < 10  # standardized, not the raw hundreds
    # the linear part of "version B" sees standardized numbers: its outputs stay at the scale of its weights
    embedded = np.asarray(layer(received))
    assert np.abs(embedded).max() < 10 * (abs(z).max() + 1) * 16**-0.5
