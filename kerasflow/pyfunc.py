"""The MLflow pyfunc model that every kerasflow pipeline logs.

`mlflow.keras`'s own pyfunc flattens a DataFrame to `.values`, which loses
the column names and mixed types that a model with in-graph preprocessing
needs. This wrapper keeps the Keras model (`.keras` file, preprocessing
layers inside) and maps raw rows by column name to the named model inputs,
then returns labelled predictions: a `prediction` column and, for
classifiers, one `proba_<class>` column per class.

Image models (`tasks.images.ImageSpec`) take, per row, either the pixel
columns they were trained on (e.g. `digits`' 64 columns), or, for models
trained on an image folder, an `image` column of base64-encoded image files
(PNG, JPEG, ...), which are decoded and resized as in training. A bad image
is an error that names its row.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CODE_PATHS = [str(PACKAGE_ROOT / "kerasflow"), str(PACKAGE_ROOT / "tasks")]


class KerasflowModel(mlflow.pyfunc.PythonModel):
    """Serves a kerasflow Keras model on raw feature rows."""

    def load_context(self, context: Any) -> None:
        """Loads the Keras model and the feature and label specs."""
        from kerasflow.quiet import silence

        silence()
        import keras

        import kerasflow.layers  # noqa: F401  (registers custom layers)
        from tasks.preprocess import FeatureSpec, LabelSpec

        self.features = FeatureSpec.load(context.artifacts["features"])
        self.labels = LabelSpec.load(context.artifacts["labels"])
        self.model = keras.models.load_model(context.artifacts["keras_model"], compile=False)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Predicts from a DataFrame of raw feature rows.

        Args:
            context: The MLflow context (unused after loading).
            model_input: A pandas DataFrame with the training feature columns.
            params: Unused.

        Returns:
            A DataFrame with `prediction` and, for classifiers, `proba_<class>`
            columns; a model with several outputs prefixes them by output
            (`<output>.prediction`, `<output>.proba_<class>`).
        """
        from tasks.functional import decode_outputs
        from tasks.preprocess import as_model_inputs, frame_to_inputs

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        raw = self.model.predict(as_model_inputs(frame_to_inputs(frame, self.features)), verbose=0)
        return decode_outputs(raw, self.labels).set_index(frame.index)


def log_model(model_path: str, features_path: str, labels_path: str, example: Any) -> Any:
    """Logs a Keras model as a kerasflow pyfunc in the active run.

    Args:
        model_path: The `.keras` file.
        features_path: The feature spec JSON.
        labels_path: The label spec JSON.
        example: A few raw input rows (DataFrame) for the signature and example.

    Returns:
        MLflow's `ModelInfo`.
    """
    from mlflow.models import infer_signature

    from tasks.functional import decode_outputs, dummy_outputs
    from tasks.preprocess import FeatureSpec, LabelSpec

    features, labels = FeatureSpec.load(features_path), LabelSpec.load(labels_path)
    # image specs convert listings to their serving format (base64-encoded files)
    example = features.serving_frame(example) if hasattr(features, "serving_frame") else example[features.columns]
    output = decode_outputs(dummy_outputs(labels, len(example)), labels)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("serving_model.py")),
        artifacts={"keras_model": model_path, "features": features_path, "labels": labels_path},
        code_paths=CODE_PATHS,
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=_requirements(),
    )


def register_version(client: Any, name: str, info: Any, run_id: str) -> str:
    """Registers a logged model as a new version, creating the model if needed.

    Args:
        client: An `MlflowClient`.
        name: Registered model name.
        info: The `ModelInfo` of the logged model.
        run_id: The run that produced it.

    Returns:
        The new version number, as a string.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Trained and registered by kerasflow.")
    version = client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id)
    return str(version.version)


def _requirements() -> list[str]:
    names = ["mlflow", "tensorflow", "keras", "pandas", "numpy", "scikit-learn", "pydantic", "pillow"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins
