"""Quality gates: value thresholds on test metrics, and challenger-versus-champion checks."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    verdict = "blessed: passed every threshold, got @candidate" if gate.passed else \
        "not blessed: " + (f"{len(gate.violations)} threshold(s) failed" if gate.violations else "no thresholds set")
    lines = [f"Gate decision: {verdict}. Trained by run {run_id}."]
    lines += [f"- {reason}" for reason in gate.reasons]
    return "\n".join(lines)
