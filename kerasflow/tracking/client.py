"""The client kerasflow's tracking code uses: MLflow's, with time-based retries and masked credentials.

`configure` and `client_for` make it; `prepare_store` creates (or
migrates) a SQLite store under a lock beside the database, so any number of
processes can start on a new store at once.

`patiently` retries one tracking call while the store does not answer
(refused, reset, 5xx, timeout: `unreachable`), for the tracking budget
(`KERASFLOW_TRACKING_BUDGET_SECONDS`) counted from its first attempt, and
`GuardedClient` calls every `MlflowClient` method that way. MLflow's own
HTTP retries stay short (`kerasflow.budget.http_retry_settings`): they
absorb a dropped connection, and this loop measures the outage in seconds.
Once a call has spent the whole budget, the process takes the store for
down: later calls try once, so a run ends within seconds instead of one
budget per call, until a call succeeds again.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from kerasflow.budget import tracking_budget
from kerasflow.locks import file_lock
from kerasflow.quiet import silence
from kerasflow.secrets import mask
from kerasflow.tracking.store import TrackingUnavailable, artifact_location, sqlite_path, tracking_uri, unreachable

T = TypeVar("T")
FIRST_PAUSE, LONGEST_PAUSE = 1.0, 8.0  # seconds between attempts: doubling from 1 s, at most 8 s

_state = threading.local()
_prepared: set[str] = set()
_prepared_lock = threading.Lock()
_store_down = threading.Event()  # set once a call spent the whole budget; cleared by any success


def patiently(call: Callable[..., T], *args: Any, what: str = "", **kwargs: Any) -> T:
    """Calls `call(*args, **kwargs)`, again while the tracking store does not answer, for the tracking budget.

    Attempts start until `tracking_budget()` seconds have passed since the
    first one, with pauses of 1, 2, 4, then 8 s (never past the budget); an
    attempt itself waits at most MLflow's `MLFLOW_HTTP_REQUEST_TIMEOUT` for
    an answer. Other errors propagate at once. Nested calls (a retried call
    that calls another) retry only at the outermost level.

    Args:
        call: The MLflow call.
        *args: Its arguments.
        what: What the call does, for the error. Default: the call's name.
        **kwargs: Its keyword arguments.

    Returns:
        What `call` returns.

    Raises:
        TrackingUnavailable: The store did not answer within the budget
            (chained to MLflow's last error).
    """
    if getattr(_state, "active", False):
        return call(*args, **kwargs)
    _state.active = True
    try:
        return _retrying(call, args, kwargs, what or getattr(call, "__name__", "a tracking call"))
    finally:
        _state.active = False


def _retrying(call: Callable[..., T], args: tuple, kwargs: dict, what: str) -> T:
    budget = tracking_budget()
    start = time.monotonic()
    pause = FIRST_PAUSE
    while True:
        try:
            result = call(*args, **kwargs)
        except Exception as exc:
            if not unreachable(exc):
                raise
            left = start + budget - time.monotonic()
            if left <= 0 or _store_down.is_set():
                _store_down.set()
                raise TrackingUnavailable(
                    f"the tracking store did not answer {what} for {time.monotonic() - start:.0f} s "
                    f"(budget {budget} s): {mask(exc)}") from exc
            time.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_PAUSE)
            continue
        _store_down.clear()
        return result


_MASKED_ARGS = {  # method -> argument positions (0: the first) and keywords of values that are written to the store
    "set_tag": ((2,), ("value",)),
    "log_param": ((2,), ("value",)),
    "log_text": ((1,), ("text",)),
    "set_model_version_tag": ((3,), ("value",)),
    "set_registered_model_tag": ((2,), ("value",)),
    "set_experiment_tag": ((2,), ("value",)),
    "update_model_version": ((2,), ("description",)),
    "update_registered_model": ((1,), ("description",)),
}


class GuardedClient:
    """An `MlflowClient` whose calls retry for the tracking budget (`patiently`) and whose records are masked.

    Credentials in addresses are masked (`kerasflow.secrets.mask`) in every
    tag, param and text the client writes. A call with `synchronous=False`
    (MLflow's async logging) returns at once; its failure is the caller's.
    Attributes that are not methods pass through.

    Args:
        client: The `mlflow.MlflowClient`.
    """

    def __init__(self, client: Any):
        self.mlflow_client = client

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.mlflow_client, name)
        if name.startswith("_") or not callable(value):
            return value

        def guarded(*args: Any, **kwargs: Any) -> Any:
            args, kwargs = _masked(name, args, kwargs)
            if kwargs.get("synchronous") is False:
                return value(*args, **kwargs)
            return patiently(value, *args, what=f"to {name}", **kwargs)

        guarded.__name__ = name
        return guarded


def _masked(name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    if name in ("log_batch", "create_run"):
        kwargs = {**kwargs, **{key: _masked_entities(kwargs[key]) for key in ("params", "tags") if key in kwargs}}
        if name == "create_run" and len(args) > 2:
            args = (*args[:2], _masked_entities(args[2]), *args[3:])
        return args, kwargs
    positions, keywords = _MASKED_ARGS.get(name, ((), ()))
    args = tuple(mask(a) if i in positions and isinstance(a, str) else a for i, a in enumerate(args))
    kwargs = {k: mask(v) if k in keywords and isinstance(v, str) else v for k, v in kwargs.items()}
    return args, kwargs


def _masked_entities(items: Any) -> Any:
    """Params or tags (a dict, or MLflow `Param`/`RunTag` entities) with their values masked."""
    if items is None:
        return None
    if isinstance(items, dict):
        return {k: mask(v) if isinstance(v, str) else v for k, v in items.items()}
    return [type(item)(item.key, mask(item.value)) if isinstance(getattr(item, "value", None), str) else item
            for item in items]


def configure(configured: str | None = None) -> GuardedClient:
    """Points MLflow at the resolved store (created first if new, `prepare_store`) and returns a client.

    Args:
        configured: `registry.tracking_uri` from the config, if any.

    Returns:
        A `GuardedClient` around an `mlflow.MlflowClient` for that store.
    """
    silence()
    import mlflow

    uri = tracking_uri(configured)
    prepare_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return GuardedClient(mlflow.MlflowClient(uri, uri))


def client_for(uri: str) -> GuardedClient:
    """Returns the client of a store (made once per process) and points MLflow's global URIs at it.

    The global URIs are set on every call, not only the first: code that
    uses MLflow's fluent API (`mlflow.start_run` in `log_model`) must write
    to this store even when another store was configured in between.
    """
    import mlflow

    client = _cached_client(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return client


@functools.lru_cache(maxsize=8)
def _cached_client(uri: str) -> GuardedClient:
    return configure(uri)


def store_lock_path(uri: str) -> Path | None:
    """The lock file beside a SQLite store's database (`<db>.lock`), or None for other stores."""
    path = sqlite_path(uri)
    return None if path is None else path.with_name(path.name + ".lock")


def prepare_store(uri: str) -> None:
    """Creates (or migrates) a SQLite store's tables under the lock beside its database, once per process.

    MLflow creates a new database's tables on the first use of its store;
    two processes doing so at once corrupt it. Under the lock this process
    opens the tracking and registry stores (MLflow creates what is missing);
    a process that comes second waits, then finds the tables made. Other
    stores are left to their server.

    Args:
        uri: The tracking URI (also the registry URI).
    """
    lock = store_lock_path(uri)
    if lock is None or uri in _prepared:
        return
    silence()
    import mlflow

    with _prepared_lock:
        if uri in _prepared:
            return
        with file_lock(lock, purpose=f"create or migrate the MLflow store {lock.with_suffix('')}"):
            client = mlflow.MlflowClient(uri, uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        _prepared.add(uri)


def ensure_experiment(client: Any, name: str) -> str:
    """Returns the id of the experiment `name`, creating it if needed (another process may create it first).

    Local SQLite stores keep artifacts under `mlruns/artifacts/<name>`.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(client.tracking_uri, name))
    except MlflowException:
        found = client.get_experiment_by_name(name)  # created by another process in between
        if found is None:
            raise
        return found.experiment_id
