"""The retrain gate's slice rules: the worst slices named, and the challenger's slices against the champion's."""

from __future__ import annotations

from dataclasses import replace

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.promotion.plan import Decision, value_thresholds
from kerasflow.promotion.slices import (
    SLICES_ARTIFACT,
    compare_slices,
    gated_slice_metrics,
    refuse_slice_regressions,
    table_rows,
    worst_from_tags,
)
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.champion import Champion
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import load_run_json


@task(name="gate-slices", retries=0, cache_policy=NO_CACHE)
def gate_slices(tracker: Tracker, config: PipelineConfig, decision: Decision, champion: Champion | None) -> Decision:
    """Adds the slice rules to the champion/challenger decision.

    Every `slice_min.*`/`slice_max.*` threshold's worst slice is named
    among the reasons. With `promotion.slice_margin` set and a champion
    whose run logged `evaluation/slices.json`, each slice gated in both runs
    is compared on each gated metric, and a challenger worse than the
    champion by more than the margin on any of them is refused. Logs
    `gate.slice_checks` and `gate.slice_violations`; tags
    `kerasflow.slice_comparison` when no comparison could be made.

    Returns:
        The decision, with the slice checks added.
    """
    metrics = gated_slice_metrics(value_thresholds(config.registry.gate.thresholds, config.registry.thresholds))
    if not metrics:
        return decision
    client = tracker.client
    worst = worst_from_tags(client.get_run(tracker.run_id).data.tags)
    named = [f"worst slice of {m}: {worst[m]}" for m in metrics if m in worst]
    decision = replace(decision, reasons=[*decision.reasons, *named])
    margin = config.promotion.slice_margin
    if margin is None or champion is None:
        return decision
    theirs = load_run_json(client, champion.run_id, SLICES_ARTIFACT)
    if theirs is None:
        tracker.tags({"kerasflow.slice_comparison": f"skipped: champion v{champion.version} logged no slice metrics"})
        return decision
    checks = compare_slices(table_rows(load_run_json(client, tracker.run_id, SLICES_ARTIFACT)), table_rows(theirs),
                            metrics, margin)
    tracker.counts({"slice_checks": len(checks), "slice_violations": sum(not c.passed for c in checks)},
                    prefix="gate.")
    return refuse_slice_regressions(decision, checks)
