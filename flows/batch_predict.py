"""Batch prediction: a registered model scores a CSV or Parquet file of raw rows."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from kerasflow.data.expectations.run import release_validator
from kerasflow.flows.results import PredictResult
from kerasflow.tasks.predict import read_input, resolve_model, score_rows
from kerasflow.tasks.runs import recording_outcome
from kerasflow.tracking import model_run


@flow(name="batch-predict", log_prints=False)
def batch_predict_flow(model_uri: str, input_path: str, output_path: str | None = None,
                       tracking_uri: str | None = None) -> PredictResult:
    """Checks input rows and writes them back with the model's predictions, chunk by chunk.

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
        A `PredictResult`: the run id, the model version used, the output path, the row count
        and a summary of the predictions.
    """
    model = resolve_model(model_uri, tracking_uri)
    with model_run(model, "predict", flow_run.get_id(), tracking_uri) as run, \
            recording_outcome(run, "predict", model.name or model.uri):  # the run's description, the outcome tag
        source, options = read_input(run.tracker, input_path, model)
        try:
            result = score_rows(run.tracker, model, source, options, run.workdir, output_path)
        finally:  # the validation worker runs only for expectations the vectorized counts do not cover
            release_validator()
    return PredictResult(run_id=run.id, experiment_id=run.experiment_id, model_uri=model.version_uri, **result)
