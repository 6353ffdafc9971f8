"""Prefect task boundaries of the retraining flow.

Thin, like `kerasflow.tasks.steps`: each reads its inputs from paths, calls the plain
functions of `kerasflow.data.drift` and `kerasflow.promotion.plan`, applies registry changes
through `kerasflow.tracking.registry`, and logs into the parent MLflow run whose id
is passed explicitly.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.quiet import import_tensorflow
from kerasflow.schemas.config import ConfigError, PipelineConfig
from kerasflow.promotion.plan import Decision
from kerasflow.tasks.steps import Prepared

HYPERPARAMETER_PREFIX = "tune.best."


@dataclass
class Champion:
    """The registered model a challenger must beat.

    Args:
        name: Registered model name.
        version: Its version.
        run_id: The run that logged it.
        hyperparameters: Its tuned values (`tune.best.*` params), by dotted name.
        reference: Path of its training-row statistics JSON, if it has them.
    """

    name: str
    version: str
    run_id: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None

    @property
    def uri(self) -> str:
        """The version-pinned model URI."""
        return f"models:/{self.name}/{self.version}"


@task(name="check-retrain-config", retries=0, cache_policy=NO_CACHE)
def check_retrain_config(config_path: str, config: PipelineConfig) -> None:
    """Rejects configs that cannot retrain, before any work.

    Raises:
        ConfigError: Registration is off, or `on_drift: retune` without a
            `tuning` section.
    """
    problems = []
    if not config.registry.enabled:
        problems.append("registry.enabled: retraining registers and promotes models; it must be true")
    if config.registry.drift.on_drift == "retune" and getattr(config, "tuning", None) is None:
        problems.append("registry.drift.on_drift: `retune` runs a fresh hyperparameter search, which needs a "
                        "`tuning` section (search space and budget); add one or choose `fail` or `ignore`")
    if problems:
        raise ConfigError(config_path, problems)


@task(name="find-champion", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def find_champion(run_id: str, config: PipelineConfig, workdir: str) -> Champion | None:
    """Looks up the `champion` of the configured model, its tuned values and reference statistics.

    Returns:
        The `Champion`, or None when the model has no champion yet.
    """
    from kerasflow.tracking.registry import REFERENCE_STATS, champion_version, load_run_json, run_params

    client = tracking.configure(config.registry.tracking_uri)
    version = champion_version(client, config.model_name)
    if version is None:
        client.set_tag(run_id, "kerasflow.champion_version", "none")
        return None
    params = run_params(client, version.run_id)
    hyper = {k.removeprefix(HYPERPARAMETER_PREFIX): _param_value(v) for k, v in params.items()
             if k.startswith(HYPERPARAMETER_PREFIX)}
    stats = load_run_json(client, version.run_id, REFERENCE_STATS)
    reference = None
    if stats is not None:
        reference = str(Path(workdir) / "champion_reference.json")
        Path(reference).write_text(json.dumps(stats))
    client.set_tag(run_id, "kerasflow.champion_version", str(version.version))
    client.set_tag(run_id, "kerasflow.champion_run_id", version.run_id)
    return Champion(name=config.model_name, version=str(version.version), run_id=version.run_id,
                    hyperparameters=hyper, reference=reference)


@task(name="check-drift", retries=0, cache_policy=NO_CACHE)
def check_drift(run_id: str, config: PipelineConfig, raw_path: str, champion: Champion | None) -> dict[str, Any]:
    """Measures feature drift of the new data against the champion's training rows.

    Attaches `drift/report.json` and `drift/report.txt` and logs
    `drift.*` metrics. Skipped (and said so) without a champion or without
    its reference statistics.

    Returns:
        `{"checked", "detected", "action", "summary"}`; `action` is
        `none`, `retune` or `ignore`.

    Raises:
        DriftError: Drift was detected and `registry.drift.on_drift` is `fail`.
    """
    import pandas as pd

    from kerasflow.data.drift import DriftError, measure_drift

    client = tracking.configure(config.registry.tracking_uri)
    cfg = config.registry.drift
    if champion is None or champion.reference is None:
        why = "no champion yet" if champion is None else f"champion v{champion.version} has no reference statistics"
        client.log_text(run_id, f"drift check skipped: {why}\n", "drift/report.txt")
        client.set_tag(run_id, "kerasflow.drift", "skipped")
        return {"checked": False, "detected": False, "action": "none", "summary": f"skipped: {why}"}
    reference = json.loads(Path(champion.reference).read_text())
    report = measure_drift(pd.read_parquet(raw_path), reference, method=cfg.method, threshold=cfg.threshold,
                           max_drifted_share=cfg.max_drifted_share)
    tracking.log_json(client, run_id, report.to_dict(), "drift/report.json")
    client.log_text(run_id, report.summary() + "\n", "drift/report.txt")
    tracking.log_metrics(client, run_id, {"detected": float(report.detected), "drifted_share": report.drifted_share,
                                          "features_drifted": len(report.drifted)}, prefix="drift.")
    tracking.log_metrics(client, run_id, {_metric_name(f.feature): f.statistic for f in report.features
                                          if f.statistic is not None}, prefix=f"drift.{cfg.method}.")
    client.set_tag(run_id, "kerasflow.drift", "detected" if report.detected else "none")
    if report.detected and cfg.on_drift == "fail":
        raise DriftError(report)
    action = cfg.on_drift if report.detected else "none"
    return {"checked": True, "detected": report.detected, "action": action, "summary": report.summary()}


@task(name="choose-hyperparameters", retries=0, cache_policy=NO_CACHE)
def choose_hyperparameters(run_id: str, config: PipelineConfig, champion: Champion | None,
                           tuned: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Picks the challenger's hyperparameters: a fresh search's if one ran, else the champion's.

    The values are logged as `tune.best.*` params (a search logs its own),
    so the next retraining of this challenger inherits them.

    Args:
        champion: The current champion, or None.
        tuned: Output of `kerasflow.tasks.tune_steps.search_hyperparameters` after
            drift, or None.

    Returns:
        `{dotted_name: value}`, or None to train with the config's values.
    """
    client = tracking.configure(config.registry.tracking_uri)
    if tuned is not None:
        values, source = dict(tuned["hyperparameters"]), "retuned after drift"
    else:
        values = dict(champion.hyperparameters) if champion else {}
        source = f"champion v{champion.version}" if champion and values else "config"
    client.set_tag(run_id, "kerasflow.hyperparameters_from", source)
    existing = set(client.get_run(run_id).data.params)
    new = {k: v for k, v in values.items() if f"{HYPERPARAMETER_PREFIX}{k}" not in existing}
    tracking.log_params(client, run_id, new, prefix=HYPERPARAMETER_PREFIX)
    return values or None


@task(name="score-champion", retries=0, cache_policy=NO_CACHE)
def score_champion(run_id: str, config: PipelineConfig, prepared: Prepared,
                   champion: Champion | None) -> dict[str, float] | None:
    """Scores the champion on the challenger's test rows, logged as `champion.test.*`.

    Returns:
        The champion's metrics, None without a champion, or `{}` when the
        fresh rows do not fit it (e.g. a class it never saw); the reason
        is tagged and change rules then fail.
    """
    import mlflow

    from kerasflow.features.tabular import FeatureError
    from kerasflow.promotion.plan import score_champion as score

    if champion is None:
        return None
    import_tensorflow()
    client = tracking.configure(config.registry.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(champion.uri, dst_path=tmp,
                                                     tracking_uri=tracking.tracking_uri(config.registry.tracking_uri))
        try:
            metrics = score(config, folder, prepared.raw, prepared.split)
        except FeatureError as exc:
            client.set_tag(run_id, "kerasflow.champion_not_scored", str(exc)[:4000])
            return {}
    tracking.log_metrics(client, run_id, metrics, prefix="champion.test.")
    return metrics


@task(name="gate-challenger", retries=0, cache_policy=NO_CACHE)
def gate_challenger(run_id: str, config: PipelineConfig, metrics: dict[str, float],
                    champion_metrics: dict[str, float] | None) -> Decision:
    """Applies the champion/challenger gate (see `kerasflow.promotion.plan.decide_promotion`).

    Logs `gate.rules`, `gate.violations` and `gate.blessed` (1 when the
    challenger may be promoted).

    Returns:
        The `Decision`.
    """
    from kerasflow.promotion.plan import decide_promotion, value_thresholds

    gate = config.registry.gate
    decision = decide_promotion(metrics, champion_metrics,
                                value_thresholds(gate.thresholds, config.registry.thresholds), gate.changes)
    client = tracking.configure(config.registry.tracking_uri)
    tracking.log_metrics(client, run_id, {"rules": len(decision.checks), "violations": len(decision.violations),
                                          "blessed": float(decision.promote)}, prefix="gate.")
    return decision


@task(name="promote-challenger", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def promote_challenger(run_id: str, config: PipelineConfig, decision: Decision, version: str,
                       champion: Champion | None, drift_summary: str | None) -> dict[str, Any]:
    """Moves `champion` to a blessed challenger and records the decision everywhere.

    Nothing moves unless the decision says so, and not if the champion
    changed while this run was training (another run or a rollback). The
    challenger's model-version tags, the run's tags and `gate/decision.json`
    and `.txt`, and a Prefect Markdown artifact record the outcome, every
    rule with its observed values, and the reasons.

    Returns:
        `{"outcome", "promoted", "champion", "previous_champion", "reasons"}`.
    """
    from kerasflow.tracking.registry import apply_plan, registered_aliases
    from kerasflow.promotion.plan import CHAMPION, PREVIOUS, decision_markdown, decision_tags, plan_promotion, recheck_champion

    name = config.model_name
    client = tracking.configure(config.registry.tracking_uri)
    aliases = registered_aliases(client, name) or {}
    expected = champion.version if champion else None
    result = recheck_champion(decision, expected, aliases.get(CHAMPION))
    if result.promote:
        apply_plan(client, name, plan_promotion(aliases, version))
    aliases = registered_aliases(client, name) or {}
    decided_at = time.time()
    tags = {**decision_tags(result, expected), "kerasflow.decided_at": f"{decided_at:.3f}",
            "kerasflow.run_id": run_id}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_tag(run_id, "kerasflow.decision", result.outcome)
    client.set_tag(run_id, "kerasflow.decided_at", f"{decided_at:.3f}")
    tracking.log_json(client, run_id, result.to_dict(), "gate/decision.json")
    client.log_text(run_id, result.summary() + "\n", "gate/decision.txt")
    _markdown_artifact(decision_markdown(result, name, version, expected, drift_summary), name)
    return {"outcome": result.outcome, "promoted": result.promote, "champion": aliases.get(CHAMPION),
            "previous_champion": aliases.get(PREVIOUS), "reasons": result.reasons}


def _markdown_artifact(markdown: str, model_name: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    key = "retrain-" + "".join(c if c.isalnum() else "-" for c in model_name.lower()).strip("-")
    create_markdown_artifact(markdown=markdown, key=key[:100], description=f"Champion decision for {model_name}")


def _metric_name(feature: str) -> str:
    """A feature name in the characters MLflow allows in metric names."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in str(feature))[:200]


def _param_value(text: str) -> Any:
    """Parses a logged param back to its value (`0.2` -> 0.2, `true` -> True, `relu` stays text)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
