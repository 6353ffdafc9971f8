"""Batch prediction: a registered model scores a CSV or Parquet file of raw rows."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from kerasflow.tracking.registry import model_run
from kerasflow.tasks import predict_steps


@flow(name="batch-predict", log_prints=False)
def batch_predict_flow(model_uri: str, input_path: str, output_path: str | None = None,
                       tracking_uri: str | None = None) -> dict[str, Any]:
    """Validates input rows and writes them back with the model's predictions.

    Args:
        model_uri: `models:/NAME@ALIAS` (e.g. `@champion`),
            `models:/NAME/VERSION` or any MLflow model URI.
        input_path: CSV or Parquet file of raw feature rows, or a glob
            whose newest match is used.
        output_path: Where to write rows plus `prediction` (and
            `proba_<class>`) columns; `.parquet` writes Parquet. Default:
            `<input stem>.predictions.csv` next to the input.
        tracking_uri: MLflow store. Default: `MLFLOW_TRACKING_URI` or the
            local store.

    Returns:
        The run id, the model version used, the output path, the row count
        and a summary of the predictions.
    """
    model = predict_steps.resolve_model(model_uri, tracking_uri)
    with model_run(model, "predict", flow_run.get_id(), tracking_uri) as run:
        source, raw = predict_steps.read_input(run.id, input_path, run.workdir, tracking_uri)
        columns = predict_steps.validate_input(run.id, model, raw, tracking_uri)
        result = predict_steps.predict_rows(run.id, model, raw, columns, source, output_path, tracking_uri)
    return {"run_id": run.id, "experiment_id": run.experiment_id, "model_uri": model.version_uri, **result}
