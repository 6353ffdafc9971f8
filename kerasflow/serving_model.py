"""Models-from-code entry point: MLflow runs this file to build the pyfunc model."""

import mlflow.models

from kerasflow.pyfunc import KerasflowModel

mlflow.models.set_model(KerasflowModel())
