"""Batch prediction: resolving the model, finding the input, scoring it chunk by chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.data.chunks import CHUNK_ROWS
from kerasflow.data.expectations.run import run_validation, validate_file
from kerasflow.data.load import load_frame, reading_options, resolve_source
from kerasflow.data.predictions import output_location, prediction_suite
from kerasflow.data.scoring import Scored, ScoringInput, score_file
from kerasflow.tasks.policies import step_logger, transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import (
    REFERENCE_SUITE,
    input_types,
    load_run_json,
    model_features,
    predictor,
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
def read_input(tracker: Tracker, input_path: str, model: ModelRef | None = None) -> tuple[str, dict[str, Any]]:
    """Finds the input file (CSV, Parquet, or the newest match of a glob) and how to read it.

    A CSV file is read as the model's training data was: with the
    `data.delimiter`, `data.encoding` and `data.decimal` of the run that
    logged it (a `;`-separated export with decimal commas, for example).
    The rows themselves are read chunk by chunk by `score-rows`.

    Args:
        tracker: The prediction run.
        input_path: The file or glob.
        model: The model that will score the rows. Default none (comma or
            sniffed delimiter, UTF-8, decimal point).

    Returns:
        `(source, options)`: the file, and the `kerasflow.data.chunks.read_chunks` options to read it with.

    Raises:
        DataLoadError: The file is missing or not CSV or Parquet.
    """
    source = resolve_source(input_path)
    options = reading_options(run_params(tracker.client, model.run_id)) if model and model.run_id else {}
    tracker.tags({"kerasflow.input": source})
    return source, options


@task(name="score-rows", retries=0, cache_policy=NO_CACHE)
def score_rows(tracker: Tracker, model: ModelRef, source: str, options: dict[str, Any], workdir: str,
               output_path: str | None = None, chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
    """Admits, checks and predicts the input rows chunk by chunk, and writes them with their predictions.

    The model loads in a thread (`kerasflow.tracking.artifacts.preload_model`,
    started by `kerasflow predict` before the flow) while the first rows are
    read and checked. Each chunk is admitted by the prediction policy
    (`kerasflow.serving.rows`, the scoring server's: missing columns refused,
    other columns ignored with a warning and the tag
    `kerasflow.ignored_columns`, missing values filled as in training), and
    counted against the suite logged with the model (`reference/suite.json`)
    as it applies to rows to predict (`prediction_suite`): vectorized, exact
    counts over every row (`kerasflow.data.expectations.counts`), without a
    Great Expectations run; expectations of other kinds run with Great
    Expectations on the whole file. The tag `kerasflow.validation` says what
    was checked and how; the result and Data Docs are attached under
    `validation/`. See `kerasflow.data.scoring.score_file`.

    Args:
        source: The input file.
        options: How to read it (`read_input`).
        workdir: The run's folder (a Parquet copy of the input, for Great Expectations, if it runs).
        output_path: The output file. Default: `<input stem>.predictions.csv` next to `source`.
        chunk_rows: Most rows per chunk. Default 50,000.

    Returns:
        `{"output", "rows", "summary", "validation"}`.

    Raises:
        FeatureError: Input columns are missing, or are named like prediction columns.
        InputRowsError: Rows the policy or the model refuse (file, columns and rows named).
        DataValidationError: The rows violate the suite, listing every
            violated expectation (unless the model's config says `warn`).
    """
    predict = predictor(model.version_uri)  # starts the load, unless `kerasflow predict` did
    client = tracker.client
    types, spec = input_types(model.version_uri), model_features(model.version_uri)
    suite = load_run_json(client, model.run_id, REFERENCE_SUITE) if model.run_id else None
    params = run_params(client, model.run_id) if model.run_id else {}
    target = params.get("data.target")
    plan = ScoringInput(source, spec, types, prediction_suite(suite, spec) if suite else None,
                        [target] if target else [], options)

    def uncounted(others: dict[str, Any]) -> Any:  # expectations the counts do not cover: GX on the whole file
        path = Path(workdir) / "input.parquet"
        load_frame(source, **options).to_parquet(path, index=False)
        return run_validation(validate_file, str(path), others, skip_columns=plan.skip)

    scored = score_file(plan, predict, output_location(output_path, source), warn=step_logger().warning,
                        enforce_suite=params.get("validation.on_failure", "fail") == "fail", uncounted=uncounted,
                        note=lambda found: _record_checks(tracker, found), chunk_rows=chunk_rows)
    summary = scored.summary
    tracker.tags({"kerasflow.output": str(scored.output.resolve())})
    tracker.json(summary, "predictions/summary.json")
    tracker.counts({"rows": summary["rows"]}, prefix="predictions.")
    return {"output": str(scored.output.resolve()), "rows": summary["rows"], "summary": summary,
            "validation": scored.checked}


def _record_checks(tracker: Tracker, scored: Scored) -> None:
    """Records what reading and checking the input found: its fingerprint and size, ignored columns, the suite's verdict."""
    tracker.tags({"kerasflow.data_fingerprint": scored.digest,
                  **({"kerasflow.validation": scored.checked} if scored.checked else {}),
                  **({"kerasflow.ignored_columns": ", ".join(scored.ignored)} if scored.ignored else {})})
    tracker.counts({"rows": scored.rows, "columns": scored.columns}, prefix="input.")
    report = scored.report
    if report is None:
        return
    tracker.json(report.result, "validation/result.json")
    tracker.text(report.html, "validation/data_docs.html")
    tracker.text(report.summary(), "validation/summary.txt")
    tracker.counts({"expectations": report.evaluated, "failed": len(report.violations),
                     "success": float(report.success)}, prefix="validation.")
