"""The noise-aware comparison of challenger and champion on the same test rows (`promotion.compare`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from kerasflow.promotion.bootstrap import read_outputs
from kerasflow.promotion.compare import Comparison, compare_models
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tracking import Tracker


@task(name="compare-with-champion", retries=0, cache_policy=NO_CACHE)
def compare_with_champion(tracker: Tracker, config: PipelineConfig, challenger_reports: str,
                          champion_reports: str | None) -> Comparison | None:
    """Computes the paired bootstrap interval of the challenger's improvement over the champion.

    Both folders hold the evaluation reports of the same test rows (the
    challenger's split), whose per-row predictions are resampled together.
    Logs `compare.improvement`, `compare.ci_low`, `compare.ci_high` and
    `compare.passed`, `gate/comparison.json`, and the verdict (e.g.
    `accuracy +0.004 (95% CI -0.003…+0.011): not significant, champion
    kept`) to the flow run's log.

    Args:
        challenger_reports: The challenger's evaluation folder.
        champion_reports: The champion's, or None without a champion.

    Returns:
        The `Comparison`, or None when `promotion.compare` is not set or
        there is no champion.
    """
    compare = config.promotion.compare
    if compare is None or champion_reports is None:
        return None
    champion = read_outputs(champion_reports) if Path(champion_reports).is_dir() else {}
    comparison = compare_models(read_outputs(challenger_reports), champion, compare, config.training.seed)
    if comparison.interval is not None:
        interval = comparison.interval
        tracker.metrics({"improvement": interval.estimate, "ci_low": interval.low, "ci_high": interval.high},
                        prefix="compare.")
    tracker.counts({"passed": float(comparison.passed)}, prefix="compare.")
    tracker.json({**asdict(comparison), "verdict": comparison.verdict()}, "gate/comparison.json")
    get_run_logger().info("champion/challenger comparison: %s", comparison.verdict())
    return comparison
