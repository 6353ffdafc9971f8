"""MLflow registry operations: champion lookup, alias moves, model references.

The plain rules live in `kerasflow.promotion.plan` (which alias goes where),
`kerasflow.promotion.inputs` (which models may share a registered name) and
`kerasflow.data.drift` (reference statistics); this module applies them to an
MLflow store through an explicit `MlflowClient`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

from kerasflow import tracking
from kerasflow.data.predictions import ModelReferenceError
from kerasflow.errors import BadInputError
from kerasflow.models.errors import BaseModelError
from kerasflow.promotion.inputs import check_same_inputs, choose_reference
from kerasflow.promotion.plan import CHAMPION, AliasPlan, plan_promotion, plan_rollback

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
    """Resolves a model URI to its registered name, version and source run.

    Accepts `models:/NAME@ALIAS`, `models:/NAME/VERSION`, `models:/NAME/latest`,
    `models:/MODEL_ID` (a logged model) and `runs:/RUN_ID/PATH`; other URIs
    pass through unresolved.

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
            return ModelRef(uri=uri, run_id=_logged_model_run(client, uri.removeprefix("models:/")))
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
    """Points and removes aliases of a registered model as planned (callers hold `alias_lock`)."""
    for alias, version in plan.set.items():
        client.set_registered_model_alias(name, alias, version)
    for alias in plan.delete:
        client.delete_registered_model_alias(name, alias)


ALIAS_LOCK_TIMEOUT = 120.0


class AliasLockTimeout(TimeoutError):
    """Another process held a model's alias lock for longer than the timeout."""


def alias_lock_path(client: Any, name: str) -> Path:
    """Returns the lock file that serializes alias moves of one registered model.

    For a SQLite or file store the lock sits beside the store
    (`.kerasflow-locks/` next to `mlflow.db`, or inside the `mlruns`
    folder), so every process that writes that store takes the same lock.
    For a remote registry (an MLflow server, a database URI) the lock is in
    the local temporary folder: it serializes the processes of this machine
    only; MLflow has no conditional alias update, so processes on other
    machines are left to the re-read under the lock (see `move_aliases`)
    and to one retraining at a time (`concurrency_limit: 1` of the
    deployment).
    """
    uri = str(getattr(client, "_registry_uri", None) or client.tracking_uri)
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///") and ":memory:" not in uri:
        folder = Path(unquote(uri.removeprefix("sqlite:///")).split("?")[0]).parent
    elif parsed.scheme in ("", "file"):
        folder = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
    else:
        digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
        folder = Path(tempfile.gettempdir()) / f"kerasflow-locks-{digest}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:80]
    return folder / ".kerasflow-locks" / f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}.lock"


@contextlib.contextmanager
def alias_lock(client: Any, name: str, timeout: float = ALIAS_LOCK_TIMEOUT) -> Iterator[Path]:
    """Holds the exclusive lock on a registered model's aliases (`fcntl.flock` on `alias_lock_path`).

    Args:
        client: An `MlflowClient`.
        name: Registered model name.
        timeout: Seconds to wait for another holder.

    Yields:
        The lock file's path.

    Raises:
        AliasLockTimeout: The lock stayed held for `timeout` seconds.
    """
    path = alias_lock_path(client, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AliasLockTimeout(f"the aliases of {name!r} stayed locked for {timeout:.0f} s "
                                           f"({path}); is another promotion stuck?") from None
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def move_aliases(client: Any, name: str, plan_for: Any) -> tuple[dict[str, str], AliasPlan | None]:
    """Plans and applies an alias move atomically: re-read, decide, set, all under `alias_lock`.

    Args:
        client: An `MlflowClient`.
        name: Registered model name.
        plan_for: `aliases -> AliasPlan | None`, called with the aliases
            read under the lock (None: move nothing).

    Returns:
        `(aliases read under the lock, the plan applied or None)`.

    Raises:
        ModelReferenceError: No registered model of that name.
    """
    with alias_lock(client, name):
        aliases = registered_aliases(client, name)
        if aliases is None:
            raise ModelReferenceError(f"no registered model named {name!r} in {client.tracking_uri}")
        plan = plan_for(aliases)
        if plan is not None:
            apply_plan(client, name, plan)
        return aliases, plan


def promote_if_champion(client: Any, name: str, version: str, expected: str | None) -> tuple[AliasPlan | None, str | None]:
    """Compare-and-set: makes `version` the champion only if `champion` still points at `expected`.

    The check and the move happen under `alias_lock`, so two promotions
    cannot both read the same champion and both move it (the second would
    lose the first's `previous-champion`).

    Args:
        client: An `MlflowClient`.
        name: Registered model name.
        version: The new champion.
        expected: The champion the gate compared with (None: there was none).

    Returns:
        `(plan applied or None, the champion found under the lock)`.
    """
    def plan_for(aliases: dict[str, str]) -> AliasPlan | None:
        current = aliases.get(CHAMPION)
        return plan_promotion(aliases, version) if str(current) == str(expected) else None

    aliases, plan = move_aliases(client, name, plan_for)
    return plan, aliases.get(CHAMPION)


def promote(client: Any, name: str, version: str) -> AliasPlan:
    """Makes a version the champion; the replaced one becomes `previous-champion`.

    The aliases are read and moved under `alias_lock`, so the recorded
    `previous-champion` is the champion this move replaced.

    Returns:
        The alias moves made.

    Raises:
        ModelReferenceError: The model or version does not exist.
    """
    if registered_aliases(client, name) is None or _model_version(client, name, version) is None:
        raise ModelReferenceError(f"no version {version!r} of a registered model named {name!r}")
    return move_aliases(client, name, lambda aliases: plan_promotion(aliases, version))[1]


def rollback(client: Any, name: str) -> AliasPlan:
    """Moves `champion` back to `previous-champion` and tags the demoted version.

    Returns:
        The alias moves made.

    Raises:
        ModelReferenceError: No registered model of that name.
        PromotionError: No champion or no previous champion.
    """
    aliases, plan = move_aliases(client, name, plan_rollback)
    demoted = aliases[CHAMPION]
    client.set_model_version_tag(name, demoted, "kerasflow.decision", "rolled-back")
    client.set_model_version_tag(name, demoted, "kerasflow.rolled_back_to", plan.set[CHAMPION])
    return plan


def log_reference(client: Any, run_id: str, config: Any, raw_path: str, split_path: str, features_path: str) -> None:
    """Logs the training rows' drift statistics and the expectation suite with a run.

    Both travel with every model version of the run: `retrain` checks new
    data for drift against `reference/stats.json`, and batch prediction
    validates its input with `reference/suite.json`. Statistics that cannot
    be computed are tagged (`kerasflow.reference_error`), not raised: the
    drift check then reports the champion as having none.

    Args:
        client: An `MlflowClient`.
        run_id: The run that logs the model.
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON (its training rows are the reference).
        features_path: The fitted feature spec JSON.
    """
    import pandas as pd

    from kerasflow.data.drift import reference_stats  # deferred: scikit-learn, off the registry commands' path
    from kerasflow.data.split import Split
    from kerasflow.features.tabular import FeatureSpec

    if config.validation.suite and Path(config.validation.suite).is_file():
        client.log_text(run_id, Path(config.validation.suite).read_text(), REFERENCE_SUITE)
    try:
        features = FeatureSpec.load(features_path)
        train = pd.read_parquet(raw_path).iloc[Split.load(split_path).train]
        numeric, categorical = (features.numeric, features.categorical) if isinstance(features, FeatureSpec) \
            else features.drift_columns()  # an image spec (kerasflow/features/images.py): pixels or file sizes
        text = getattr(features, "text_columns", [])  # free text: drift of word counts
        stats = reference_stats(train, numeric, categorical, text, bins=config.registry.drift.bins,
                                seed=config.split.seed)
    except (ValueError, TypeError, KeyError) as exc:  # never block a registration on drift statistics
        client.set_tag(run_id, "kerasflow.reference_error", f"{type(exc).__name__}: {exc}"[:4000])
        return
    stats["target"] = config.data.target
    client.log_text(run_id, json.dumps(stats), REFERENCE_STATS)


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
def model_run(model: ModelRef, kind: str, flow_run_id: str | None = None,
              configured_uri: str | None = None) -> Iterator[tracking.PipelineRun]:
    """Opens a run about a model (e.g. a batch prediction), closed FINISHED or FAILED.

    The run goes to its own experiment, `<training experiment>-predictions`
    (the experiment of the run that logged the model; else
    `kerasflow-predictions`), so predictions never crowd the training runs.
    It is tagged with the model's URI and version. On an exception the
    error report is attached and the run marked FAILED.

    Args:
        model: The resolved model.
        kind: The run kind tag, e.g. `predict`.
        flow_run_id: The Prefect flow-run id, stored as a tag.
        configured_uri: Tracking URI override. Default: as `tracking.tracking_uri`.

    Yields:
        A `tracking.PipelineRun` with a private scratch folder.
    """
    client = tracking.configure(configured_uri)
    trained_in = client.get_experiment(client.get_run(model.run_id).info.experiment_id).name if model.run_id \
        else "kerasflow"
    experiment_id = tracking.ensure_experiment(client, f"{trained_in}-predictions")
    tags = {tracking.RUN_KIND_TAG: kind, "kerasflow.model_uri": model.uri, **tracking.process_identity()}
    if model.run_id:
        tags["kerasflow.training_run"] = model.run_id
    if model.name:
        tags.update({"kerasflow.model_name": model.name, "kerasflow.model_version": str(model.version)})
    if flow_run_id:
        tags[tracking.FLOW_RUN_TAG] = str(flow_run_id)
    label = f"{model.name}-v{model.version}" if model.name else "model"
    suffix = (str(flow_run_id) if flow_run_id else uuid.uuid4().hex)[:8]
    run_id = client.create_run(experiment_id, run_name=f"{kind}-{label}-{suffix}", tags=tags).info.run_id
    workdir = tempfile.mkdtemp(prefix=f"kerasflow-{run_id[:8]}-")
    uri = tracking.tracking_uri(configured_uri)
    with tracking.closing_run(client, run_id, uri, flow_run_id):
        try:
            yield tracking.PipelineRun(id=run_id, experiment_id=experiment_id, workdir=workdir, uri=uri)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _logged_model_run(client: Any, model_id: str) -> str | None:
    """Returns the run that logged a model (`models:/<model_id>`).

    Raises:
        ModelReferenceError: No logged model has that id.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_logged_model(model_id).source_run_id
    except MlflowException:
        raise ModelReferenceError(f"no registered model alias or version, and no logged model, "
                                  f"is called models:/{model_id}") from None


def _model_version(client: Any, name: str, version: str | None) -> Any | None:
    from mlflow.exceptions import MlflowException

    if version is None:
        return None
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        return None


def check_base_reference(client: Any, base: Any) -> str:
    """Checks that a configured base model exists, without loading it.

    Args:
        client: An `MlflowClient`.
        base: The `BaseModelConfig`.

    Returns:
        The reference, with a registered alias resolved to its version.

    Raises:
        BaseModelError: The file, weights file or registered version is missing.
    """
    if base.origin == "registry":
        return _registered_version(client, base.source)[1]
    path = Path(base.weights if base.origin == "application" else base.source).expanduser()
    if not path.is_file():
        key = "model.base.weights" if base.origin == "application" else "model.base.source"
        raise BaseModelError(f"{key}: {path.resolve()} does not exist"
                             + ("; weights are never downloaded, give a local file" if base.weights else ""))
    return base.source


def resolve_registered_base(client: Any, reference: str, destination: Path) -> tuple[Path, str]:
    """Downloads a registered kerasflow model and finds its Keras file.

    Args:
        client: An `MlflowClient`.
        reference: `models:/name@alias` or `models:/name/version`.
        destination: Folder to download into.

    Returns:
        `(keras_file, resolved)`: the local `.keras` file and the reference
        with the alias resolved, e.g. `models:/digits-cnn/3`.

    Raises:
        BaseModelError: The model, version or alias does not exist, or its
            artifacts hold no `.keras` file.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    version, resolved = _registered_version(client, reference)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=resolved, dst_path=str(destination))
    except MlflowException as exc:
        raise BaseModelError(f"model.base.source {reference}: cannot download {resolved}: {exc.message}") from None
    found = sorted(Path(local).rglob("*.keras"))
    if not found:
        raise BaseModelError(f"model.base.source {reference}: {resolved} holds no .keras file "
                             "(not a kerasflow Keras model)")
    return found[0], resolved


def _registered_version(client: Any, reference: str) -> tuple[Any, str]:
    from mlflow.exceptions import MlflowException

    rest = reference.removeprefix("models:/")
    try:
        if "@" in rest:
            name, _, alias = rest.partition("@")
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = rest.rpartition("/")
            version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise BaseModelError(f"model.base.source {reference}: no such registered model version "
                             f"({exc.message})") from None
    return version, f"models:/{version.name}/{version.version}"


def download_model(uri: str, destination: str, configured_uri: str | None = None) -> str:
    """Downloads a logged model's files (e.g. `models:/name/3`) into a folder and returns its path."""
    import mlflow.artifacts

    return mlflow.artifacts.download_artifacts(uri, dst_path=destination, tracking_uri=tracking.tracking_uri(configured_uri))


def input_types(model_uri: str) -> dict[str, str]:
    """Returns `{column: type}` of a logged model's input signature, e.g. `{"age": "double"}` ({} without one)."""
    import mlflow.models

    return signature_types(mlflow.models.get_model_info(model_uri).signature)


def signature_types(signature: Any) -> dict[str, str]:
    """Returns `{column: type}` of a `ModelSignature`'s named inputs ({} for None or unnamed inputs).

    Types are MLflow's names: `double`, `long`, `string`, ... (`Array(string)`
    for other kinds). Whether a column is required is left out.
    """
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return {}
    return {spec.name: _type_name(spec.type) for spec in signature.inputs.inputs}


def check_registrable(client: Any, name: str, signature: Any) -> None:
    """Refuses to register a model under a name whose versions take other input columns.

    The model is compared with the `@champion`'s version, else the
    `@candidate`'s, else the newest version; a new name, or a version
    without a signature, is not compared. Nothing in the registry changes.

    Args:
        client: An `MlflowClient`.
        name: The registered model name.
        signature: The new model's `ModelSignature`.

    Raises:
        IncompatibleInputsError: Its input columns or their types differ,
            listing the differences and the version compared with.
    """
    aliases = registered_aliases(client, name)
    if aliases is None:
        return
    versions = [str(v.version) for v in client.search_model_versions(f"name='{name}'")]
    reference = choose_reference(aliases, versions)
    if reference is None:
        return
    version, why = reference
    registered = input_types(f"models:/{name}/{version}")
    if registered:
        check_same_inputs(name, version, why, registered, signature_types(signature))


def predict_with(model_uri: str, frame: Any) -> Any:
    """Loads a logged pyfunc model and predicts a frame of raw rows.

    Raises:
        BadInputError: The model refused the rows (e.g. an `InputRowsError`
            naming columns and rows), re-raised as the model raised it.
        FeatureError: The rows do not fit the model's input schema.
    """
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from kerasflow.features.tabular import FeatureError

    try:
        return mlflow.pyfunc.load_model(model_uri).predict(frame)
    except MlflowException as exc:
        if isinstance(exc.__cause__, BadInputError):  # a kerasflow model's refusal (serving_entry.RefusedInput)
            raise exc.__cause__ from None
        raise FeatureError(f"the input does not fit the model's schema: {exc.message}") from None


def _type_name(kind: Any) -> str:
    from mlflow.types import DataType

    return kind.name if isinstance(kind, DataType) else str(kind)
