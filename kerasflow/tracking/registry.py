"""MLflow model registry operations: model references, champion lookup, alias moves, base models.

The plain rules live in `kerasflow.promotion.plan` (which alias goes where)
and `kerasflow.promotion.inputs` (which models may share a registered name);
this module applies them to an MLflow store through an explicit
`MlflowClient`. What a registered version's run carries (its drift reference,
params, files, input schema) is read by `kerasflow.tracking.artifacts`; a
prediction run about a model is opened by `kerasflow.tracking.runs.model_run`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlparse

from kerasflow.data.predictions import ModelReferenceError
from kerasflow.models.errors import BaseModelError
from kerasflow.promotion.inputs import check_same_inputs, choose_reference
from kerasflow.promotion.plan import CHAMPION, AliasPlan, plan_promotion, plan_rollback
from kerasflow.schemas.images import BaseModelConfig
from kerasflow.tracking.artifacts import input_types, signature_types

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
    uri = str(client.tracking_uri)  # kerasflow points the registry at the tracking store (`configure`)
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


def check_base_reference(client: Any, base: BaseModelConfig) -> str:
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
