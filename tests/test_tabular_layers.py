"""The tabular deep-learning layers: numeric embeddings, quantile normalization and TabM's ensemble.

Real Keras on tiny data: shapes, hand-computed encodings, agreement with
scikit-learn's QuantileTransformer, a `.keras` round trip of a model that uses
every layer, and a small TabM that learns a real data set.
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasflow.heavy import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasflow.features.numeric_embeddings import (  # noqa: E402
    PeriodicEmbedding,
    PiecewiseLinearEncoding,
    QuantileNormalization,
    fit_quantile_bins,
    fit_quantiles,
)
from kerasflow.features.tabm_layers import (  # noqa: E402
    EnsembleView,
    LinearBatchEnsemble,
    LinearEnsemble,
    MeanOverMembers,
    MemberMeanLoss,
)
from kerasflow.models.tabm_backbone import (  # noqa: E402
    member_loss,
    tabm_body,
    tabm_head,
    tabm_models,
    tabm_optimizer,
)


def _rows(n=300, seed=0):
    """Numeric rows with a skewed column, a discrete one with ties and a constant one."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.normal(size=n), rng.exponential(size=n), rng.integers(0, 4, n), np.full(n, 2.5)].astype("float32")


def test_fit_quantile_bins_handles_ties_and_constant_columns():
    rows = _rows()
    bins = fit_quantile_bins(rows, n_bins=8)
    assert [len(edges) for edges in bins] == [9, 9, 4, 2]
    assert bins[2] == [0.0, 1.0, 2.0, 3.0]
    assert bins[3] == [2.5, 3.5]
    assert all(np.all(np.diff(edges) > 0) for edges in bins)
    assert fit_quantile_bins(np.array([[np.nan], [np.nan]]), 4) == [[0.0, 1.0]]


def test_piecewise_linear_encoding_matches_hand_computed_values():
    bins = [[0.0, 1.0, 3.0, 4.0], [10.0, 20.0]]
    layer = PiecewiseLinearEncoding(bins)
    values = np.array([[-1.0, 5.0], [0.5, 15.0], [2.0, 25.0], [5.0, 10.0]], dtype="float32")
    # feature 0: bins [0,1], [1,3], [3,4]: first bin open to the left, last open to the right
    # feature 1: a single bin is plain min-max scaling, unclipped, in the last column
    expected = np.array([
        [[-1.0, 0.0, 0.0], [0.0, 0.0, -0.5]],
        [[0.5, 0.0, 0.0], [0.0, 0.0, 0.5]],
        [[1.0, 0.5, 0.0], [0.0, 0.0, 1.5]],
        [[1.0, 1.0, 2.0], [0.0, 0.0, 0.0]],
    ])
    np.testing.assert_allclose(np.asarray(layer(values)), expected, atol=1e-6)


def test_piecewise_linear_embedding_starts_as_a_linear_embedding():
    rows = _rows()
    layer = PiecewiseLinearEncoding(fit_quantile_bins(rows, 8), d_embedding=6, seed=1)
    outputs = np.asarray(layer(rows[:5]))
    assert outputs.shape == (5, 4, 6)
    kernel, bias = (np.asarray(w) for w in (layer.linear_kernel, layer.linear_bias))
    np.testing.assert_allclose(outputs, rows[:5, :, None] * kernel + bias, atol=1e-5)
    assert len(layer.trainable_weights) == 3


def test_periodic_embedding_shapes_and_trainable_frequencies():
    rows = _rows()[:16]
    for lite in (True, False):
        layer = PeriodicEmbedding(d_embedding=5, n_frequencies=7, sigma=0.5, lite=lite, seed=0)
        outputs = layer(rows)
        assert tuple(outputs.shape) == (16, 4, 5)
        assert float(keras.ops.min(outputs)) >= 0.0  # ReLU
        assert layer.frequencies.trainable and tuple(layer.frequencies.shape) == (4, 7)
        kernel_shape = (14, 5) if lite else (4, 14, 5)
        assert tuple(layer.kernel.shape) == kernel_shape
        with tf.GradientTape() as tape:
            loss = keras.ops.sum(layer(rows))
        assert float(keras.ops.sum(keras.ops.abs(tape.gradient(loss, layer.frequencies)))) > 0
    with pytest.raises(ValueError):
        PeriodicEmbedding(sigma=0.0)


def test_quantile_normalization_matches_scikit_learn():
    from sklearn.preprocessing import QuantileTransformer

    # scikit-learn on float64 copies: on float32 its 1e-7 bound tests vanish in rounding
    rows, unseen = _rows(400), _rows(200, seed=1) * 1.5
    expected = QuantileTransformer(n_quantiles=100, output_distribution="normal").fit(rows.astype("float64"))
    layer = QuantileNormalization(n_quantiles=100)
    layer.adapt(rows)
    for values in (rows, unseen):
        np.testing.assert_allclose(np.asarray(layer(values)), expected.transform(values.astype("float64")), atol=1e-4)
    interior = np.abs(expected.transform(unseen.astype("float64"))) < 5
    assert interior.mean() > 0.5
    fixed = QuantileNormalization(fit_quantiles(rows, 100))
    np.testing.assert_allclose(np.asarray(fixed(unseen)), np.asarray(layer(unseen)))
    assert np.isnan(np.asarray(layer(np.array([[np.nan, 1.0, 1.0, 1.0]], "float32")))[0, 0])


def test_linear_batch_ensemble_with_one_member_and_unit_scaling_is_a_dense_layer():
    rows = _rows()[:8]
    ensemble = LinearBatchEnsemble(3, k=1)
    dense = keras.layers.Dense(3)
    ensemble_out = ensemble(EnsembleView(1)(rows))
    dense.build((None, 4))
    dense.set_weights([np.asarray(ensemble.kernel), np.asarray(ensemble.bias)[0]])
    np.testing.assert_allclose(np.asarray(ensemble_out)[:, 0], np.asarray(dense(rows)), atol=1e-5)


def test_members_differ_only_through_their_scaling():
    rows = _rows()[:8]
    view = EnsembleView(4)(rows)
    assert tuple(view.shape) == (8, 4, 4)
    np.testing.assert_array_equal(np.asarray(EnsembleView(4)(view)), np.asarray(view))
    with pytest.raises(ValueError):
        EnsembleView(3)(view)
    same = np.asarray(LinearBatchEnsemble(3, k=4)(view))
    np.testing.assert_allclose(same[:, 0], same[:, 3], atol=1e-6)  # identical members at TabM's init
    signs = LinearBatchEnsemble(3, k=4, r_init="random-signs", seed=3)
    differ, r = np.asarray(signs(view)), np.asarray(signs.r)
    assert set(np.unique(r)) <= {-1.0, 1.0}
    for first, second in ((0, 1), (0, 2), (0, 3)):
        if not np.array_equal(r[first], r[second]):  # members with other signs predict otherwise
            assert np.abs(differ[:, first] - differ[:, second]).max() > 1e-3
    assert len(np.unique(r, axis=0)) > 1
    chunked = LinearBatchEnsemble(3, k=2, r_init="normal", r_chunks=[2, 2], seed=0)
    chunked.build((None, 2, 4))
    r = np.asarray(chunked.r)
    np.testing.assert_array_equal(r[:, 0], r[:, 1])
    np.testing.assert_array_equal(r[:, 2], r[:, 3])
    heads = LinearEnsemble(2, k=4, seed=0)(view)
    assert tuple(heads.shape) == (8, 4, 2)


def test_mean_over_members_averages_probabilities_and_loss_averages_members():
    logits = np.array([[[2.0, 0.0], [0.0, 2.0]]], dtype="float32")  # 1 example, 2 members
    mean = np.asarray(MeanOverMembers("softmax")(logits))
    np.testing.assert_allclose(mean, [[0.5, 0.5]], atol=1e-6)
    base = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss = MemberMeanLoss(base)(np.array([0]), logits)
    expected = (float(base(np.array([0]), logits[:, 0])) + float(base(np.array([0]), logits[:, 1]))) / 2
    assert abs(float(loss) - expected) < 1e-6
    regression = MemberMeanLoss("mean_squared_error")(np.array([[1.0]]), np.array([[[0.0], [3.0]]], "float32"))
    assert abs(float(regression) - 2.5) < 1e-6


def _model_with_every_layer(rows):
    """A TabM on quantile-normalized inputs with both numeric embeddings."""
    inputs = keras.Input((rows.shape[1],), name="x")
    normalized = QuantileNormalization(fit_quantiles(rows, 50))(inputs)
    periodic = PeriodicEmbedding(d_embedding=4, n_frequencies=6, seed=0)(normalized)
    piecewise = PiecewiseLinearEncoding(fit_quantile_bins(rows, 6), d_embedding=4, seed=1)(inputs)
    bare = PiecewiseLinearEncoding(fit_quantile_bins(rows, 3))(inputs)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(t) for t in (periodic, piecewise, bare)])
    members = tabm_head(tabm_body(x, k=4, width=16, depth=2, r_init="normal", seed=2), 3, seed=3)
    return tabm_models(inputs, members, "softmax")


def test_models_with_every_layer_survive_a_keras_round_trip(tmp_path):
    rows = _rows(120)
    labels = np.digitize(rows[:, 0], [-0.5, 0.5])
    train_model, predict_model = _model_with_every_layer(rows)
    train_model.compile("adam", loss=member_loss(keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
    train_model.fit(rows, labels, epochs=2, batch_size=32, verbose=0)
    assert tuple(train_model.output.shape) == (None, 4, 3) and tuple(predict_model.output.shape) == (None, 3)
    predict_model.compile("adam", loss="sparse_categorical_crossentropy")
    for model in (train_model, predict_model):
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(np.asarray(loaded(rows)), np.asarray(model(rows)), atol=1e-6)
    loaded = keras.saving.load_model(str(tmp_path / f"{train_model.name}.keras"))
    assert isinstance(loaded.loss, MemberMeanLoss)
    serve = tf.function(loaded.__call__)
    np.testing.assert_allclose(np.asarray(serve(rows)), np.asarray(loaded(rows)), atol=1e-5)


def test_a_small_tabm_learns_breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(0)
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features.astype("float32"), labels, test_size=0.3, random_state=0, stratify=labels
    )
    inputs = keras.Input((features.shape[1],))
    x = QuantileNormalization(fit_quantiles(x_train, 100))(inputs)
    members = tabm_head(tabm_body(x, k=8, width=64, depth=2, dropout=0.1, seed=0), 2, seed=1)
    train_model, predict_model = tabm_models(inputs, members, "softmax")
    train_model.compile(tabm_optimizer(), loss=member_loss(keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
    train_model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    accuracy = float(np.mean(predict_model.predict(x_test, verbose=0).argmax(axis=1) == y_test))
    assert accuracy > 0.9


def test_tabm_optimizer_exempts_biases_and_frequencies_from_weight_decay():
    train_model, _ = _model_with_every_layer(_rows(40))
    variables = train_model.trainable_variables
    before = [np.asarray(v).copy() for v in variables]
    # with zero gradients Adam's step is zero, so only the decoupled weight decay moves a weight
    tabm_optimizer(weight_decay=0.1).apply_gradients([(keras.ops.zeros_like(v), v) for v in variables])
    moved = {}
    for variable, old in zip(variables, before):
        moved.setdefault(variable.name, []).append(not np.allclose(np.asarray(variable), old))
    assert not any(moved["bias"] + moved["frequencies"] + moved["linear_kernel"] + moved["linear_bias"])
    assert all(moved["kernel"] + moved["r"] + moved["s"])  # (ple_kernel starts at zero: nothing to decay)
