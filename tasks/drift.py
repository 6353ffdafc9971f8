"""Drift of the new data against the champion's training rows."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.drift import DriftError, measure_drift
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.champion import Champion
from kerasflow.tracking import Tracker


@task(name="check-drift", retries=0, cache_policy=NO_CACHE)
def check_drift(tracker: Tracker, config: PipelineConfig, raw_path: str, champion: Champion | None) -> dict[str, Any]:
    """Measures feature drift of the new data against the champion's training rows.

    Attaches `drift/report.json`, `drift/report.txt` and the per-feature
    statistics as a table (`drift/features.json`, shown as a table in
    MLflow's artifact view), and logs the metrics `drift/drifted_share` and
    `drift/<method>_max` and the counts `drift.detected`, `drift.features_drifted`, `drift.features` (params). Skipped (and said so) without a champion or without
    its reference statistics.

    Returns:
        `{"checked", "detected", "action", "summary"}`; `action` is
        `none`, `retune` or `ignore`; `summary` names only the drifted
        features (`DriftReport.brief`), `drift/report.txt` every one.

    Raises:
        DriftError: Drift was detected and `registry.drift.on_drift` is `fail`.
    """
    cfg = config.registry.drift
    if champion is None or champion.reference is None:
        why = "no champion yet" if champion is None else f"champion v{champion.version} has no reference statistics"
        tracker.text(f"drift check skipped: {why}\n", "drift/report.txt")
        tracker.tags({"kerasflow.drift": "skipped"})
        return {"checked": False, "detected": False, "action": "none", "summary": f"skipped: {why}"}
    reference = json.loads(Path(champion.reference).read_text())
    report = measure_drift(pd.read_parquet(raw_path), reference, method=cfg.method, threshold=cfg.threshold,
                           max_drifted_share=cfg.max_drifted_share)
    tracker.json(report.to_dict(), "drift/report.json")
    tracker.text(report.summary() + "\n", "drift/report.txt")
    statistics = [f.statistic for f in report.features if f.statistic is not None]
    tracker.metrics({"drifted_share": report.drifted_share,
                     f"{cfg.method}_max": max(statistics) if statistics else None}, prefix="drift.")
    tracker.counts({"detected": float(report.detected), "features_drifted": len(report.drifted),
                    "features": len(report.features)}, prefix="drift.")
    tracker.table(pd.DataFrame([asdict(f) for f in report.features]), "drift/features.json")
    tracker.tags({"kerasflow.drift": "detected" if report.detected else "none"})
    if report.detected and cfg.on_drift == "fail":
        raise DriftError(report)
    action = cfg.on_drift if report.detected else "none"
    return {"checked": True, "detected": report.detected, "action": action, "summary": report.brief()}

