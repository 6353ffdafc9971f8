"""MLflow registry operations: champion lookup, alias moves, model references.

The plain rules live in `tasks.promote` (which alias goes where) and
`tasks.drift` (reference statistics); this module applies them to an
MLflow store through an explicit `MlflowClient`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from kerasflow import tracking
from tasks.predict import ModelReferenceError
from tasks.promote import CHAMPION, AliasPlan, plan_promotion, plan_rollback

REFERENCE_STATS = "reference/stats.json"
REFERENCE_SUITE = "reference/suite.json"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


@dataclass
class ModelRef:
    """A resolved model reference.

    Args:
        uri: The URI as given.
        name: Registered model name (None for non-registry URIs).
        version: Registered version (None for non-registry URIs).
        run_id: The run that logged the model, if known.
        aliases: Aliases of the registered model, `{alias: version}`.
    """

    uri: str
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    aliases: dict[str, str] | None = None

    @property
    def version_uri(self) -> str:
        """A URI pinned to the version (stable even if an alias moves)."""
        return f"models:/{self.name}/{self.version}" if self.name and self.version else self.uri


def resolve_model(client: Any, uri: str) -> ModelRef:
    """Resolves `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `models:/NAME/latest` or `runs:/ID/PATH`.

    Args:
        client: An `MlflowClient`.
        uri: The model URI.

    Returns:
        The `ModelRef`.

    Raises:
        ModelReferenceError: The name, alias or version does not exist,
            with what does exist.
    """
    match = _MODELS_URI.match(uri)
    if match is None:
        run = re.match(r"^runs:/([0-9a-f]{32})/", uri)
        if uri.startswith("models:/") and run is None and "/" not in uri.removeprefix("models:/"):
            return ModelRef(uri=uri)  # a logged-model id
        return ModelRef(uri=uri, run_id=run.group(1) if run else None)
    name, alias, version = match["name"], match["alias"], match["version"]
    aliases = registered_aliases(client, name)
    if aliases is None:
        known = sorted(m.name for m in client.search_registered_models(max_results=50))
        raise ModelReferenceError(f"no registered model named {name!r} in {client.tracking_uri}; "
                                  f"registered models: {known or 'none'}")
    if alias is not None:
        if alias not in aliases:
            raise ModelReferenceError(f"model {name!r} has no alias {alias!r}; its aliases: "
                                      f"{', '.join(f'{a}=v{v}' for a, v in sorted(aliases.items())) or 'none'}")
        version = aliases[alias]
    elif version.lower() == "latest":
        version = str(max(int(v.version) for v in client.search_model_versions(f"name='{name}'")))
    found = _model_version(client, name, version)
    if found is None:
        raise ModelReferenceError(f"model {name!r} has no version {version!r}")
    return ModelRef(uri=uri, name=name, version=str(found.version), run_id=found.run_id, aliases=aliases)


def registered_aliases(client: Any, name: str) -> dict[str, str] | None:
    """Returns `{alias: version}` of a registered model, or None if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return None
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def champion_version(client: Any, name: str) -> Any | None:
    """Returns the `ModelVersion` behind the `champion` alias, or None."""
    version = (registered_aliases(client, name) or {}).get(CHAMPION)
    return _model_version(client, name, version) if version else None


def apply_plan(client: Any, name: str, plan: AliasPlan) -> None:
    """Points and removes aliases of a registered model as planned."""
    for alias, version in plan.set.items():
        client.set_registered_model_alias(name, alias, version)
    for alias in plan.delete:
        client.delete_registered_model_alias(name, alias)


def promote(client: Any, name: str, version: str) -> AliasPlan:
    """Makes a version the champion; the replaced one becomes `previous-champion`.

    Returns:
        The alias moves made.

    Raises:
        ModelReferenceError: The model or version does not exist.
    """
    aliases = registered_aliases(client, name)
    if aliases is None or _model_version(client, name, version) is None:
        raise ModelReferenceError(f"no version {version!r} of a registered model named {name!r}")
    plan = plan_promotion(aliases, version)
    apply_plan(client, name, plan)
    return plan


def rollback(client: Any, name: str) -> AliasPlan:
    """Moves `champion` back to `previous-champion` and tags the demoted version.

    Returns:
        The alias moves made.

    Raises:
        ModelReferenceError: No registered model of that name.
        PromotionError: No champion or no previous champion.
    """
    aliases = registered_aliases(client, name)
    if aliases is None:
        raise ModelReferenceError(f"no registered model named {name!r} in {client.tracking_uri}")
    plan = plan_rollback(aliases)
    apply_plan(client, name, plan)
    demoted = aliases[CHAMPION]
    client.set_model_version_tag(name, demoted, "kerasflow.decision", "rolled-back")
    client.set_model_version_tag(name, demoted, "kerasflow.rolled_back_to", plan.set[CHAMPION])
    return plan


def log_reference(client: Any, run_id: str, config: Any, raw_path: str, split_path: str, features_path: str) -> None:
    """Logs the training rows' drift statistics and the expectation suite with a run.

    Both travel with every model version of the run: `retrain` checks new
    data for drift against `reference/stats.json`, and batch prediction
    validates its input with `reference/suite.json`.

    Args:
        client: An `MlflowClient`.
        run_id: The run that logs the model.
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON (its training rows are the reference).
        features_path: The fitted feature spec JSON.
    """
    import pandas as pd

    from tasks.drift import reference_stats
    from tasks.preprocess import FeatureSpec
    from tasks.split import Split

    features = FeatureSpec.load(features_path)
    train = pd.read_parquet(raw_path).iloc[Split.load(split_path).train]
    stats = reference_stats(train, features.numeric, features.categorical, bins=config.registry.drift.bins,
                            seed=config.split.seed)
    stats["target"] = config.data.target
    client.log_text(run_id, json.dumps(stats), REFERENCE_STATS)
    if config.validation.suite and Path(config.validation.suite).is_file():
        client.log_text(run_id, Path(config.validation.suite).read_text(), REFERENCE_SUITE)


def load_run_json(client: Any, run_id: str, artifact: str) -> Any | None:
    """Downloads and parses a JSON artifact of a run, or returns None if it has none."""
    from mlflow.exceptions import MlflowException

    folder = tempfile.mkdtemp(prefix="kerasflow-ref-")
    try:
        path = client.download_artifacts(run_id, artifact, folder)
        return json.loads(Path(path).read_text())
    except (MlflowException, OSError, ValueError):
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_params(client: Any, run_id: str) -> dict[str, str]:
    """Returns the params of a run."""
    return dict(client.get_run(run_id).data.params)


@contextlib.contextmanager
def model_run(client: Any, model: ModelRef, kind: str, flow_run_id: str | None = None,
              experiment: str | None = None) -> Iterator[Any]:
    """Opens a run about a model (e.g. a batch prediction), closed FINISHED or FAILED.

    The run goes to the experiment of the run that logged the model (or
    `experiment`), tagged with the model's URI and version. On an exception
    the error report is attached and the run marked FAILED.

    Args:
        client: An `MlflowClient`.
        model: The resolved model.
        kind: The run kind tag, e.g. `predict`.
        flow_run_id: The Prefect flow-run id, stored as a tag.
        experiment: Experiment name when the model has no source run.

    Yields:
        The MLflow `Run`.
    """
    experiment_id = (client.get_run(model.run_id).info.experiment_id if model.run_id
                     else tracking.ensure_experiment(client, experiment or "kerasflow-predictions"))
    tags = {tracking.RUN_KIND_TAG: kind, "kerasflow.model_uri": model.uri}
    if model.name:
        tags.update({"kerasflow.model_name": model.name, "kerasflow.model_version": str(model.version)})
    if flow_run_id:
        tags["prefect.flow_run_id"] = str(flow_run_id)
    run = client.create_run(experiment_id, run_name=f"{kind}-{model.name or 'model'}", tags=tags)
    try:
        yield run
    except BaseException as exc:
        tracking.fail_run(client, run.info.run_id, exc)
        raise
    else:
        client.set_terminated(run.info.run_id, "FINISHED")


def _model_version(client: Any, name: str, version: str | None) -> Any | None:
    from mlflow.exceptions import MlflowException

    if version is None:
        return None
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        return None
