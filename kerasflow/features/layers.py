"""Custom Keras layers that travel inside exported kerasflow models.

This module is shipped with every logged model (MLflow `code_paths`), so it
must import nothing beyond Keras, the standard library and its shipped siblings `text_layers`,
`numeric_embeddings` and `tabm_layers` (imported at the end, so loading any model registers every custom object).
"""

from __future__ import annotations

import math

import keras


@keras.saving.register_keras_serializable(package="kerasflow")
class FillMissing(keras.layers.Layer):
    """Replaces NaN entries column by column with fixed fill values.

    The fill values are statistics of the training split, so missing values
    are handled the same way in training, evaluation and serving.

    Args:
        values: One fill value per input column.
    """

    def __init__(self, values, **kwargs):
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, inputs):
        fill = keras.ops.convert_to_tensor(self.values, dtype=inputs.dtype)
        return keras.ops.where(keras.ops.isnan(inputs), fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "values": self.values}


# log1p of the targets stays within these bounds: expm1 beyond 88 overflows float32, and below -10 it is -1 to
# float32 precision (whose log1p is -inf)
LOG_TARGET_BOUNDS = (-10.0, 88.0)


@keras.saving.register_keras_serializable(package="kerasflow")
class TargetInverse(keras.layers.Layer):
    """Maps a standardized (and possibly log) regression output back to the label's units.

    `y = z * scale + offset`, then `expm1(y)` when `transform` is `log`,
    `y` clipped first: to `LOG_TARGET_BOUNDS` in training, and outside
    training (validation, evaluation, serving) to `bounds`, the training
    labels' range, so a network extrapolating in log space cannot answer
    far beyond any label it saw (one such answer dominated the test RMSE of
    ames in `benchmarks/tabular_probe.py`). The statistics come from the
    training labels (`kerasflow.features.labels.fit_target`).

    Args:
        offset: Training mean of the transformed label.
        scale: Its training standard deviation.
        transform: `none` or `log`.
        bounds: `[low, high]` of the training labels after `log1p`, or None.
    """

    def __init__(self, offset=0.0, scale=1.0, transform="none", bounds=None, **kwargs):
        super().__init__(**kwargs)
        self.offset, self.scale, self.transform = float(offset), float(scale), str(transform)
        self.bounds = [float(b) for b in bounds] if bounds else None

    def call(self, inputs, training=None):
        values = inputs * self.scale + self.offset
        if self.transform != "log":
            return values
        low, high = LOG_TARGET_BOUNDS
        if self.bounds and not training:
            low, high = max(low, self.bounds[0]), min(high, self.bounds[1])
        return keras.ops.expm1(keras.ops.clip(values, low, high))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "scale": self.scale, "transform": self.transform,
                "bounds": self.bounds}


@keras.saving.register_keras_serializable(package="kerasflow")
class TargetSpaceLoss(keras.losses.Loss):
    """A regression loss taken in the transformed target's space, on a model that answers in the label's units.

    Both the label and the prediction go through the forward transform,
    `(log1p(y) - offset) / scale` (without `log1p` for `none`), before the
    base loss; on a `TargetInverse` output this is the loss of the
    standardized network output itself.

    Args:
        loss: The base loss's name (e.g. `mse`).
        offset: Training mean of the transformed label.
        scale: Its training standard deviation.
        transform: `none` or `log`.
    """

    def __init__(self, loss="mse", offset=0.0, scale=1.0, transform="none", name="target_space_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.base_name, self.offset, self.scale, self.transform = str(loss), float(offset), float(scale), str(transform)
        self.base = keras.losses.get(self.base_name)

    def forward(self, values):
        """The label-unit values in the standardized transformed space."""
        values = keras.ops.cast(values, "float32")
        if self.transform == "log":
            values = keras.ops.log1p(keras.ops.maximum(values, math.expm1(LOG_TARGET_BOUNDS[0])))
        return (values - self.offset) / self.scale

    def call(self, y_true, y_pred):
        return self.base(self.forward(y_true), self.forward(y_pred))

    def get_config(self):
        return {**super().get_config(), "loss": self.base_name, "offset": self.offset, "scale": self.scale,
                "transform": self.transform}


from kerasflow.features import numeric_embeddings, tabm_layers, text_layers  # noqa: E402,F401  (register their layers)
