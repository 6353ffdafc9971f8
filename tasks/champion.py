"""The current champion: finding it, reusing its hyperparameters and scoring it on the new test rows."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.data.prepared import Prepared
from kerasflow.features.tabular import FeatureError
from kerasflow.heavy import import_tensorflow
from kerasflow.promotion.lineage import CODE_TAG, differences, lineage_of, skip_reason, unchanged
from kerasflow.schemas.config import ConfigError, PipelineConfig
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.artifacts import REFERENCE_STATS, download_model, load_run_json, run_params
from kerasflow.tracking.notes import OUTCOME_TAG
from kerasflow.tracking.registry import champion_version
from kerasflow.training.final import score_champion as score

HYPERPARAMETER_PREFIX = "tune.best."


@dataclass
class Champion:
    """The registered model a challenger must beat.

    Args:
        name: Registered model name.
        version: Its version.
        run_id: The run that trained it.
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


@task(name="find-champion", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def find_champion(tracker: Tracker, config: PipelineConfig, workdir: str) -> Champion | None:
    """Looks up the `champion` of the configured model, its tuned values and reference statistics.

    Returns:
        The `Champion`, or None when the model has no champion yet.
    """

    client = tracker.client
    version = champion_version(client, config.model_name)
    if version is None:
        tracker.tags({"kerasflow.champion_version": "none"})
        return None
    params = run_params(client, version.run_id)
    hyper = {k.removeprefix(HYPERPARAMETER_PREFIX): _param_value(v) for k, v in params.items()
             if k.startswith(HYPERPARAMETER_PREFIX)}
    stats = load_run_json(client, version.run_id, REFERENCE_STATS)
    reference = None
    if stats is not None:
        reference = str(Path(workdir) / "champion_reference.json")
        Path(reference).write_text(json.dumps(stats))
    tracker.tags({"kerasflow.champion_version": str(version.version), "kerasflow.champion_run_id": version.run_id})
    return Champion(name=config.model_name, version=str(version.version), run_id=version.run_id,
                    hyperparameters=hyper, reference=reference)


@task(name="check-new-data", retries=2, retry_delay_seconds=2, retry_condition_fn=transient,
      cache_policy=NO_CACHE)
def check_new_data(tracker: Tracker, champion: Champion | None, force: bool = False) -> str | None:
    """Decides whether a retraining would only train the champion again.

    Compares this run's data fingerprint (tagged by `load-data`), config
    hash and code version (git commit, else the installed kerasflow
    version, tagged here as `kerasflow.code_version`) with the champion's
    training run. Tags `kerasflow.new_data`: `forced`, `no-champion`,
    `changed` or `unchanged`.

    Args:
        champion: The current champion, or None.
        force: Retrain even when nothing changed.

    Returns:
        The reason to skip (outcome `skipped (no new data)`), or None to
        go on.
    """
    client = tracker.client
    mine = lineage_of(client.get_run(tracker.run_id).data.tags, _installed_version())
    tracker.tags({CODE_TAG: mine.code or "unknown"})
    if champion is None or force:
        tracker.tags({"kerasflow.new_data": "forced" if force else "no-champion"})
        return None
    theirs = lineage_of(client.get_run(champion.run_id).data.tags)
    if not unchanged(mine, theirs):
        tracker.tags({"kerasflow.new_data": "changed",
                      "kerasflow.changed_since_champion": "; ".join(differences(mine, theirs))})
        return None
    reason = skip_reason(mine, champion.version, champion.run_id)
    tracker.tags({"kerasflow.new_data": "unchanged", "kerasflow.decision": "skipped", "kerasflow.reasons": reason,
                  OUTCOME_TAG: "skipped"})
    return reason


def _installed_version() -> str | None:
    try:
        return package_version("kerasflow")
    except PackageNotFoundError:
        return None


@task(name="choose-hyperparameters", retries=0, cache_policy=NO_CACHE)
def choose_hyperparameters(tracker: Tracker, config: PipelineConfig, champion: Champion | None,
                           tuned: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Picks the challenger's hyperparameters: a fresh search's if one ran, else the champion's.

    The values are logged as `tune.best.*` params (a search logs its own),
    so the next retraining of this challenger inherits them.

    Args:
        champion: The current champion, or None.
        tuned: Output of `kerasflow.tasks.tune.search_hyperparameters` after
            drift, or None.

    Returns:
        `{dotted_name: value}`, or None to train with the config's values.
    """
    client = tracker.client
    if tuned is not None:
        values, source = dict(tuned["hyperparameters"]), "retuned after drift"
    else:
        values = dict(champion.hyperparameters) if champion else {}
        source = f"champion v{champion.version}" if champion and values else "config"
    tracker.tags({"kerasflow.hyperparameters_from": source})
    existing = set(client.get_run(tracker.run_id).data.params)
    new = {k: v for k, v in values.items() if f"{HYPERPARAMETER_PREFIX}{k}" not in existing}
    tracker.params(new, prefix=HYPERPARAMETER_PREFIX)
    return values or None


@task(name="score-champion", retries=0, cache_policy=NO_CACHE)
def score_champion(tracker: Tracker, config: PipelineConfig, prepared: Prepared,
                   champion: Champion | None, keep: str | None = None) -> dict[str, float] | None:
    """Scores the champion on the challenger's test rows, logged as `champion.test.*`.

    Args:
        keep: Folder to keep its evaluation reports in (its per-row
            predictions, for `promotion.compare`). Default none.

    Returns:
        The champion's metrics, None without a champion, or `{}` when the
        fresh rows do not fit it (e.g. a class it never saw); the reason
        is tagged and change rules then fail.
    """

    if champion is None:
        return None
    import_tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_model(champion.uri, tmp, config.registry.tracking_uri)
        try:
            metrics = score(config, folder, prepared.raw, prepared.split, keep)
        except FeatureError as exc:
            tracker.tags({"kerasflow.champion_not_scored": str(exc)[:4000]})
            return {}
    tracker.metrics(metrics, prefix="champion.test.")
    return metrics


def _param_value(text: str) -> Any:
    """Parses a logged param back to its value (`0.2` -> 0.2, `true` -> True, `relu` stays text)."""
    try:
        return json.loads(text)
    except ValueError:
        return text
