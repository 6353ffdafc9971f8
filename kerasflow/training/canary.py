"""The evaluation's predictions of a few raw rows: what infra validation compares the served model with.

The rows go through the evaluation's own path (`frame_to_inputs` on the raw
rows, `model.predict`, `decode_outputs`), not the serving `Predictor`, so a
served model that preprocesses its requests differently from how the model
was evaluated (training/serving skew) shows up as a difference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec
from kerasflow.features.outputs import decode_outputs
from kerasflow.features.tabular import FeatureSpec, as_model_inputs, frame_to_inputs


def serving_rows(features_path: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Returns raw rows as a client sends them to the served model: its input columns, images as files.

    Args:
        features_path: Feature spec JSON.
        rows: Raw rows (a listing, for image folders).

    Returns:
        The rows in the serving format (image specs encode the listed files
        as base64), as the model's input example was logged.
    """
    features = FeatureSpec.load(features_path)
    return features.serving_frame(rows) if hasattr(features, "serving_frame") else rows[features.columns]


def split_test_rows(split_path: str) -> list[int]:
    """Returns the test positions of a split."""
    return list(Split.load(split_path).test)


def evaluated_predictions(model_path: str | Path, features_path: str, labels_path: str,
                          rows: pd.DataFrame) -> pd.DataFrame:
    """Predicts raw rows as the test evaluation does.

    Args:
        model_path: The `.keras` file.
        features_path: Feature spec JSON.
        labels_path: Label spec JSON.
        rows: Raw rows (label columns are ignored).

    Returns:
        `prediction` and `proba_<class>` columns (prefixed by output for
        several outputs), one row per input row.
    """
    import keras  # deferred: importing Keras starts TensorFlow

    import kerasflow.features.layers  # noqa: F401  (registers custom layers; deferred: imports Keras)

    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    model = keras.models.load_model(model_path, compile=False)
    raw = model.predict(as_model_inputs(frame_to_inputs(rows, features)), verbose=0)  # string columns as tf.string
    return decode_outputs(raw, labels).reset_index(drop=True)
