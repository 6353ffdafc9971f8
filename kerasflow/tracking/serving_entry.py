"""Models-from-code entry point: MLflow runs this file to build the pyfunc model.

It adapts `kerasflow.serving.Predictor` to MLflow's `PythonModel` interface.
"""

import mlflow.models
import mlflow.pyfunc
import pandas as pd


class KerasflowModel(mlflow.pyfunc.PythonModel):
    """MLflow's view of a `kerasflow.serving.predictor.Predictor`."""

    def load_context(self, context):
        """Loads the Keras model and the feature and label specs from the model's artifacts."""
        from kerasflow.serving.predictor import Predictor

        a = context.artifacts
        self.predictor = Predictor(a["keras_model"], a["features"], a["labels"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Raw rows in, `prediction` and `proba_<class>` columns out (see `Predictor.predict`)."""
        return self.predictor.predict(model_input)


mlflow.models.set_model(KerasflowModel())
