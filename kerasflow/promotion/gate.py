"""Quality gates: value thresholds on test metrics, the baseline rule, and challenger-versus-champion checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from kerasflow.schemas.gate import BeatsBaseline
from kerasflow.training.baseline import Baseline

LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")


@dataclass
class GateResult:
    """The outcome of a gate.

    Args:
        passed: True when every rule held.
        reasons: One line per rule, passed or not, with expected and observed values.
        violations: The lines of the rules that failed.
    """

    passed: bool
    reasons: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def lower_is_better(metric: str) -> bool:
    """Returns True for losses and errors, which gates bound from above."""
    last = metric.split(".")[-1]
    return any(token in last for token in LOWER_IS_BETTER)


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> GateResult:
    """Checks test metrics against value thresholds.

    A threshold is a minimum for scores (`accuracy: 0.9` means
    accuracy >= 0.9) and a maximum for losses and errors (`mae: 50` means
    mae <= 50).

    Args:
        metrics: Observed test metrics.
        thresholds: `{metric: bound}`; empty means nothing is checked.

    Returns:
        A `GateResult`; with no thresholds it does not pass, since nothing
        was shown.
    """
    if not thresholds:
        return GateResult(False, ["no thresholds configured: nothing is blessed automatically"])
    reasons, violations = [], []
    for name, bound in thresholds.items():
        line, ok = _check_value(name, metrics.get(name), bound)
        reasons.append(line)
        if not ok:
            violations.append(line)
    return GateResult(not violations, reasons, violations)


def check_registration(metrics: dict[str, float], thresholds: dict[str, float], beats: BeatsBaseline | None = None,
                       baseline: Baseline | None = None) -> GateResult:
    """The gate of the `candidate` alias: the value thresholds, and the baseline rule when configured.

    Args:
        metrics: The network's test metrics.
        thresholds: `registry.thresholds`.
        beats: `registry.beats_baseline`, or None (no baseline rule).
        baseline: The run's baseline, or None when none was fitted.

    Returns:
        A `GateResult`: every rule's line, the baseline rule's last. With
        no threshold, the baseline rule alone decides.
    """
    if beats is None:
        return check_thresholds(metrics, thresholds)
    base = check_thresholds(metrics, thresholds) if thresholds else GateResult(True)
    line, ok = check_baseline(metrics, beats, baseline)
    violations = base.violations + ([] if ok else [line])
    return GateResult(not violations, [*base.reasons, line], violations)


def check_baseline(metrics: dict[str, float], beats: BeatsBaseline, baseline: Baseline | None) -> tuple[str, bool]:
    """Checks that the network does not lose to the baseline by more than the margin.

    Args:
        metrics: The network's test metrics.
        beats: The rule: its metric (default `accuracy`, else `mae`) and margin.
        baseline: The baseline scored on the same test rows, or None.

    Returns:
        `(line, held)`: the rule with its expected and observed values. A
        missing baseline (or metric) does not hold: nothing was shown.
    """
    scores = baseline.metrics if baseline is not None else {}
    name = beats.metric or next((m for m in ("accuracy", "mae") if m in metrics or m in scores), "accuracy")
    rule = f"beats_baseline {name}"
    if name not in scores:
        why = baseline.reason if baseline is not None and baseline.reason else f"the baseline has no {name!r}"
        return f"{rule}: expected a baseline to compare with, observed none ({why}) -> FAIL", False
    lower = lower_is_better(name)
    bound = scores[name] + beats.margin if lower else scores[name] - beats.margin
    op = "<=" if lower else ">="
    expected = f"expected {op} {bound:.4f} ({baseline.name} {scores[name]:.4f}, margin {beats.margin:g})"
    if name not in metrics:
        return f"{rule}: {expected}, observed nothing (metric not produced) -> FAIL", False
    ok = metrics[name] <= bound if lower else metrics[name] >= bound
    return f"{rule}: {expected}, observed {metrics[name]:.4f} -> {'pass' if ok else 'FAIL'}", ok


def _check_value(name: str, observed: float | None, bound: float) -> tuple[str, bool]:
    op = "<=" if lower_is_better(name) else ">="
    if observed is None:
        return f"{name}: expected {op} {bound:g}, observed nothing (metric not produced)", False
    ok = observed <= bound if op == "<=" else observed >= bound
    return f"{name}: expected {op} {bound:g}, observed {observed:.4f} -> {'pass' if ok else 'FAIL'}", ok


def threshold_description(gate: GateResult, run_id: str) -> str:
    """Renders the thresholds gate as a registered version's description, in a few readable lines.

    Args:
        gate: The thresholds gate's result.
        run_id: The training run.

    Returns:
        The verdict (blessed as `@candidate` or not), then one line per rule
        with its expected and observed values.
    """
    verdict = "blessed: passed every rule, got @candidate" if gate.passed else \
        "not blessed: " + (f"{len(gate.violations)} rule(s) failed" if gate.violations else "no thresholds set")
    lines = [f"Gate decision: {verdict}. Trained by run {run_id}."]
    lines += [f"- {reason}" for reason in gate.reasons]
    return "\n".join(lines)
