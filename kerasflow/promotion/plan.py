"""Champion/challenger promotion: the gate, its record, and registry alias moves.

In the manner of TFX's Evaluator "blessing": a retrained challenger replaces
the champion only if it meets every value threshold (`accuracy >= 0.90`)
and every change threshold against the champion, both scored on the same
fresh test rows. With no rule configured nothing is promoted automatically;
with no champion yet, a challenger that meets the value thresholds becomes
the first champion.

Aliases: `champion` is the production model, `previous-champion` the one it
replaced (the rollback target), and `rolled-back` a champion that a rollback
demoted. The functions here only plan alias moves; `kerasflow.tracking.registry`
applies them to MLflow.

This module deliberately imports neither Prefect nor MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kerasflow.errors import BadInputError
from kerasflow.promotion.gate import lower_is_better
from kerasflow.schemas.gate import ChangeThreshold, ValueThreshold

CHAMPION = "champion"
PREVIOUS = "previous-champion"
ROLLED_BACK = "rolled-back"

Outcome = Literal["first-champion", "promoted", "rejected", "not-gated"]
DESCRIPTION_LIMIT = 5000  # MLflow's limit on a model version's description


class PromotionError(BadInputError):
    """A registry alias move that cannot be made, e.g. a rollback with no previous champion."""

    label = "cannot move the champion"


@dataclass
class RuleCheck:
    """One gate rule and what was observed.

    Args:
        kind: `threshold` (value bound) or `change` (against the champion).
        metric: Test metric name.
        expected: The rule in words, e.g. `>= 0.9`.
        challenger: The challenger's value, or None if not produced.
        champion: The champion's value (change rules only).
        change: The improvement measured (change rules only).
        passed: Whether the rule held.
        relative: The relative improvement, `change / |champion|` (change rules only).
        min_delta: The rule's least improvement, if it has one (change rules only).
        min_relative: The rule's least relative improvement, if it has one (change rules only).
        higher: Whether higher is better (change rules only).
        detail: The whole line, for rules that render their own (`compare`). Default none.
    """

    kind: str
    metric: str
    expected: str
    challenger: float | None
    passed: bool
    champion: float | None = None
    change: float | None = None
    relative: float | None = None
    min_delta: float | None = None
    min_relative: float | None = None
    higher: bool | None = None
    detail: str | None = None

    def line(self) -> str:
        """Returns the rule, the observed values and the verdict on one line."""
        verdict = "pass" if self.passed else "FAIL"
        if self.detail:
            return f"{self.detail} -> {verdict}"
        if self.kind == "threshold":
            observed = "nothing (metric not produced)" if self.challenger is None else f"{self.challenger:.4f}"
            return f"{self.metric}: expected {self.expected}, observed {observed} -> {verdict}"
        if self.challenger is None or self.champion is None:
            who = "challenger" if self.challenger is None else "champion"
            return f"{self.metric}: expected {self.expected}, observed nothing ({who} metric not produced) -> {verdict}"
        if self.min_relative is None:
            return (f"{self.metric}: expected {self.expected}, observed challenger {self.challenger:.4f} vs champion "
                    f"{self.champion:.4f} (improvement {self.change:+.4f}) -> {verdict}")
        judged = (f"{_percent(self.relative)} relative ({self.challenger:.4g} vs {self.champion:.4g}), "
                  f"needs >= {_percent(self.min_relative)}")
        if self.min_delta is not None:
            judged += f"; improvement {self.change:+.4g}, needs >= {self.min_delta:+g}"
        better = "" if self.higher is None else f" ({'higher' if self.higher else 'lower'} is better)"
        return f"{self.metric}: {judged}{better} -> {verdict}"


@dataclass
class Decision:
    """The gate's verdict on a challenger.

    Args:
        promote: Whether the challenger becomes champion.
        outcome: `first-champion`, `promoted`, `rejected` or `not-gated`.
        checks: Every rule evaluated, passed or not.
        reasons: Plain-language reasons for the outcome.
    """

    promote: bool
    outcome: Outcome
    checks: list[RuleCheck] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[RuleCheck]:
        """The rules that failed."""
        return [c for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Returns the outcome, the reasons and one line per rule."""
        lines = [f"decision: {self.outcome} ({'promote' if self.promote else 'keep the current champion'})"]
        lines += [f"  reason: {r}" for r in self.reasons]
        lines += [f"  rule: {c.line()}" for c in self.checks]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Returns the decision as JSON-serializable data."""
        return {**asdict(self), "violations": [c.line() for c in self.violations]}


@dataclass
class AliasPlan:
    """Alias moves on one registered model.

    Args:
        set: `{alias: version}` to point.
        delete: Aliases to remove.
    """

    set: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)


def value_thresholds(gate_thresholds: list[ValueThreshold], legacy: dict[str, float]) -> list[ValueThreshold]:
    """Returns the gate's value thresholds, falling back to the legacy mapping.

    Args:
        gate_thresholds: `registry.gate.thresholds`.
        legacy: `registry.thresholds` (`{metric: bound}`, a minimum for
            scores and a maximum for losses and errors).

    Returns:
        `gate_thresholds` if any, else the legacy bounds as thresholds.
    """
    if gate_thresholds:
        return list(gate_thresholds)
    return [ValueThreshold(metric=name, max=bound) if lower_is_better(name) else ValueThreshold(metric=name, min=bound)
            for name, bound in legacy.items()]


def decide_promotion(challenger: dict[str, float], champion: dict[str, float] | None,
                     thresholds: list[ValueThreshold], changes: list[ChangeThreshold]) -> Decision:
    """Applies the gate to a challenger.

    Args:
        challenger: The challenger's test metrics.
        champion: The champion's metrics on the same test rows, or None
            when there is no champion yet.
        thresholds: Value thresholds on the challenger.
        changes: Change thresholds against the champion.

    Returns:
        The `Decision`. With no rule configured: `not-gated`, nothing
        promoted. With no champion: `first-champion` if every value
        threshold holds (change rules do not apply). Otherwise `promoted`
        if every rule holds, else `rejected` naming every violated rule.
    """
    if not thresholds and not changes:
        return Decision(False, "not-gated", reasons=[
            "no gate thresholds configured (registry.gate or registry.thresholds): "
            "nothing is promoted automatically; promote by hand with `kerasflow promote`"])
    checks = [check_value(challenger, rule) for rule in thresholds]
    if champion is not None:
        checks += [check_change(challenger, champion, rule) for rule in changes]
    failed = [c for c in checks if not c.passed]
    if failed:
        return Decision(False, "rejected", checks, [f"{len(failed)} of {len(checks)} gate rules failed: "
                                                   + "; ".join(c.line() for c in failed)])
    if champion is None:
        why = f"all {len(checks)} value thresholds hold" if checks else "no value thresholds to check"
        return Decision(True, "first-champion", checks,
                        [f"no champion yet; {why}: the challenger becomes the first champion"])
    return Decision(True, "promoted", checks,
                    [f"all {len(checks)} gate rules hold: the challenger replaces the champion"])


def recheck_champion(decision: Decision, compared_with: str | None, current: str | None) -> Decision:
    """Withdraws a promotion when `champion` moved after the challenger was compared with it.

    Another retraining, a manual promotion or a rollback may have moved the
    alias while this challenger trained; its comparison is then stale.

    Args:
        decision: The gate's decision.
        compared_with: The champion version the challenger was scored against.
        current: The version `champion` points at now.

    Returns:
        The decision unchanged, or `rejected` with the reason added.
    """
    if not decision.promote or str(compared_with) == str(current):
        return decision
    reason = (f"the champion changed during this run (compared with v{compared_with or 'none'}, now "
              f"v{current or 'none'}): not promoted; retrain again to compare with the new champion")
    return Decision(False, "rejected", decision.checks, [*decision.reasons, reason])


def check_value(metrics: dict[str, float], rule: ValueThreshold) -> RuleCheck:
    """Checks one value threshold.

    Args:
        metrics: The challenger's metrics.
        rule: The threshold.

    Returns:
        The `RuleCheck`; a missing metric fails.
    """
    bounds = [f">= {rule.min:g}"] if rule.min is not None else []
    bounds += [f"<= {rule.max:g}"] if rule.max is not None else []
    observed = metrics.get(rule.metric)
    passed = observed is not None and (rule.min is None or observed >= rule.min) and (
        rule.max is None or observed <= rule.max)
    return RuleCheck("threshold", rule.metric, " and ".join(bounds), observed, passed)


def check_change(challenger: dict[str, float], champion: dict[str, float], rule: ChangeThreshold) -> RuleCheck:
    """Checks one change threshold against the champion.

    Args:
        challenger: The challenger's metrics.
        champion: The champion's metrics on the same rows.
        rule: The change threshold.

    Returns:
        The `RuleCheck`; a metric missing on either side fails.
    """
    higher = (rule.direction or ("lower" if lower_is_better(rule.metric) else "higher")) == "higher"
    bounds = [f"improvement >= {rule.min_delta:+g}"] if rule.min_delta is not None else []
    bounds += [f"relative improvement >= {rule.min_relative_delta:+.2%}"] if rule.min_relative_delta is not None else []
    expected = " and ".join(bounds) + f" ({'higher' if higher else 'lower'} is better)"
    new, old = challenger.get(rule.metric), champion.get(rule.metric)
    if new is None or old is None:
        return RuleCheck("change", rule.metric, expected, new, False, champion=old, min_delta=rule.min_delta,
                         min_relative=rule.min_relative_delta, higher=higher)
    change = (new - old) if higher else (old - new)
    relative = change / abs(old) if old else (0.0 if change == 0 else float("inf") if change > 0 else float("-inf"))
    passed = (rule.min_delta is None or change >= rule.min_delta) and (
        rule.min_relative_delta is None or relative >= rule.min_relative_delta)
    return RuleCheck("change", rule.metric, expected, new, passed, champion=old, change=change, relative=relative,
                     min_delta=rule.min_delta, min_relative=rule.min_relative_delta, higher=higher)


def plan_promotion(aliases: dict[str, str], version: str) -> AliasPlan:
    """Plans making `version` the champion.

    Args:
        aliases: Current `{alias: version}` of the registered model.
        version: The new champion.

    Returns:
        `champion` on `version`; the replaced champion, if any and
        different, becomes `previous-champion`.
    """
    plan = AliasPlan(set={CHAMPION: str(version)})
    current = aliases.get(CHAMPION)
    if current is not None and str(current) != str(version):
        plan.set[PREVIOUS] = str(current)
    return plan


def plan_rollback(aliases: dict[str, str]) -> AliasPlan:
    """Plans moving `champion` back to `previous-champion`.

    Args:
        aliases: Current `{alias: version}` of the registered model.

    Returns:
        `champion` on the previous champion, `rolled-back` on the demoted
        one, and `previous-champion` removed (a second rollback needs a
        new promotion first).

    Raises:
        PromotionError: There is no champion or no previous champion.
    """
    current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
    if current is None:
        raise PromotionError("the model has no `champion` alias: nothing to roll back")
    if previous is None:
        raise PromotionError(f"champion is version {current} and there is no `previous-champion` alias "
                             "to roll back to (it is set when a promotion replaces a champion)")
    return AliasPlan(set={CHAMPION: str(previous), ROLLED_BACK: str(current)}, delete=[PREVIOUS])


def decision_tags(decision: Decision, champion_version: str | None) -> dict[str, str]:
    """Returns model-version tags recording a decision.

    Args:
        decision: The gate's decision.
        champion_version: The champion the challenger was compared with.

    Returns:
        `kerasflow.decision`, `kerasflow.promoted`, `kerasflow.compared_with`,
        `kerasflow.reasons`, and one `kerasflow.gate.<kind>.<metric>` tag per
        rule with its expected and observed values.
    """
    tags = {
        "kerasflow.decision": decision.outcome,
        "kerasflow.promoted": str(decision.promote).lower(),
        "kerasflow.compared_with": champion_version or "none",
        "kerasflow.reasons": " | ".join(decision.reasons)[:4900],
    }
    for check in decision.checks:
        tags[f"kerasflow.gate.{check.kind}.{check.metric}"] = check.line()[:4900]
    return tags


def decision_markdown(decision: Decision, model_name: str, version: str | None, champion_version: str | None,
                      drift_summary: str | None = None, mlflow_url: str | None = None) -> str:
    """Renders a decision as Markdown, for a Prefect artifact.

    Args:
        decision: The gate's decision.
        model_name: Registered model name.
        version: The challenger's version.
        champion_version: The champion it was compared with, or None.
        drift_summary: The drift verdict and the drifted features, if a check ran.
        mlflow_url: The retraining's MLflow run page, linked under the title. Default none.

    Returns:
        Markdown with the outcome, the MLflow run's link, the reasons and a table of every rule.
    """
    verdict = "promoted to `champion`" if decision.promote else "not promoted"
    lines = [f"# Retraining of `{model_name}`: {decision.outcome}", "",
             f"Challenger version **{version or '-'}** {verdict}; "
             f"compared with champion version **{champion_version or 'none'}**.", ""]
    lines += [f"[MLflow run]({mlflow_url})", ""] if mlflow_url else []
    lines += ["## Reasons", ""]
    lines += [f"- {r}" for r in decision.reasons]
    if decision.checks:
        lines += ["", "## Gate rules", "", "| rule | metric | expected | challenger | champion | result |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c.kind} | `{c.metric}` | {c.expected} | {_num(c.challenger)} | {_num(c.champion)} | "
                  f"{'pass' if c.passed else '**FAIL**'} |" for c in decision.checks]
    if drift_summary:
        lines += ["", "## Drift", "", "```", drift_summary, "```"]
    return "\n".join(lines) + "\n"


def decision_description(decision: Decision, champion_version: str | None) -> str:
    """Renders a decision as a registered version's description (plain text, at most 5000 characters).

    Args:
        decision: The gate's decision.
        champion_version: The champion the challenger was compared with, or None.

    Returns:
        The outcome, the champion compared with, the reasons, and every
        rule with its expected and observed values.
    """
    verdict = "promoted to @champion" if decision.promote else "not promoted"
    lines = [f"Gate decision: {decision.outcome} ({verdict}); compared with champion "
             f"{'v' + str(champion_version) if champion_version else '(none)'} on the same test rows."]
    lines += [f"Reason: {r}" for r in decision.reasons]
    lines += ["Rules (expected vs observed):"] if decision.checks else []
    lines += [f"- {c.kind}: {c.line()}" for c in decision.checks]
    text = "\n".join(lines)
    return text if len(text) <= DESCRIPTION_LIMIT else text[:DESCRIPTION_LIMIT - 3] + "..."


def state_of(decision: Decision, version: str | None) -> tuple[str, str]:
    """Names a retraining's final Prefect state after its decision, with a one-line message.

    Args:
        decision: The decision after the champion recheck.
        version: The challenger's version.

    Returns:
        `(name, message)`: `Promoted` (also a first champion), `Rejected`
        with the first failed rule (or the last reason, e.g. the champion
        moved meanwhile), or `Not gated`.
    """
    challenger = f"v{version}" if version else "the challenger"
    if decision.promote:
        return "Promoted", f"{decision.outcome}: {challenger} is now @champion"
    if decision.outcome == "not-gated":
        return "Not gated", f"not gated: {challenger} registered, nothing promoted (no gate rules configured)"
    first = decision.violations[0].line() if decision.violations else (decision.reasons or ["rejected"])[-1]
    return "Rejected", f"rejected {challenger}: {first}"


def _percent(value: float | None) -> str:
    """`0.012` -> `+1.2%`, `0.02` -> `+2%`, `-0.05` -> `-5%`."""
    return "n/a" if value is None else f"{value * 100:+.3g}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
