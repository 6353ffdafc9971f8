"""Infra validation before blessing, as plain data: the canary rows, the comparison, the verdict.

In the manner of TFX's InfraValidator: before any alias moves to a newly
registered version, the version is loaded from its registry URI in a fresh
process, as `mlflow models serve` loads it, and (`load_and_query`) scores the
logged input example and a canary sample of test rows. The served outputs
must equal the in-process evaluation's predictions of the same rows within
a relative tolerance. `kerasflow.tracking.infra` runs the fresh process;
this module only chooses the rows, compares the outputs and words the
verdict, and imports neither MLflow nor Prefect.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from kerasflow.promotion.plan import Decision

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
INFRA_TAG = "kerasflow.infra"
DETAILS_TAG = "kerasflow.infra_details"
TAG_LIMIT = 5000  # MLflow's limit on a model version tag's value
ABSOLUTE_TOLERANCE = 1e-7  # below this, probabilities near 0 are equal whatever their relative difference

Status = Literal["passed", "failed", "skipped"]
MODE_ENV = "KERASFLOW_INFRA_VALIDATION"
MODES = ("load_only", "load_and_query", "off")


def infra_mode(settings: Any) -> str:
    """The infra-validation mode of a run: the config's, else the machine's default, else `load_and_query`.

    A config that sets `promotion.infra_validation` decides. One that leaves
    it out gets `KERASFLOW_INFRA_VALIDATION` when that names a mode (a machine
    that runs many short pipelines, such as a test suite, may set `off`),
    else the section's default.

    Args:
        settings: The config's `promotion` section.

    Returns:
        `load_only`, `load_and_query` or `off`.

    Raises:
        ValueError: `KERASFLOW_INFRA_VALIDATION` is set to something else.
    """
    if "infra_validation" in settings.model_fields_set:
        return settings.infra_validation
    machine = os.environ.get(MODE_ENV, "").strip()
    if not machine:
        return settings.infra_validation
    if machine not in MODES:
        raise ValueError(f"{MODE_ENV}={machine!r} is not one of {', '.join(MODES)}")
    return machine


@dataclass
class InfraReport:
    """The verdict of infra validation on one registered version.

    Args:
        mode: `load_only`, `load_and_query` or `off`.
        status: `passed`, `failed` or `skipped` (mode `off`, or nothing registered).
        uri: The registry URI loaded, e.g. `models:/iris/3`.
        reasons: Why it failed (empty when it passed).
        load_seconds: Seconds the fresh process took to load the model.
        row_ms: Milliseconds per scored row (example and canary rows together).
        example_rows: Rows of the logged input example scored.
        canary_rows: Test rows scored and compared.
        max_relative_difference: Largest relative difference between a
            served and an evaluated number.
        tolerance: The relative tolerance applied.
    """

    mode: str
    status: Status
    uri: str | None = None
    reasons: list[str] = field(default_factory=list)
    load_seconds: float | None = None
    row_ms: float | None = None
    example_rows: int = 0
    canary_rows: int = 0
    max_relative_difference: float | None = None
    tolerance: float | None = None

    @property
    def passed(self) -> bool:
        """Whether an alias may move: validation passed or was not asked for."""
        return self.status != FAILED

    def line(self) -> str:
        """Returns the verdict on one line, e.g. for the version description."""
        if self.status == SKIPPED:
            return f"Infra validation: skipped ({'promotion.infra_validation: off' if self.mode == 'off' else 'nothing registered'})."
        where = f"{self.uri} in a fresh process"
        if self.status == FAILED:
            return f"Infra validation: FAILED ({self.mode}, {where}): " + "; ".join(self.reasons)
        text = f"Infra validation: passed ({self.mode}): {where} loaded in {self.load_seconds:.1f} s"
        if self.mode == "load_and_query":
            text += (f"; scored {self.example_rows} example and {self.canary_rows} test rows at "
                     f"{self.row_ms:.2f} ms/row, equal to the evaluation's within {self.tolerance:g} "
                     f"(largest relative difference {self.max_relative_difference:.1e})")
        return text + "."

    def metrics(self) -> dict[str, float]:
        """Returns the metrics logged under `infra/`: `load_seconds`, `row_ms`, `rows`, `passed`."""
        values = {"load_seconds": self.load_seconds, "row_ms": self.row_ms,
                  "rows": float(self.example_rows + self.canary_rows), "passed": float(self.status == PASSED)}
        return {k: float(v) for k, v in values.items() if v is not None}

    def tags(self) -> dict[str, str]:
        """Returns the model-version tags: `kerasflow.infra` (`passed|failed|skipped`) and the details line."""
        return {INFRA_TAG: self.status, DETAILS_TAG: self.line()[:TAG_LIMIT]}

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as JSON-ready data (`infra/report.json`)."""
        return asdict(self)


def canary_positions(test_rows: list[int], count: int) -> list[int]:
    """Chooses up to `count` test rows, evenly spaced over the test split.

    Args:
        test_rows: Positions of the test rows in the raw rows.
        count: How many to take.

    Returns:
        The chosen positions, in test-split order.
    """
    if count <= 0 or not test_rows:
        return []
    picks = np.linspace(0, len(test_rows) - 1, num=min(count, len(test_rows))).round().astype(int)
    return [test_rows[i] for i in dict.fromkeys(picks.tolist())]


def compare_outputs(served: pd.DataFrame, evaluated: pd.DataFrame, tolerance: float,
                    what: str = "canary rows") -> tuple[list[str], float]:
    """Compares served predictions with the evaluation's predictions of the same rows.

    Numbers (probabilities, regression values) are equal within `tolerance`
    relative (and `ABSOLUTE_TOLERANCE` absolute, for values near 0); other
    columns (class names) are equal exactly.

    Args:
        served: What the fresh process's pyfunc returned.
        evaluated: What the in-process evaluation predicts for the rows.
        tolerance: The relative tolerance.
        what: The rows' name in the messages. Default `canary rows`.

    Returns:
        `(problems, largest relative difference)`; no problems means equal.
    """
    if list(served.columns) != list(evaluated.columns):
        return [f"{what}: the served columns {list(served.columns)} are not the evaluation's "
                f"{list(evaluated.columns)}"], float("nan")
    if len(served) != len(evaluated):
        return [f"{what}: {len(served)} predictions served for {len(evaluated)} rows"], float("nan")
    problems, largest = [], 0.0
    for column in evaluated.columns:
        got, want = served[column].reset_index(drop=True), evaluated[column].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(want) and pd.api.types.is_numeric_dtype(got):
            a, b = got.to_numpy(dtype="float64"), want.to_numpy(dtype="float64")
            diff = np.abs(a - b) / np.maximum(np.abs(b), ABSOLUTE_TOLERANCE / tolerance)
            largest = max(largest, float(np.nanmax(diff)) if len(diff) else 0.0)
            bad = np.flatnonzero(~np.isclose(a, b, rtol=tolerance, atol=ABSOLUTE_TOLERANCE))
        else:
            bad = np.flatnonzero(got.astype(str).to_numpy() != want.astype(str).to_numpy())
        if len(bad):
            row = int(bad[0])
            problems.append(f"{what}: column {column!r} differs in {len(bad)} of {len(want)} rows "
                            f"(row {row}: served {_plain(got[row])!r}, evaluated {_plain(want[row])!r})")
    return problems, largest


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def refuse_unvalidated(decision: Decision, report: InfraReport | None) -> Decision:
    """Returns the gate's decision with promotion refused when infra validation failed.

    Args:
        decision: The champion/challenger gate's decision.
        report: The challenger's infra validation, or None.

    Returns:
        `decision` unchanged when validation passed or was skipped; else a
        `rejected` decision that keeps the rules and names the failure first.
    """
    if report is None or report.passed:
        return decision
    reason = report.line()
    if not decision.promote:
        return replace(decision, reasons=[reason, *decision.reasons])
    return replace(decision, promote=False, outcome="rejected", reasons=[reason, *decision.reasons])


def judge_probe(mode: str, uri: str, tolerance: float, *, error: str | None, load_seconds: float | None = None,
                predict_seconds: float = 0.0, outputs: dict[str, pd.DataFrame] | None = None,
                evaluated: pd.DataFrame | None = None) -> InfraReport:
    """Turns what the fresh process did into the verdict.

    Args:
        mode: `load_only` or `load_and_query`.
        uri: The registry URI loaded.
        tolerance: The relative tolerance.
        error: Why the fresh process failed, or None.
        load_seconds: Its load time.
        predict_seconds: Its time in `predict`, all requests together.
        outputs: Its predictions by request: `example` (the logged input
            example) and `canary` (the canary rows).
        evaluated: The evaluation's predictions of the canary rows, or None.

    Returns:
        The `InfraReport`: failed when the process failed, when a request
        was not answered, or when the canary predictions differ from the
        evaluation's.
    """
    report = InfraReport(mode=mode, status=PASSED, uri=uri, load_seconds=load_seconds, tolerance=tolerance)
    if error is not None:
        return replace(report, status=FAILED, reasons=[error])
    if mode != "load_and_query":
        return report
    outputs = outputs or {}
    example, canary = outputs.get("example"), outputs.get("canary")
    if example is None:
        report.reasons.append("the logged model has no input example to score")
    elif example.isna().all(axis=None) or example.empty:
        report.reasons.append(f"the input example's predictions are empty or missing: {example.head(3).to_dict()}")
    if evaluated is not None and len(evaluated):
        if canary is None:
            report.reasons.append("the canary rows were not scored")
        else:
            problems, largest = compare_outputs(canary, evaluated, tolerance)
            report.reasons.extend(problems)
            report.max_relative_difference = largest
    report.example_rows = 0 if example is None else len(example)
    report.canary_rows = 0 if canary is None else len(canary)
    rows = report.example_rows + report.canary_rows
    report.row_ms = 1000.0 * predict_seconds / rows if rows else None
    report.max_relative_difference = report.max_relative_difference or 0.0
    report.status = FAILED if report.reasons else PASSED
    return report


def blessing_description(gate_description: str, gate_passed: bool, report: InfraReport | None,
                         run_id: str) -> str:
    """Adds the infra verdict to the thresholds gate's version description.

    Args:
        gate_description: `kerasflow.promotion.gate.threshold_description`'s text.
        gate_passed: Whether every threshold held.
        report: The infra validation, or None when it did not run.
        run_id: The training run.

    Returns:
        The description: a version that met the thresholds but failed infra
        validation is said to be not blessed, and the verdict's line ends it.
    """
    if report is None:
        return gate_description
    lines = gate_description.splitlines()
    if gate_passed and not report.passed:
        lines[0] = (f"Gate decision: not blessed: passed every threshold, but infra validation failed. "
                    f"Trained by run {run_id}.")
    return "\n".join([*lines, report.line()])[:TAG_LIMIT]
