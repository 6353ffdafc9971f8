"""The predictor every kerasflow model serves with.

`mlflow.keras`'s own pyfunc flattens a DataFrame to `.values`, which loses
the column names and mixed types that a model with in-graph preprocessing
needs. `Predictor` keeps the Keras model (`.keras` file, preprocessing
layers inside) and maps raw rows by column name to the named model inputs,
then returns labelled predictions: a `prediction` column and, for
classifiers, one `proba_<class>` column per class.

Image models (`kerasflow.features.images.ImageSpec`) take, per row, either
the pixel columns they were trained on (e.g. `digits`' 64 columns), or, for
models trained on an image folder, an `image` column of base64-encoded image
files (PNG, JPEG, ...), which are decoded and resized as in training. A bad
image is an error that names its row.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kerasflow.features.outputs import decode_outputs
from kerasflow.features.tabular import FeatureSpec, LabelSpec, as_model_inputs, frame_to_inputs
from kerasflow.quiet import silence


class Predictor:
    """Serves a kerasflow Keras model on raw feature rows.

    Args:
        model_path: The `.keras` file.
        features_path: The fitted feature spec JSON.
        labels_path: The label spec JSON.

    Example:

    ```python
    predictor = Predictor("model.keras", "features.json", "labels.json")
    predictor.predict(raw_rows)  # -> prediction, proba_<class> columns
    ```
    """

    def __init__(self, model_path: str, features_path: str, labels_path: str) -> None:
        silence()
        import keras  # deferred: TensorFlow loads only when a model is served

        import kerasflow.features.layers  # noqa: F401  (registers custom layers; deferred: imports Keras)

        self.features = FeatureSpec.load(features_path)
        self.labels = LabelSpec.load(labels_path)
        self.model = keras.models.load_model(model_path, compile=False)

    def predict(self, rows: Any) -> pd.DataFrame:
        """Predicts from a DataFrame of raw feature rows.

        Args:
            rows: A pandas DataFrame (or anything `pd.DataFrame` takes) with
                the training feature columns.

        Returns:
            A DataFrame with `prediction` and, for classifiers, `proba_<class>`
            columns; a model with several outputs prefixes them by output
            (`<output>.prediction`, `<output>.proba_<class>`).
        """
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        raw = self.model.predict(as_model_inputs(frame_to_inputs(frame, self.features)), verbose=0)
        return decode_outputs(raw, self.labels).set_index(frame.index)
