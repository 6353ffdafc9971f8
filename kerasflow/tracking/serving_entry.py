"""Models-from-code entry point: MLflow runs this file to build the pyfunc model.

It adapts `kerasflow.serving.Predictor` to MLflow's `PythonModel` interface.
Rows the predictor refuses (a `kerasflow.errors.BadInputError`: missing
columns, text or ±inf in a numeric column, ...) become a `RefusedInput`,
an `MlflowException` with `INVALID_PARAMETER_VALUE`, which `mlflow models
serve` answers with HTTP 400 and the predictor's message.
"""

import json

import mlflow.models
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from kerasflow.errors import BadInputError, describe


class RefusedInput(MlflowException):
    """Input rows the model refuses; a 400 from the scoring server.

    The scoring server prefixes the message of an exception raised in
    `predict` with a dump of the whole request frame
    (`Failed to predict data '<frame>'`); the response body keeps the
    kerasflow message alone, so its first line names the columns at fault.
    The original error is the exception's `__cause__`.

    Args:
        message: What is wrong, naming columns and rows.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
        self.reason = message

    def serialize_as_json(self) -> str:
        """Returns the HTTP error body: `{"error_code", "message"}` with the kerasflow message."""
        return json.dumps({"error_code": self.error_code, "message": self.reason})


class KerasflowModel(mlflow.pyfunc.PythonModel):
    """MLflow's view of a `kerasflow.serving.predictor.Predictor`."""

    def load_context(self, context):
        """Loads the Keras model and the feature and label specs from the model's artifacts."""
        from kerasflow.serving.predictor import Predictor

        a = context.artifacts
        self.predictor = Predictor(a["keras_model"], a["features"], a["labels"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Raw rows in, `prediction` and `proba_<class>` columns out (see `Predictor.predict`).

        Raises:
            RefusedInput: The predictor refused the rows (a `BadInputError`,
                kept as the cause).
        """
        try:
            return self.predictor.predict(model_input)
        except BadInputError as exc:
            raise RefusedInput(describe(exc)) from exc


mlflow.models.set_model(KerasflowModel())
