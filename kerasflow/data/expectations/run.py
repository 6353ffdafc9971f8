"""Runs expectation suites on frames with Great Expectations, in a worker process of its own.

`validate_frame` runs a suite on a frame with an ephemeral GX context and
returns a `ValidationReport` (`kerasflow.data.expectations.report`). Great
Expectations is imported lazily (it takes seconds), so importing this
module stays cheap.

Importing Great Expectations, and its first validation, cost about 3 s of
CPU and 270 MB that the training process never needs again. Validation
therefore runs in a worker process of its own
(`kerasflow.data.expectations.worker.Worker`): `start_validator()` starts
it at the start of a command and sends a warm-up job (import GX, validate
a two-row frame) that overlaps this process's imports of Prefect and
MLflow; `run_validation()` hands the real job to the warm worker and stops
the worker once it returns, so its memory is free again before TensorFlow
is imported. A run that does not validate (validation reused from the step
cache, a model without a suite, a failure before the step) stops it at once
with `release_validator()`; `stop_validator()` runs at exit; and the worker
ends by itself within half a second if this process dies.

A process that runs many flows one after another (a notebook, a script, the
test suite) can keep the worker between them with `keep_validator()`, and
import Great Expectations once (about 4 s of CPU) instead of at every
validation, at the cost of the idle worker's memory while training runs.
A kept worker is still stopped at exit, killed when its job is interrupted,
replaced when it died, and ends by itself if this process dies; the
commands of the CLI run one flow each and never keep it.

The worker is a fresh interpreter (`python -c`, never forked from a
process running TensorFlow's or Prefect's threads), in a process group of
its own that ignores SIGINT and SIGTERM: a Ctrl-C stops this process,
which stops the worker, with no traceback from the worker.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

import pandas as pd

from kerasflow.data.expectations.report import ValidationReport, validation_report
from kerasflow.data.expectations.suites import SuiteError, check_suite, columns_of, expectation
from kerasflow.data.expectations.vectorized import EXACT_ROWS, payload_of, validate_large
from kerasflow.data.expectations.worker import Worker, WorkerDied
from kerasflow.errors import BadInputError

_TABLE_COLUMN_RULES = frozenset(
    {"expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"}
)


class DataValidationError(BadInputError):
    """Data that violates its expectation suite.

    Args:
        report: The failing report; the message is its full summary.
    """

    label = "data failed its expectations"

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report

    def __reduce__(self) -> tuple[type[DataValidationError], tuple[ValidationReport]]:
        # Rebuild from the report when unpickled (e.g. by Prefect), not from the message.
        return (type(self), (self.report,))


def validate_frame(
    df: pd.DataFrame, suite: dict[str, Any], *, skip_columns: Sequence[str] = (),
    vectorize_from: int | None = EXACT_ROWS, of_rows: int | None = None,
) -> ValidationReport:
    """Runs an expectation suite on a frame, every expectation exact on every row.

    Each call uses a fresh ephemeral GX context, so calls are independent.
    GX progress bars are disabled; nothing is printed. A frame of at least
    `vectorize_from` rows is validated by `validate_large`
    (`kerasflow.data.expectations.vectorized`): the rules it can evaluate
    in one vectorized pandas pass are, GX judges the rest (schema rules on
    a few witness rows, anything else on the full frame); the results, the
    report and the Data Docs have the same shape as a full GX run, and each
    result's `meta["kerasflow"]` says how it was evaluated.

    Args:
        df: Frame to validate. It is not modified.
        suite: Suite dict, as returned by `load_suite` or `build_suite`.
        skip_columns: Columns to leave out entirely, e.g. the target when
            validating prediction inputs: their expectations are dropped,
            they are removed from table-level column-set expectations, and
            they are ignored in `df` if present. Defaults to `()`.
        vectorize_from: Rows from which the vectorized pass is used; `None`
            runs GX on the full frame whatever its size. Defaults to
            `EXACT_ROWS` (100,000).
        of_rows: Rows of the table `df` is a sample of (streaming mode): the
            report then says `sampled on n of N rows`. Default none: `df` is
            the whole table.

    Returns:
        The validation report; check `success` or pass it to `require_valid`.

    Raises:
        SuiteError: If the suite is malformed or GX rejects an expectation.
    """
    check_suite(suite, "argument of validate_frame")
    skip = [skip_columns] if isinstance(skip_columns, str) else list(skip_columns)
    suite = _without_columns(suite, skip)
    gx = _import_gx()
    gx_suite = _gx_suite(gx, suite)
    frame = df.drop(columns=skip, errors="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if vectorize_from is not None and len(frame) >= vectorize_from and of_rows is None:
            results = validate_large(frame, suite["expectations"], lambda part, items: _run_gx(gx, part, items),
                                     _gx_frame)
            return validation_report(payload_of(results, suite["name"], len(frame)), suite, frame.columns)
        frame = _gx_frame(frame)
        payload = _batch(gx, frame).validate(gx_suite, result_format="SUMMARY").to_json_dict()
    rows = len(frame)
    label = (f"sampled on {rows} of {of_rows} rows" if of_rows is not None and of_rows > rows
             else f"exact on {rows} rows")
    for item in payload["results"]:
        item.setdefault("meta", {})["kerasflow"] = f"{label} (Great Expectations)"
    payload.setdefault("meta", {})["kerasflow"] = {"rows": rows, "label": label,
                                                   "evaluation": f"{label}: Great Expectations on the whole frame"}
    return validation_report(payload, suite, frame.columns)


def _run_gx(gx: Any, frame: pd.DataFrame, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs expectations with GX on a frame; returns their result dicts in the order given.

    GX orders results its own way, so each expectation carries its position
    in its `meta` while it runs; the original `meta` is restored after.
    """
    if not items:
        return []
    tagged = [{**item, "meta": {**(item.get("meta") or {}), _POSITION: index}} for index, item in enumerate(items)]
    gx_suite = _gx_suite(gx, {"name": "kerasflow-part", "expectations": tagged, "meta": {}})
    payload = _batch(gx, frame).validate(gx_suite, result_format="SUMMARY").to_json_dict()
    results: list[dict[str, Any]] = [{}] * len(items)
    for result in payload["results"]:
        meta = result["expectation_config"].get("meta") or {}
        index = int(meta.pop(_POSITION))
        result["expectation_config"]["meta"] = meta
        results[index] = result
    return results


_POSITION = "kerasflow_position"  # where `_run_gx` keeps an expectation's position while GX runs it


def validate_file(
    path: str | Path, suite: dict[str, Any], *, skip_columns: Sequence[str] = (), of_rows: int | None = None
) -> ValidationReport:
    """Runs an expectation suite on a Parquet file of raw rows.

    The picklable entry point for a validation worker process: it takes a
    path, not a frame, so nothing large crosses the process boundary.

    Args:
        path: Parquet file.
        suite: Suite dict, as returned by `load_suite`.
        skip_columns: Columns to leave out (see `validate_frame`). Defaults to `()`.
        of_rows: Rows of the table the file samples (see `validate_frame`). Default none.

    Returns:
        The validation report.

    Raises:
        SuiteError: If the suite is malformed or GX rejects an expectation.
    """
    return validate_frame(pd.read_parquet(path), suite, skip_columns=skip_columns, of_rows=of_rows)


def require_valid(report: ValidationReport) -> ValidationReport:
    """Raises unless a validation report is successful.

    Args:
        report: Report from `validate_frame`.

    Returns:
        The same report, for chaining.

    Raises:
        DataValidationError: If `report.success` is false; the message lists
            every violation.
    """
    if not report.success:
        raise DataValidationError(report)
    return report


def _import_gx() -> Any:
    """Imports Great Expectations with analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX pins some module loggers to INFO at import; keep routine chatter out of run output.
    for name, known in logging.Logger.manager.loggerDict.items():
        if name.startswith("great_expectations") and isinstance(known, logging.Logger):
            known.setLevel(logging.WARNING)
    return gx


def warm_up_gx() -> None:
    """Imports Great Expectations and runs one tiny validation.

    GX loads most of its validation machinery lazily, at the first
    `validate`; doing that on a two-row frame ahead of time (in the
    validation worker, while the main process imports TensorFlow) takes it
    off the pipeline's critical path.
    """
    frame = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    suite = {"name": "warm-up", "meta": {}, "expectations": [
        expectation("expect_table_columns_to_match_set", column_set=["x", "c"], exact_match=True),
        expectation("expect_column_to_exist", column="x"),
        expectation("expect_column_values_to_be_in_type_list", column="x", type_list=["float64"]),
        expectation("expect_column_values_to_not_be_null", column="x"),
        expectation("expect_column_values_to_be_between", column="x", min_value=0, max_value=3),
        expectation("expect_column_values_to_be_in_set", column="c", value_set=["a", "b"]),
    ]}
    validate_frame(frame, suite)


def _without_columns(suite: dict[str, Any], skip: Iterable[str]) -> dict[str, Any]:
    """Returns a copy of a suite without expectations about the skipped columns."""
    skip = set(skip)
    suite = copy.deepcopy(suite)
    if not skip:
        return suite
    kept = []
    for item in suite["expectations"]:
        kwargs = item.get("kwargs", {})
        if item["type"] in _TABLE_COLUMN_RULES:
            key = "column_set" if "column_set" in kwargs else "column_list"
            kwargs[key] = [c for c in kwargs.get(key, []) if c not in skip]
        elif skip & set(columns_of(kwargs)):
            continue
        kept.append(item)
    suite["expectations"] = kept
    return suite


def _gx_suite(gx: Any, suite: dict[str, Any]) -> Any:
    """Builds the GX suite object, raising `SuiteError` for invalid expectations.

    `gx.ExpectationSuite(expectations=[dict, ...])` merely logs and drops
    invalid entries, so each one is converted (and checked) here first.
    """
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    expectations = []
    for index, item in enumerate(suite["expectations"]):
        try:
            expectations.append(ExpectationConfiguration(**item).to_domain_obj())
        except Exception as err:  # GX raises many unrelated types (pydantic, GX, Type...).
            raise SuiteError(
                f"Invalid expectation #{index} ({item.get('type')}) in suite "
                f"'{suite['name']}': {err}"
            ) from err
    return gx.ExpectationSuite(
        name=suite["name"], expectations=expectations, meta=suite.get("meta")
    )


def _batch(gx: Any, df: pd.DataFrame) -> Any:
    """Wraps a frame in a GX batch on a fresh ephemeral context, without progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(
        globally=False, metric_calculations=False
    )
    token = uuid.uuid4().hex[:12]
    asset = context.data_sources.add_pandas(f"kerasflow_{token}").add_dataframe_asset("frame")
    definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    return definition.get_batch(batch_parameters={"dataframe": df})


def _gx_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Converts dtypes that GX 1.x cannot type-check under pandas 3.

    GX compares a column's dtype against the type list by equality, and no
    type name equals pandas 3's default `str` dtype (`StringDtype` with NaN
    missing values), a categorical dtype, or masked nullable dtypes. String,
    categorical and nullable-boolean columns become `object` (GX then checks
    each value's Python type); nullable numbers become NumPy numbers.
    """
    frame = df.copy(deep=False)  # Copy-on-write: the caller's frame is untouched.
    for column, dtype in df.dtypes.items():
        series = df[column]
        if isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype, pd.BooleanDtype)):
            frame[column] = series.astype(object).where(series.notna(), None)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and _is_number(dtype):
            frame[column] = _numpy_numbers(series)
    return frame


def _is_number(dtype: Any) -> bool:
    """Whether a dtype holds numbers (booleans excluded)."""
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _numpy_numbers(series: pd.Series) -> pd.Series:
    """Casts a nullable numeric series to its NumPy dtype, or float64 if it has nulls."""
    if series.isna().any():
        return series.astype("float64")
    return series.astype(getattr(series.dtype, "numpy_dtype", "float64"))


# --- the validation worker process ---------------------------------------------

T = TypeVar("T")

_LOCK = threading.Lock()
_WORKER: Worker | None = None
_KEEP = False


class ValidationWorkerDied(RuntimeError):
    """The validation worker process died before returning a result."""


def keep_validator(keep: bool = True) -> bool:
    """Keeps the validation worker running between jobs, or not (the default); see the module's docstring.

    Args:
        keep: Keep it; false stops a kept idle worker at once. Default true.

    Returns:
        The previous setting.
    """
    global _KEEP
    with _LOCK:
        previous, _KEEP = _KEEP, keep
    if not keep:
        stop_validator()
    return previous


def start_validator() -> None:
    """Starts the validation worker, if not running (a dead one is replaced), and its warm-up; returns at once."""
    global _WORKER
    with _LOCK:
        dead = _WORKER if _WORKER is not None and not _WORKER.alive() else None
        if _WORKER is None or dead is not None:
            _WORKER = Worker(_NAME)
            _WORKER.send(warm_up, reply=False)
    if dead is not None:
        dead.stop()  # reaped


def run_validation(function: Callable[..., T], *args: Any, while_waiting: Callable[[], Any] | None = None,
                   **kwargs: Any) -> T:
    """Runs `function(*args, **kwargs)` in the validation worker, then stops the worker.

    Uses the worker `start_validator` started (unless it died), or starts
    one. However the call ends (a result, the job's error, an interrupt),
    the worker is gone when it returns: reaped after its answer, killed at
    once otherwise; a kept one (`keep_validator`) stays only when it has
    answered.

    Args:
        function: A module-level (picklable) function, e.g.
            `validate_file`.
        *args: Its positional arguments (picklable).
        while_waiting: Called in this thread once the job is handed over,
            before waiting for its result: work for the idle core. Default none.
        **kwargs: Its keyword arguments (picklable).

    Returns:
        What `function` returns.

    Raises:
        Whatever `function` raises, re-raised here as the same class.
        ValidationWorkerDied: The worker process died (killed, crashed or
            exited) before returning a result.
    """
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None and not worker.alive():  # a kept worker that died since
        worker.stop()
        worker = None
    try:
        worker = worker or Worker(_NAME)
        worker.send(function, *args, **kwargs)
        if while_waiting is not None:
            while_waiting()
        return worker.result(function)
    except WorkerDied as exc:
        raise ValidationWorkerDied(str(exc)) from exc
    finally:
        if worker is not None:
            _put_back(worker)  # the worker exits (its memory is free before TensorFlow loads), unless kept


def _put_back(worker: Worker) -> None:
    """Keeps an idle worker as the validation worker when `keep_validator` is on; stops it otherwise."""
    global _WORKER
    with _LOCK:
        if _KEEP and _WORKER is None and worker.idle():
            _WORKER, worker = worker, None
    if worker is not None:
        worker.stop()  # killed at once when it owes an answer (an interrupted job)


def release_validator() -> None:
    """Stops the validation worker, unless it is kept (`keep_validator`) and alive.

    A step that did not need it (validation reused from the step cache, a
    model without a suite, a run that failed before validating) calls this,
    so the worker's memory is free before training.
    """
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None:
        _put_back(worker)


def stop_validator() -> None:
    """Stops the validation worker at once, warm-up or not, kept or not (a no-op when none runs).

    The CLI's commands call this when their flow ends; it also runs at exit.
    """
    global _WORKER
    with _LOCK:
        worker, _WORKER = _WORKER, None
    if worker is not None:
        worker.stop(now=True)


def validator_pid() -> int | None:
    """The process id of the running validation worker, or None (for tests and diagnostics)."""
    worker = _WORKER
    return worker.pid if worker is not None else None


def warm_up() -> None:
    """The warm-up job, run in the worker: imports Great Expectations and validates a two-row frame."""
    warm_up_gx()


_NAME = "validation worker"
atexit.register(stop_validator)
