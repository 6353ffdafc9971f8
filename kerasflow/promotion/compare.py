"""The noise-aware champion/challenger comparison, and the test-metric intervals every run reports.

`promotion.compare` asks for a paired bootstrap interval of the
challenger's improvement on one metric (`kerasflow.promotion.bootstrap`);
the comparison is one more gate rule (kind `compare`) of the retraining's
`Decision`, so its record (description, tags, Markdown, decision JSON)
names it like every other rule.

Plain data: no MLflow, no Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass

from kerasflow.promotion.bootstrap import Interval, RowOutputs, locate, metric_interval, paired_difference
from kerasflow.promotion.gate import lower_is_better
from kerasflow.promotion.plan import Decision, RuleCheck
from kerasflow.schemas.promotion import CompareConfig

PRIMARY = ("accuracy", "mae")  # the metric an interval is reported for when no rule names one


@dataclass
class Comparison:
    """The challenger's improvement over the champion on the same rows, judged by the rule.

    Args:
        interval: The improvement (`challenger - champion`, sign-flipped
            for errors) with its paired bootstrap interval; None when it
            could not be computed.
        rule: `superiority` or `non_inferiority`.
        margin: The rule's margin, in the metric's units.
        passed: Whether the interval's lower bound clears the rule.
        problem: Why no interval was computed, if none was.
        metric: The compared metric.
    """

    metric: str
    rule: str
    margin: float
    passed: bool
    interval: Interval | None = None
    problem: str | None = None

    @property
    def bound(self) -> float:
        """What the lower bound must exceed: `margin` (superiority) or `-margin` (non-inferiority)."""
        return self.margin if self.rule == "superiority" else -self.margin

    def verdict(self) -> str:
        """`accuracy +0.004 (95% CI -0.003…+0.011): not significant, champion kept`."""
        if self.interval is None:
            return f"{self.metric}: not compared ({self.problem}), champion kept"
        margin = f" by more than {self.margin:g}" if self.margin else ""
        if self.rule == "superiority":
            words = f"significantly better{margin}" if self.passed else "not significant, champion kept"
        else:
            within = f" within margin {self.margin:g}" if self.margin else ""
            words = f"non-inferior{within}" if self.passed else f"not shown non-inferior{within}, champion kept"
        better = " (improvement; lower is better)" if lower_is_better(self.metric) else ""
        return f"{self.interval.text()}{better}: {words}"

    def check(self) -> RuleCheck:
        """The comparison as a gate rule of kind `compare`."""
        expected = (f"{self.rule.replace('_', '-')}: {self._level()} CI lower bound of the improvement "
                    f"> {self.bound:+g}")
        estimate = None if self.interval is None else self.interval.estimate
        return RuleCheck("compare", self.metric, expected, None, self.passed, change=estimate,
                         higher=not lower_is_better(self.metric), detail=f"{self.metric}: {self.verdict()}")

    def _level(self) -> str:
        return f"{self.interval.confidence * 100:g}%" if self.interval else "the"


def compare_models(challenger: dict[str, RowOutputs], champion: dict[str, RowOutputs], compare: CompareConfig,
                   seed: int) -> Comparison:
    """Compares champion and challenger on the same test rows, with a paired bootstrap.

    Args:
        challenger: The challenger's per-row outputs by head (`read_outputs`).
        champion: The champion's, on the same rows.
        compare: The `promotion.compare` section.
        seed: The resampling's seed when the section sets none.

    Returns:
        The `Comparison`; one that could not be computed (a metric the
        models do not produce, different rows or classes) does not pass.
    """
    mine, theirs = locate(challenger, compare.metric), locate(champion, compare.metric)
    if mine is None or theirs is None:
        who = "challenger" if mine is None else "champion"
        return Comparison(compare.metric, compare.rule, compare.margin, False,
                          problem=f"the {who}'s outputs do not give {compare.metric!r}")
    try:
        interval = paired_difference(mine[0], theirs[0], mine[1], confidence=compare.confidence,
                                     resamples=compare.resamples, seed=_seed(compare, seed), label=compare.metric)
    except ValueError as exc:
        return Comparison(compare.metric, compare.rule, compare.margin, False, problem=str(exc))
    bound = compare.margin if compare.rule == "superiority" else -compare.margin
    return Comparison(compare.metric, compare.rule, compare.margin, bool(interval.low > bound), interval)


def with_comparison(decision: Decision, comparison: Comparison | None, configured: bool) -> Decision:
    """Adds the comparison to the gate's decision as one more rule.

    Args:
        decision: The decision of the value and change rules.
        comparison: The comparison, or None when none was configured or
            there is no champion to compare with.
        configured: Whether `promotion.compare` is set; without it the
            decision is returned unchanged.

    Returns:
        The decision with a `compare` rule: rejected if it fails; a
        comparison alone (no other rule) gates the retraining, and with no
        champion yet the challenger becomes the first champion, as with
        change rules.
    """
    if not configured:
        return decision
    if comparison is None:
        if decision.outcome == "not-gated":
            return Decision(True, "first-champion", [], [
                "no champion yet: nothing to compare with (promotion.compare); "
                "the challenger becomes the first champion"])
        return decision
    checks = [*decision.checks, comparison.check()]
    if decision.outcome == "not-gated":
        decision = Decision(True, "promoted", [], [])
    if not comparison.passed:
        failed = [c for c in checks if not c.passed]
        return Decision(False, "rejected", checks, [comparison.verdict(),
                                                    f"{len(failed)} of {len(checks)} gate rules failed: "
                                                    + "; ".join(c.line() for c in failed)])
    if not decision.promote:
        return Decision(False, decision.outcome, checks, [comparison.verdict(), *decision.reasons])
    return Decision(True, decision.outcome, checks, [
        comparison.verdict(), f"all {len(checks)} gate rules hold: the challenger replaces the champion"])


def gated_metrics(legacy: dict[str, float], gate_metrics: list[str], compare: CompareConfig | None,
                  produced: dict[str, float]) -> list[str]:
    """Names the test metrics that get a confidence interval: those a rule names, else the primary one.

    Args:
        legacy: `registry.thresholds`.
        gate_metrics: The metrics `registry.gate` rules name.
        compare: `promotion.compare`, or None.
        produced: The test metrics the evaluation produced.

    Returns:
        The metric names, in order, without repeats; the primary metric
        (`accuracy`, else `mae`, else the first head's) when no rule names one.
    """
    names = [*legacy, *gate_metrics, *([compare.metric] if compare else [])]
    if names:
        return list(dict.fromkeys(names))
    for metric in PRIMARY:
        found = [name for name in produced if name == metric or name.endswith("." + metric)]
        if found:
            return found[:1]
    return []


def metric_intervals(outputs: dict[str, RowOutputs], names: list[str], *, confidence: float, resamples: int,
                     seed: int) -> dict[str, Interval]:
    """Returns the bootstrap interval of every named metric the outputs give (`loss` gives none).

    Args:
        outputs: Per-row outputs by head (`read_outputs`).
        names: The metrics.
        confidence: The intervals' level.
        resamples: Bootstrap resamples.
        seed: Seed of the resampling.

    Returns:
        `{metric: Interval}`.
    """
    intervals = {}
    for name in names:
        found = locate(outputs, name)
        if found is not None:
            intervals[name] = metric_interval(found[0], found[1], confidence=confidence, resamples=resamples,
                                              seed=seed, label=name)
    return intervals


def _seed(compare: CompareConfig, seed: int) -> int:
    return seed if compare.seed is None else compare.seed
