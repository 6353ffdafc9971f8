"""Batch prediction: resolving the model, reading and checking the input, writing predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.data.expectations.run import require_valid, run_validation, validate_file
from kerasflow.data.load import fingerprint_frame, load_frame, reading_options, resolve_source
from kerasflow.data.predictions import (
    check_columns,
    check_numeric_input,
    join_predictions,
    output_location,
    prediction_suite,
    prediction_summary,
    write_rows,
)
from kerasflow.features.tabular import InputRowsError
from kerasflow.heavy import import_tensorflow
from kerasflow.tasks.policies import step_logger, transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import (
    REFERENCE_SUITE,
    input_types,
    load_run_json,
    model_features,
    predict_with,
    run_params,
)
from kerasflow.tracking.registry import ModelRef
from kerasflow.tracking.registry import resolve_model as resolve


@task(name="resolve-model", retries=0, cache_policy=NO_CACHE)
def resolve_model(model_uri: str, tracking_uri: str | None = None) -> ModelRef:
    """Resolves a model URI to its registered name, version and source run.

    Raises:
        ModelReferenceError: Unknown model name, alias or version.
    """
    return resolve(tracking.client_for(tracking.tracking_uri(tracking_uri)), model_uri)


@task(name="read-input", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def read_input(tracker: Tracker, input_path: str, workdir: str, model: ModelRef | None = None) -> tuple[str, str]:
    """Reads the input rows (CSV, Parquet, or the newest match of a glob) and fingerprints them.

    A CSV file is read as the model's training data was: with the
    `data.delimiter`, `data.encoding` and `data.decimal` of the run that
    logged it (a `;`-separated export with decimal commas, for example).

    Args:
        tracker: The prediction run.
        input_path: The file or glob.
        workdir: Where the rows are written as Parquet.
        model: The model that will score the rows. Default none (comma or
            sniffed delimiter, UTF-8, decimal point).

    Returns:
        `(source, rows)`: the file read, and its rows as Parquet in `workdir`.

    Raises:
        DataLoadError: The file is missing, empty or unreadable.
    """

    source = resolve_source(input_path)
    options = reading_options(run_params(tracker.client, model.run_id)) if model and model.run_id else {}
    frame = load_frame(source, **options)
    tracker.tags({"kerasflow.input": source, "kerasflow.data_fingerprint": fingerprint_frame(frame)})
    tracker.counts({"rows": len(frame), "columns": frame.shape[1]}, prefix="input.")
    path = Path(workdir) / "input.parquet"
    frame.to_parquet(path, index=False)
    return source, str(path)


@task(name="validate-input", retries=0, cache_policy=NO_CACHE)
def validate_input(tracker: Tracker, model: ModelRef, raw_path: str) -> list[str]:
    """Admits the input rows by the prediction policy, then checks them against the training expectation suite.

    The policy (`kerasflow.serving.rows`) is the scoring server's: missing
    columns are refused, other columns ignored with a warning (and the tag
    `kerasflow.ignored_columns`), missing values filled as in training. The
    suite is the one logged with the model (`reference/suite.json`), as it
    applies to rows to predict (`kerasflow.data.predictions.prediction_suite`);
    the result and Data Docs are attached under `validation/`.

    Returns:
        The model's input columns.

    Raises:
        FeatureError: Input columns are missing.
        InputRowsError: Numeric columns hold text, ±inf or values beyond
            float32's range (file, columns and rows named).
        DataValidationError: The rows violate the suite, listing every
            violated expectation (unless the model's config says `warn`).
    """
    client = tracker.client
    frame = pd.read_parquet(raw_path)
    types = input_types(model.version_uri)
    columns = list(types)
    spec = model_features(model.version_uri)
    source = client.get_run(tracker.run_id).data.tags.get("kerasflow.input", "the input")
    admitted = check_columns(frame, spec, source, warn=step_logger().warning)  # the policy of kerasflow.serving.rows
    if admitted.ignored:
        tracker.tags({"kerasflow.ignored_columns": ", ".join(admitted.ignored)})
    check_numeric_input(frame, types, source)
    suite = load_run_json(client, model.run_id, REFERENCE_SUITE) if model.run_id else None
    if suite is None:
        tracker.tags({"kerasflow.validation": "skipped: the model has no expectation suite"})
        return columns
    params = run_params(client, model.run_id)
    target = params.get("data.target")
    report = run_validation(validate_file, raw_path, prediction_suite(suite, spec),
                            skip_columns=[target] if target else [])
    tracker.json(report.result, "validation/result.json")
    tracker.text(report.html, "validation/data_docs.html")
    tracker.text(report.summary(), "validation/summary.txt")
    tracker.counts({"expectations": report.evaluated, "failed": len(report.violations),
                                          "success": float(report.success)}, prefix="validation.")
    if params.get("validation.on_failure", "fail") == "fail":
        require_valid(report)
    return columns


@task(name="predict-rows", retries=0, cache_policy=NO_CACHE)
def predict_rows(tracker: Tracker, model: ModelRef, raw_path: str, columns: list[str], source: str,
                 output_path: str | None = None) -> dict[str, Any]:
    """Predicts every input row with the pyfunc model and writes rows plus predictions.

    Args:
        source: The input file that was read.
        output_path: The output file. Default: `<input stem>.predictions.csv`
            next to `source`.

    Returns:
        `{"output", "rows", "summary"}`.

    Raises:
        FeatureError: The rows do not fit the model's input schema.
        InputRowsError: The model refused rows (file, columns and rows named).
    """
    import_tensorflow()
    frame = pd.read_parquet(raw_path)
    try:
        predictions = predict_with(model.version_uri, frame[columns] if columns else frame)
    except InputRowsError as exc:
        raise exc.located(source) from None
    out = write_rows(join_predictions(frame, predictions), output_location(output_path, source))
    summary = prediction_summary(predictions)
    tracker.tags({"kerasflow.output": str(out.resolve())})
    tracker.json(summary, "predictions/summary.json")
    tracker.counts({"rows": len(predictions)}, prefix="predictions.")
    return {"output": str(out.resolve()), "rows": len(predictions), "summary": summary}
