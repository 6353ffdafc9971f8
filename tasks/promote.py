"""The champion/challenger gate and the alias moves it allows."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.promotion.compare import Comparison, with_comparison
from kerasflow.promotion.infra import InfraReport, refuse_unvalidated
from kerasflow.promotion.plan import (
    CHAMPION,
    PREVIOUS,
    Decision,
    decide_promotion,
    decision_description,
    decision_markdown,
    decision_tags,
    recheck_champion,
    state_of,
    value_thresholds,
)
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.champion import Champion
from kerasflow.tasks.outage import to_prefect
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker, run_url
from kerasflow.tracking.notes import OUTCOME_TAG, outcome_of, utc_now
from kerasflow.tracking.registry import promote_if_champion, registered_aliases


@task(name="gate-challenger", retries=0, cache_policy=NO_CACHE)
def gate_challenger(tracker: Tracker, config: PipelineConfig, metrics: dict[str, float],
                    champion_metrics: dict[str, float] | None, infra: InfraReport | None = None,
                    comparison: Comparison | None = None) -> Decision:
    """Applies the champion/challenger gate (see `kerasflow.promotion.plan.decide_promotion`).

    With `promotion.compare`, the paired bootstrap `comparison` is one
    more rule (`kerasflow.promotion.compare.with_comparison`).

    A challenger that failed infra validation (`infra`) is never promoted,
    whatever its metrics (`kerasflow.promotion.infra.refuse_unvalidated`).
    Logs `gate.rules`, `gate.violations` and `gate.blessed` (1 when the
    challenger may be promoted).

    Returns:
        The `Decision`.
    """

    gate = config.registry.gate
    decision = decide_promotion(metrics, champion_metrics,
                                value_thresholds(gate.thresholds, config.registry.thresholds), gate.changes)
    decision = with_comparison(decision, comparison, config.promotion.compare is not None)
    decision = refuse_unvalidated(decision, infra)
    tracker.counts({"rules": len(decision.checks), "violations": len(decision.violations),
                                          "blessed": float(decision.promote)}, prefix="gate.")
    return decision


@task(name="promote-challenger", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def promote_challenger(tracker: Tracker, config: PipelineConfig, decision: Decision, version: str,
                       champion: Champion | None, drift_summary: str | None) -> dict[str, Any]:
    """Moves `champion` to a blessed challenger and records the decision everywhere.

    Nothing moves unless the decision says so, and not if the champion
    changed while this run was training (another run or a rollback): the
    move is a compare-and-set under the model's alias lock
    (`kerasflow.tracking.registry.promote_if_champion`). The challenger's
    description and model-version tags, the run's tags and
    `gate/decision.json` and `.txt`, and a Prefect Markdown artifact record
    the outcome, every rule with its expected and observed values, and the
    reasons.

    Returns:
        `{"outcome", "promoted", "champion", "previous_champion", "reasons",
        "state", "message"}`; `state` and `message` name the flow's final
        Prefect state (`Promoted`, `Rejected`, `Not gated`).
    """

    name = config.model_name
    client = tracker.client
    expected = champion.version if champion else None
    result = decision
    if decision.promote:
        _, current = promote_if_champion(client, name, version, expected)
        if str(current) != str(version):  # already champion: a retry of this task after the move
            result = recheck_champion(decision, expected, current)
    aliases = registered_aliases(client, name) or {}
    decided_at = utc_now()
    tags = {**decision_tags(result, expected), "kerasflow.decided_at": decided_at, "kerasflow.run_id": tracker.run_id}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    description = decision_description(result, expected)
    client.update_model_version(name, version, description=description)
    tracker.text(description + "\n", "gate/description.txt")  # the head of the model card
    tracker.tags({"kerasflow.decision": result.outcome, "kerasflow.decided_at": decided_at,
                  OUTCOME_TAG: outcome_of(result.outcome)})
    tracker.json(result.to_dict(), "gate/decision.json")
    tracker.text(result.summary() + "\n", "gate/decision.txt")
    mlflow_url = run_url(client.get_run(tracker.run_id).info.experiment_id, tracker.run_id, tracker.uri)
    _markdown_artifact(decision_markdown(result, name, version, expected, drift_summary, mlflow_url), name)
    state, message = state_of(result, version)
    return {"outcome": result.outcome, "promoted": result.promote, "champion": aliases.get(CHAMPION),
            "previous_champion": aliases.get(PREVIOUS), "reasons": result.reasons, "state": state,
            "message": message}


def _markdown_artifact(markdown: str, model_name: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    key = "retrain-" + "".join(c if c.isalnum() else "-" for c in model_name.lower()).strip("-")
    to_prefect("the champion decision artifact", create_markdown_artifact, markdown=markdown, key=key[:100],
               description=f"Champion decision for {model_name}")
