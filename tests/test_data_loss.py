"""`val_data_loss`: the validation loss without the weight penalty, which the search ranks trials on by default."""

from __future__ import annotations

import pytest


def test_val_data_loss_is_the_loss_of_the_predictions_on_the_validation_rows() -> None:
    import keras
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from kerasflow.training.fitting import data_loss_callback

    x, y = load_breast_cancer(return_X_y=True)
    x = StandardScaler().fit_transform(x).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((x.shape[1],)),
                              keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(0.05)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    history = model.fit(x[:400], y[:400], validation_data=(x[400:], y[400:]), epochs=2, verbose=0,
                        callbacks=[data_loss_callback()]).history
    predicted = model.predict(x[400:], verbose=0)
    expected = float(np.mean(keras.losses.binary_crossentropy(y[400:, None].astype("float32"), predicted)))
    assert history["val_data_loss"][-1] == pytest.approx(expected, rel=1e-4)
    assert history["val_loss"][-1] - history["val_data_loss"][-1] == pytest.approx(
        0.05 * float(np.sum(model.layers[0].kernel.numpy() ** 2)), rel=1e-3)
