"""Custom Keras layers that travel inside exported kerasflow models.

This module is shipped with every logged model (MLflow `code_paths`), so it
must import nothing beyond Keras and its shipped siblings `text_layers`,
`numeric_embeddings` and `tabm_layers` (imported at the end, so loading any model registers every custom object).
"""

from __future__ import annotations

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


from kerasflow.features import numeric_embeddings, tabm_layers, text_layers  # noqa: E402,F401  (register their layers)
