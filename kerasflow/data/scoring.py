"""Batch scoring of a file chunk by chunk: every row admitted, checked and predicted in one pass, in bounded memory.

`score_file` reads the input in chunks (`kerasflow.data.chunks`, the next
chunk read in a thread while the current one is predicted) and, for each:

1. admits the rows by the prediction policy (`kerasflow.serving.rows.RowTally`:
   missing columns refused at once; missing values without a fill value,
   text and out-of-range numbers counted);
2. counts the rows against the model's expectation suite, as it applies to
   rows to predict (`kerasflow.data.expectations.counts.SuiteCounts`:
   vectorized, exact counts over every row, no Great Expectations run);
3. predicts the admitted rows with the model, which may still be loading
   when the first chunk is read, and writes them with their predictions
   (`kerasflow.data.chunks.ChunkWriter`).

Refusals are decided on the whole input, as one check of the whole file
would decide them, in the same order and with the same messages: the row
policy, then the suite, then the model's own refusal (values its output
overflows on, named in the first chunk that has them). Once a row is
refused no chunk is predicted any more, but every chunk is still counted,
so the message gives exact counts; the output is moved into place only
when nothing was refused.

This module imports neither TensorFlow, Prefect nor MLflow: the model
comes in as a function.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from kerasflow.data.chunks import CHUNK_ROWS, ChunkWriter, read_chunks
from kerasflow.data.expectations.counts import CountedResult, SuiteCounts, split_suite
from kerasflow.data.expectations.report import ValidationReport, validation_report
from kerasflow.data.expectations.run import require_valid
from kerasflow.data.predictions import NUMERIC_TYPES, join_predictions, prediction_summary, refuse_output_columns
from kerasflow.features.tabular import InputRowsError
from kerasflow.serving.rows import RowTally, shifted

Predict = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class ScoringInput:
    """What scoring a file needs to know besides the model.

    Args:
        source: The resolved input file.
        spec: The model's feature spec.
        types: The model's input columns and signature types (`{"age": "double"}`).
        suite: The prediction suite (`prediction_suite`), or None.
        skip: Columns the suite leaves out (the label).
        options: How to read a CSV file (`reading_options`).
    """

    source: str
    spec: Any
    types: dict[str, str]
    suite: dict[str, Any] | None = None
    skip: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scored:
    """What `score_file` did.

    Args:
        output: The file written.
        rows: Input rows.
        columns: Input columns.
        summary: `prediction_summary` of every prediction.
        ignored: Input columns the model does not take.
        digest: sha256 of every row's content (column names and types of the first chunk, then each chunk's
            row hashes, then the row count).
        report: The suite's verdict, None without a suite.
        checked: How the rows were checked, in words.
    """

    output: Path | None = None
    rows: int = 0
    columns: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    digest: str = ""
    report: ValidationReport | None = None
    checked: str = ""


def score_file(plan: ScoringInput, predict: Predict, output: str | Path, *, warn: Callable[[str], Any] | None = None,
               enforce_suite: bool = True, uncounted: Callable[[dict[str, Any]], ValidationReport] | None = None,
               note: Callable[[Scored], Any] | None = None, chunk_rows: int = CHUNK_ROWS) -> Scored:
    """Admits, checks and predicts every row of a file, chunk by chunk, and writes the rows with predictions.

    Args:
        plan: The input and what the model expects of it.
        predict: The model: raw rows (its input columns) in, prediction columns out; it raises
            `InputRowsError` for rows it refuses.
        output: The output file (`.parquet` writes Parquet, else CSV).
        warn: Called with the warning naming ignored columns.
        enforce_suite: Refuse rows that fail the suite (`validation.on_failure: fail`). Default true.
        uncounted: Runs the suite's expectations that `SuiteCounts` does not count (with Great
            Expectations, on the whole file) and returns their report. Default none: they are skipped.
        note: Called with what was found once every row is counted, before any refusal is raised
            (to record it). Default none.
        chunk_rows: Most rows per chunk.

    Returns:
        The `Scored` summary.

    Raises:
        FeatureError: Input columns are missing, or the input has prediction columns.
        InputRowsError: Rows the policy or the model refuse (every chunk counted; rows numbered in the file).
        DataValidationError: The rows fail the suite (with `enforce_suite`).
        DataLoadError: The file cannot be read.
    """
    counted, others = split_suite(plan.suite) if plan.suite else (None, None)
    counts = SuiteCounts(counted) if counted else None
    numeric = [c for c, kind in plan.types.items() if kind in NUMERIC_TYPES]
    tally, scored, digest = RowTally(plan.spec, numeric, plan.source), Scored(), hashlib.sha256()
    refused: InputRowsError | None = None
    present: list[str] = []
    with ChunkWriter(output) as writer, ThreadPoolExecutor(1, thread_name_prefix="kerasflow-read") as reader:
        text = [c for c, kind in plan.types.items() if kind == "string"]
        for chunk in _prefetched(read_chunks(plan.source, chunk_rows, **plan.options, text=text), reader):
            offset = tally.rows
            if offset == 0:
                refuse_output_columns(chunk, plan.source)
                present = [str(c) for c in chunk.columns if c not in plan.skip]
                digest.update("".join(f"{n}\x1f{t}\x1e" for n, t in chunk.dtypes.items()).encode())
            admitted = tally.admit(chunk, warn)
            if counts is not None:
                counts.add(chunk.drop(columns=plan.skip, errors="ignore"))
            digest.update(pd.util.hash_pandas_object(chunk, index=True).to_numpy().tobytes())
            scored.ignored, scored.columns = admitted.ignored, chunk.shape[1]
            if tally.refused or refused is not None:
                continue  # counting only: the input is refused
            try:
                predictions = predict(chunk[list(plan.types)] if plan.types else chunk)
            except InputRowsError as exc:
                refused = shifted(exc, offset).located(plan.source)
                continue
            writer.write(join_predictions(chunk, predictions))
            scored.summary = merge_summaries(scored.summary, prediction_summary(predictions))
        scored.rows = tally.rows
        digest.update(f"rows={tally.rows}".encode())
        scored.digest = digest.hexdigest()
        if not tally.refused:
            scored.report, scored.checked = _verdict(plan, counts, others, uncounted, present)
        if note is not None:
            note(scored)
        tally.check()
        if scored.report is not None and enforce_suite:
            require_valid(scored.report)
        if refused is not None:
            raise refused
        scored.output = writer.commit()
    return scored


def _prefetched(chunks: Iterator[pd.DataFrame], pool: ThreadPoolExecutor) -> Iterator[pd.DataFrame]:
    """Yields the chunks, reading the next one in `pool` while the caller works on the current one."""
    pending = pool.submit(next, chunks, None)
    while (chunk := pending.result()) is not None:
        pending = pool.submit(next, chunks, None)
        yield chunk


def _verdict(plan: ScoringInput, counts: SuiteCounts | None, others: dict[str, Any] | None,
             uncounted: Callable[[dict[str, Any]], ValidationReport] | None,
             present: list[str]) -> tuple[ValidationReport | None, str]:
    """The suite's report over the whole input, and how it was reached, in words."""
    if counts is None and not (others and others["expectations"]):
        return None, "the row policy only: the model has no expectation suite"
    payload = (counts or SuiteCounts({"expectations": []})).result().payload
    checked = (f"{len(counts.tallies) if counts else 0} expectation(s) of suite '{plan.suite['name']}' counted "
               f"over every row (vectorized, exact counts)")
    if others and others["expectations"]:
        if uncounted is None:
            checked += f"; {len(others['expectations'])} other expectation(s) skipped"
        else:
            payload = merged(payload, uncounted(others).result)
            checked += f"; {len(others['expectations'])} other expectation(s) run by Great Expectations"
    return validation_report(CountedResult(payload), plan.suite, present), checked


def merged(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two validation results (JSON) of parts of one suite, as one."""
    results = [*first.get("results", []), *second.get("results", [])]
    passed = sum(bool(r["success"]) for r in results)
    return {**first, "success": passed == len(results), "results": results,
            "statistics": {"evaluated_expectations": len(results), "successful_expectations": passed,
                           "unsuccessful_expectations": len(results) - passed,
                           "success_percent": 100.0 * passed / len(results) if results else 100.0}}


def merge_summaries(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Adds one chunk's `prediction_summary` to the summary of the chunks before it."""
    if not total:
        return part
    rows = total["rows"] + part["rows"]
    if "classes" in part:
        classes = Counter(total["classes"]) + Counter(part["classes"])
        return {"rows": rows, "classes": {k: int(classes[k]) for k in sorted(classes)}}
    return {"rows": rows, "mean": (total["mean"] * total["rows"] + part["mean"] * part["rows"]) / rows,
            "min": min(total["min"], part["min"]), "max": max(total["max"], part["max"])}
