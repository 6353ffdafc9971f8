"""Slices in the gates: naming the worst slice in threshold lines, and a challenger's slices against the champion's.

The slice table and the `slice_min.*`/`slice_max.*` metrics come from
`kerasflow.training.slices`; a value threshold on such a metric is checked
like any other (`kerasflow.promotion.gate`), and its line gains the slice it
was observed on. In `retrain`, `promotion.slice_margin` refuses a challenger
that is worse than the champion on any gated slice of a gated metric.

This module imports neither Prefect nor MLflow.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from kerasflow.promotion.gate import GateResult, lower_is_better
from kerasflow.promotion.plan import Decision, RuleCheck
from kerasflow.schemas.gate import ValueThreshold
from kerasflow.training.slices import SUMMARY_PREFIXES

SLICES_ARTIFACT = "evaluation/slices.json"
WORST_SLICE_TAG = "kerasflow.worst_slice."


def worst_from_tags(tags: dict[str, str]) -> dict[str, str]:
    """The worst slice of each metric, read back from a run's `kerasflow.worst_slice.<metric>` tags."""
    return {key.removeprefix(WORST_SLICE_TAG): value for key, value in tags.items() if key.startswith(WORST_SLICE_TAG)}


def name_line(line: str, worst: dict[str, str]) -> str:
    """Adds the worst slice to a gate line on a `slice_min.*`/`slice_max.*` metric.

    Args:
        line: A gate line, `<metric>: expected ..., observed ... -> FAIL`.
        worst: The worst slice by metric name (`worst_from_tags`).

    Returns:
        The line with `; worst slice: sex=female (n=41)` added, or unchanged.
    """
    metric = line.split(":", 1)[0]
    prefix = next((p for p in SUMMARY_PREFIXES if metric.startswith(p)), None)
    name = worst.get(metric.removeprefix(prefix)) if prefix else None
    return f"{line}; worst slice: {name}" if name else line


def name_worst_slices(gate: GateResult, worst: dict[str, str]) -> GateResult:
    """Returns the thresholds gate with the worst slice named in every slice line."""
    return replace(gate, reasons=[name_line(r, worst) for r in gate.reasons],
                   violations=[name_line(v, worst) for v in gate.violations])


def gated_slice_metrics(thresholds: list[ValueThreshold]) -> list[str]:
    """The metrics whose slices are gated: those a `slice_min.*`/`slice_max.*` threshold names.

    Args:
        thresholds: The gate's value thresholds (`plan.value_thresholds`).

    Returns:
        The metric names without the prefix, e.g. `["accuracy"]`.
    """
    names = [rule.metric for rule in thresholds]
    return list(dict.fromkeys(n.split(".", 1)[1] for n in names if n.startswith(SUMMARY_PREFIXES)))


def table_rows(logged: Any) -> list[dict[str, Any]]:
    """The rows of a logged slice table (MLflow's `log_table` JSON: `columns` and `data`), or of a list of rows."""
    if isinstance(logged, dict) and "columns" in logged:
        return [dict(zip(logged["columns"], row)) for row in logged.get("data", [])]
    return list(logged or [])


def compare_slices(challenger: list[dict[str, Any]], champion: list[dict[str, Any]], metrics: list[str],
                   margin: float) -> list[RuleCheck]:
    """Checks the challenger against the champion on every slice gated in both.

    Args:
        challenger: The challenger's slice table rows.
        champion: The champion's slice table rows.
        metrics: The gated metrics (`gated_slice_metrics`).
        margin: The largest tolerated regression on a slice, e.g. 0.02.

    Returns:
        One `change` check per slice and metric, named
        `<metric> where <slice>` (`accuracy where sex is female`);
        it fails when the challenger is worse by more than `margin`. Slices
        under `min_slice_rows` on either side, or a metric missing on
        either, are not compared.
    """
    theirs = {row["slice"]: row for row in champion if row.get("gated")}
    checks = []
    for row in challenger:
        old = theirs.get(row["slice"])
        if not row.get("gated") or old is None:
            continue
        for metric in metrics:
            new_value, old_value = _number(row.get(metric)), _number(old.get(metric))
            if new_value is None or old_value is None:
                continue
            higher = not lower_is_better(metric)
            change = (new_value - old_value) if higher else (old_value - new_value)
            checks.append(RuleCheck("change", f"{metric} where {tag_safe(row['slice'])}",
                                    f"improvement >= {-margin:+g} on slice {row['slice']} (n={row['rows']}, "
                                    f"{'higher' if higher else 'lower'} is better)",
                                    new_value, change >= -margin, champion=old_value, change=change,
                                    min_delta=-margin, higher=higher))
    return checks


def tag_safe(name: str) -> str:
    """A slice name in the characters MLflow allows in a tag key (`sex=female` -> `sex is female`).

    The gate's record tags each rule as `kerasflow.gate.<kind>.<metric>`.
    """
    text = (name.replace("=[", " from ").replace(", ", " to ").replace(")", "").replace("=< ", " below ")
            .replace("=>= ", " from ").replace("=", " is "))
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", text)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN: not produced


def refuse_slice_regressions(decision: Decision, checks: list[RuleCheck]) -> Decision:
    """Returns the gate's decision with the slice checks added, and promotion refused if one failed.

    Args:
        decision: The champion/challenger gate's decision.
        checks: `compare_slices`'s checks.

    Returns:
        The decision with `checks` appended; `rejected` (keeping its rules)
        when it would promote and a slice check failed, the failures named
        first among the reasons.
    """
    failed = [c for c in checks if not c.passed]
    merged = replace(decision, checks=[*decision.checks, *checks])
    if not failed:
        return merged
    reason = (f"{len(failed)} gated slice check(s) worse than the champion beyond promotion.slice_margin: "
              + "; ".join(c.line() for c in failed))
    if not decision.promote:
        return replace(merged, reasons=[*decision.reasons, reason])
    return replace(merged, promote=False, outcome="rejected", reasons=[reason, *decision.reasons])
