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

Which rows are answered is the policy of `kerasflow.serving.rows`, the same
for `kerasflow predict`: rows the model cannot answer are refused with a
`BadInputError` that names the columns and rows, never answered with NaN
probabilities: missing columns, text or ±inf or float32-overflowing numbers
in a numeric column (`kerasflow.features.tabular.InputRowsError`), and
finite values so extreme that the model's output overflows. A missing value
is filled as in training; columns the model does not take are ignored, with
a warning naming them.

Small batches (a scoring request) run through a compiled inference
function traced and warmed up at load (`kerasflow.serving.inference`),
large ones through `model.predict`; both give the same outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kerasflow.features.labels import LabelSpec
from kerasflow.features.outputs import decode_outputs
from kerasflow.features.tabular import (
    NUMERIC_INPUT,
    ROWS_SHOWN,
    FeatureSpec,
    InputRowsError,
    as_model_inputs,
    frame_to_inputs,
    inference_batch_size,
    row_label,
    show_value,
)
from kerasflow.quiet import silence
from kerasflow.serving.inference import compile_inference
from kerasflow.serving.rows import admit_rows


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
        self.compiled = compile_inference(self.model)  # traced and warmed up now, not at the first request

    def predict(self, rows: Any) -> pd.DataFrame:
        """Predicts from a DataFrame of raw feature rows.

        Args:
            rows: A pandas DataFrame (or anything `pd.DataFrame` takes) with
                the training feature columns; other columns are ignored, with
                a warning naming them (`kerasflow.serving.rows`).

        Returns:
            A DataFrame with `prediction` and, for classifiers, `proba_<class>`
            columns; a model with several outputs prefixes them by output
            (`<output>.prediction`, `<output>.proba_<class>`).

        Raises:
            FeatureError: Feature columns are missing (all are named).
            InputRowsError: Numeric columns hold text, ±inf, values beyond
                float32's range or missing values without a training fill
                value, or rows are so extreme that the model's output is not
                finite; columns and rows are named.
            ImageDataError: Rows hold bad images (named by row).
        """
        frame = admit_rows(rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows), self.features, "input").rows
        inputs = frame_to_inputs(frame, self.features)
        raw = self.run_model(as_model_inputs(inputs))
        predictions = decode_outputs(raw, self.labels)
        check_finite_outputs(predictions, frame, inputs, self.features)
        return predictions.set_index(frame.index)

    def run_model(self, tensors: dict[str, Any]) -> Any:
        """Runs the model on named inputs: the compiled function for a small batch, `model.predict` for a large one.

        Args:
            tensors: Named model inputs (`as_model_inputs`).

        Returns:
            The model's outputs as NumPy arrays (an array, or a dict by output name).
        """
        if self.compiled is not None and self.compiled.accepts(tensors):
            return self.compiled(tensors)
        return self.model.predict(tensors, batch_size=inference_batch_size(tensors), verbose=0)


def check_finite_outputs(predictions: pd.DataFrame, frame: pd.DataFrame, inputs: dict[str, np.ndarray],
                         features: Any) -> None:
    """Refuses rows whose predicted numbers are not finite.

    Finite inputs can still overflow inside the network (e.g. 3e38 in a
    column whose training values were near 5); such a row would get NaN
    probabilities. Each is named with its numeric value farthest from the
    training mean (counted in training standard deviations).

    Args:
        predictions: Decoded predictions, one row per input row.
        frame: The raw input rows.
        inputs: The model inputs made from them (`frame_to_inputs`).
        features: The feature spec.

    Raises:
        InputRowsError: Rows with NaN or infinite predicted numbers.
    """
    numbers = predictions.select_dtypes("number").to_numpy(dtype="float64")
    bad = np.flatnonzero(~np.isfinite(numbers).all(axis=1))
    if not bad.size:
        return
    blamed = [_most_extreme(inputs, features, int(p)) for p in bad]
    shown = ", ".join(row_label(int(p), frame.index[p]) + (f" ({c!r} = {show_value(v)})" if c else "")
                      for p, (c, v) in zip(bad[:ROWS_SHOWN], blamed))
    more = f" and {bad.size - ROWS_SHOWN} more" if bad.size > ROWS_SHOWN else ""
    rows = "row has" if bad.size == 1 else "rows have"
    columns = list(dict.fromkeys(c for c, _ in blamed if c))
    raise InputRowsError(columns, [f"{bad.size} {rows} values too extreme for the model, whose output "
                                   f"overflows (not finite): {shown}{more}"])


def _most_extreme(inputs: dict[str, np.ndarray], features: Any, position: int) -> tuple[str | None, float]:
    """Returns the numeric column of a row farthest from its training mean (in standard deviations), and its value."""
    if not isinstance(features, FeatureSpec) or not features.numeric:
        return None, float("nan")
    values = inputs[NUMERIC_INPUT][position].astype("float64")
    spread = np.sqrt(np.maximum(np.asarray(features.variance, dtype="float64"), 1e-12))
    distance = np.nan_to_num(np.abs(values - np.asarray(features.mean, dtype="float64")) / spread, nan=-1.0)
    column = int(np.argmax(distance))
    return features.numeric[column], float(values[column])
