"""MLflow conventions: one experiment per pipeline, one parent run per flow run.

Every helper takes the run id explicitly: MLflow's active-run stack is per
thread, and Prefect runs tasks in worker threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import traceback
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from kerasflow.budget import tracking_budget
from kerasflow.errors import interrupt_behind
from kerasflow.quiet import silence
from kerasflow.tracking.journal import keep_file, read_journal, record

DEFAULT_STORE = Path("mlruns")
RUN_KIND_TAG = "kerasflow.kind"
PARENT_TAG = "mlflow.parentRunId"  # MLflow shows runs with this tag nested under their parent
PID_TAG, HOST_TAG, STARTED_TAG = "kerasflow.pid", "kerasflow.host", "kerasflow.started"  # who runs it (orphan sweep)
NOTE_TAG = "kerasflow.note"
FLOW_RUN_TAG = "prefect.flow_run_id"
SCHEMA_SAMPLE_ROWS = 10_000  # rows MLflow infers a logged dataset's schema from

log = logging.getLogger(__name__)
_open_runs: dict[str, tuple[str, str | None]] = {}  # run id -> (tracking URI, flow run id) of this process's open runs


class TrackingUnavailable(Exception):
    """The tracking store stopped answering during a run, after MLflow's bounded retries."""


@dataclass
class PipelineRun:
    """A parent MLflow run and its scratch folder.

    Args:
        id: The MLflow run id.
        experiment_id: Its experiment.
        workdir: A private folder for files passed between tasks.
    """

    id: str
    experiment_id: str
    workdir: str
    uri: str = ""

    @property
    def tracker(self) -> "Tracker":
        """The `Tracker` that logs into this run."""
        return Tracker(self.id, self.uri or tracking_uri())


def tracking_uri(configured: str | None = None) -> str:
    """Resolves the tracking URI: config, then `MLFLOW_TRACKING_URI`, then the local store.

    Args:
        configured: `registry.tracking_uri` from the config, if any.

    Returns:
        The URI to use; the local default is `sqlite:///mlruns/mlflow.db`.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    DEFAULT_STORE.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_STORE / 'mlflow.db').resolve()}"


def configure(configured: str | None = None) -> Any:
    """Points MLflow at the resolved store and returns a client.

    Args:
        configured: `registry.tracking_uri` from the config, if any.

    Returns:
        An `mlflow.MlflowClient` for that store.
    """
    silence()
    import mlflow

    uri = tracking_uri(configured)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(uri, uri)


def ensure_experiment(client: Any, name: str) -> str:
    """Returns the id of the experiment `name`, creating it if needed.

    Local SQLite stores keep artifacts under `mlruns/artifacts/<name>`.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(client.tracking_uri, name))


def _artifact_location(uri: str, name: str) -> str | None:
    root = os.environ.get("MLFLOW_DEFAULT_ARTIFACT_ROOT")
    if root:
        return f"{root.rstrip('/')}/{name}"
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / name).resolve().as_uri()
    return None


@contextlib.contextmanager
def pipeline_run(config: Any, kind: str, flow_run_id: str | None = None,
                 on_orphan: Callable[[str, str], None] | None = None,
                 tags: dict[str, str] | None = None) -> Iterator[PipelineRun]:
    """Opens the parent run of a flow, and closes it FINISHED, FAILED or KILLED (`closing_run`).

    On an error the report is attached as `errors/error.txt`, the run is
    marked FAILED and the exception propagates; an interrupt marks it and
    its nested runs KILLED. Runs of dead processes are swept first
    (`sweep_orphans`).

    Args:
        config: The validated `PipelineConfig`.
        kind: `train`, `tune`, `retrain` or `predict`; stored as a tag.
        flow_run_id: The Prefect flow-run id, stored as a tag.
        on_orphan: Called with `(flow_run_id, note)` for each swept run that
            recorded a flow run, to close that flow run too. Default none.
        tags: More tags for the run (e.g. the Prefect flow run's URL). Default none.

    Yields:
        A `PipelineRun`.
    """
    client = configure(config.registry.tracking_uri)
    experiment_id = ensure_experiment(client, config.name)
    suffix = (str(flow_run_id) if flow_run_id else uuid.uuid4().hex)[:8]  # unique, and matches the flow run's id
    run = client.create_run(experiment_id, run_name=f"{kind}-{config.name}-{suffix}",
                            tags={**_run_tags(config, kind, flow_run_id), **(tags or {})})
    run_id = run.info.run_id
    workdir = tempfile.mkdtemp(prefix=f"kerasflow-{run_id[:8]}-")
    uri = tracking_uri(config.registry.tracking_uri)
    with closing_run(client, run_id, uri, flow_run_id):
        try:
            sweep_orphans(client, experiment_id, run_id, on_orphan)
            log_config(client, run_id, config)
            yield PipelineRun(id=run_id, experiment_id=experiment_id, workdir=workdir, uri=uri)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def closing_run(client: Any, run_id: str, uri: str, flow_run_id: str | None = None) -> Iterator[None]:
    """Closes a run by how its block ends: FINISHED, FAILED for an error, KILLED for an interrupt.

    Meanwhile the run is on this process's list of open runs, which the
    signal watchdog closes if the process cannot unwind (`kill_open_runs`).
    An interrupt that a library's cleanup error replaced (see
    `kerasflow.errors.interrupt_behind`) is raised again in place of that
    error, so Prefect marks the flow run Crashed rather than Failed.

    Args:
        client: The MLflow client.
        run_id: The run.
        uri: Its tracking URI.
        flow_run_id: The Prefect flow run it belongs to, if any. Default none.
    """
    track_open_run(run_id, uri, flow_run_id)
    try:
        yield
    except BaseException as exc:
        end_failed_run(client, run_id, exc)
        stop = interrupt_behind(exc)
        if stop is not None and stop is not exc:
            raise stop from None
        raise
    else:
        client.set_terminated(run_id, "FINISHED")
    finally:
        forget_open_run(run_id)


def end_failed_run(client: Any, run_id: str, exc: BaseException) -> None:
    """Closes a run that an exception ended: FAILED for an error, KILLED for an interrupt.

    An interrupt (Ctrl-C, SIGTERM: any exception that is not an
    `Exception`) also marks the run's nested runs still RUNNING as KILLED,
    since they may live in worker threads that never see it. A tracking
    store that stopped answering is left alone: the run stays RUNNING there,
    and the next pipeline run on this host marks it FAILED (`sweep_orphans`).
    """
    if unreachable(exc):
        return
    exc = interrupt_behind(exc) or exc  # an interrupt a library's cleanup error replaced is still one
    if isinstance(exc, Exception):
        fail_run(client, run_id, exc)
        return
    try:
        for child in client.search_runs([client.get_run(run_id).info.experiment_id],
                                        f"attributes.status = 'RUNNING' and tags.`{PARENT_TAG}` = '{run_id}'",
                                        max_results=1000):
            kill_run(client, child.info.run_id, exc)
    finally:
        kill_run(client, run_id, exc)


def kill_run(client: Any, run_id: str, exc: BaseException) -> None:
    """Marks a run KILLED, noting what stopped it (an interrupt or a termination signal)."""
    signum = getattr(exc, "signal", None)  # Prefect's TerminationSignal, the CLI's SIGTERM
    if isinstance(signum, int):
        import signal

        what = f"stopped by {signal.Signals(signum).name}"
    elif isinstance(exc, KeyboardInterrupt):
        what = "interrupted (SIGINT, Ctrl-C)"
    else:
        what = f"stopped by {type(exc).__name__}"
    note = f"{what} in process {os.getpid()} on host {socket.gethostname()}"
    client.set_tag(run_id, NOTE_TAG, note)
    client.set_terminated(run_id, "KILLED")


def track_open_run(run_id: str, uri: str, flow_run_id: str | None = None) -> None:
    """Records a run this process opened (pipeline, nested or trial run) for `kill_open_runs`.

    Args:
        run_id: The MLflow run's id.
        uri: Its tracking URI.
        flow_run_id: The Prefect flow run a pipeline run belongs to, for `open_flow_runs`. Default none.
    """
    _open_runs[run_id] = (uri, str(flow_run_id) if flow_run_id else None)


def forget_open_run(run_id: str) -> None:
    """Forgets a run recorded by `track_open_run`, once closed."""
    _open_runs.pop(run_id, None)


def open_flow_runs() -> list[str]:
    """The ids of the Prefect flow runs whose pipeline runs this process still has open."""
    return list(dict.fromkeys(flow_run for _, flow_run in _open_runs.values() if flow_run))


def kill_open_runs(signum: int) -> list[str]:
    """Marks every run this process still has open KILLED: the last resort of a signal that did not unwind.

    Args:
        signum: The signal that stopped the process.

    Returns:
        The ids of the runs marked.
    """
    import signal

    marked = []
    for run_id, (uri, _) in list(_open_runs.items()):
        with contextlib.suppress(Exception):
            client = client_for(uri)
            note = (f"stopped by {signal.Signals(signum).name} in process {os.getpid()} on host "
                    f"{socket.gethostname()}; the process did not unwind in time and was ended")
            client.set_tag(run_id, NOTE_TAG, note)
            client.set_terminated(run_id, "KILLED")
            marked.append(run_id)
    return marked


def unreachable(exc: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the tracking store did not answer.

    MLflow raises an `MlflowException` "API request to ... failed with
    exception ..." once its HTTP retries are spent; under it lies a
    `requests` connection error or timeout.
    """
    import requests

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (TrackingUnavailable, requests.ConnectionError, requests.Timeout)):
            return True
        text = str(exc)
        if "API request to" in text and ("Max retries exceeded" in text or "timed out" in text.lower()
                                          or "Connection" in text):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def process_identity(pid: int | None = None) -> dict[str, str]:
    """The tags that name a process: pid, host and start time (see `sweep_orphans`)."""
    pid = os.getpid() if pid is None else pid
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    started = _process_started(pid)
    if started:
        tags[STARTED_TAG] = started
    return tags


def _process_started(pid: int) -> str | None:
    """When a process started, as a string that differs between two processes that had the same pid.

    On Linux: the boot id and the start time in clock ticks since boot
    (`/proc/<pid>/stat`, field 22); elsewhere psutil's create time, if
    psutil is installed; else None (then only the pid is compared).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.3f}"
    except Exception:  # psutil missing, or no such process
        return None


def _process_gone(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return False
    return bool(started) and _process_started(pid) != started  # the pid now belongs to another process


def _mark_orphan(client: Any, experiment_id: str, run_id: str, note: str) -> list[str]:
    """Marks an orphaned run FAILED with `note`, and its nested runs still RUNNING (trials may carry no pid)."""
    marked = [run_id]
    for child in client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{PARENT_TAG}` = "
                                    f"'{run_id}'", max_results=1000):
        marked.append(child.info.run_id)
    for orphan in marked:
        client.set_tag(orphan, NOTE_TAG, note)
        client.set_tag(orphan, "mlflow.note.content", note)
        client.set_terminated(orphan, "FAILED")
    return marked


def sweep_orphans(client: Any, experiment_id: str, current_run_id: str,
                  on_orphan: Callable[[str, str], None] | None = None) -> list[str]:
    """Marks FAILED the runs of this experiment left RUNNING by a process of this host that is gone.

    A process killed with SIGKILL (or by the OOM killer, or a power cut)
    cannot close its runs. Every kerasflow run records its process's pid,
    host and start time; a RUNNING run whose process no longer exists on
    this host (or whose pid now belongs to a later process) is marked
    FAILED, with a note saying so, and so are its nested runs still
    RUNNING. Runs of other hosts are left alone.

    Args:
        client: An `MlflowClient`.
        experiment_id: The experiment to sweep.
        current_run_id: The run doing the sweep, named in the note.
        on_orphan: Called with `(flow_run_id, note)` for each swept run
            tagged `prefect.flow_run_id`; its errors are logged, not raised.
            Default none.

    Returns:
        The ids of the runs marked FAILED.
    """
    host = socket.gethostname()
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    swept = []
    for found in client.search_runs([experiment_id], query, max_results=1000):
        tags = found.data.tags
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if found.info.run_id in (current_run_id, *swept) or not _process_gone(pid, tags.get(STARTED_TAG)):
            continue
        note = f"process {pid} on host {host} is gone; marked FAILED by run {current_run_id}"
        swept += _mark_orphan(client, experiment_id, found.info.run_id, note)
        if on_orphan is not None and tags.get(FLOW_RUN_TAG):
            try:
                on_orphan(tags[FLOW_RUN_TAG], note)
            except Exception as exc:  # the flow run is Prefect's to judge too; never fail the new run for it
                log.warning("could not close flow run %s: %s", tags[FLOW_RUN_TAG], exc)
    if swept:
        log.warning("marked %d orphaned run(s) FAILED: %s", len(swept), ", ".join(swept))
    return swept


def fail_run(client: Any, run_id: str, exc: BaseException) -> None:
    """Attaches an error report to a run and marks it FAILED.

    Args:
        client: An `MlflowClient`.
        run_id: The run.
        exc: The exception that ended it.
    """
    report = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))
    client.log_text(run_id, report, "errors/error.txt")
    client.set_tag(run_id, "kerasflow.error", f"{type(exc).__name__}: {str(exc)[:4000]}")
    client.set_terminated(run_id, "FAILED")


def record_failed_run(experiment: str, kind: str, error: BaseException, attachments: dict[str, str] | None = None,
                      tracking: str | None = None) -> str:
    """Records a run that failed before a pipeline could start, e.g. a bad config.

    Args:
        experiment: Experiment name.
        kind: The command that failed (`train`, `validate`, ...).
        error: The error to report.
        attachments: Extra `{artifact_path: text}` files to attach.
        tracking: Tracking URI override.

    Returns:
        The FAILED run's id.
    """
    client = configure(tracking)
    run = client.create_run(ensure_experiment(client, experiment), run_name=f"{kind}-{experiment}",
                            tags={RUN_KIND_TAG: kind, **process_identity(), **_git_tags()})
    for path, text in (attachments or {}).items():
        client.log_text(run.info.run_id, text, path)
    fail_run(client, run.info.run_id, error)
    return run.info.run_id


def log_config(client: Any, run_id: str, config: Any) -> None:
    """Logs a config as flat `section.key` params plus the YAML itself."""
    import yaml

    data = config.model_dump(mode="json")
    params = {k: v for k, v in flatten(data).items() if k.split(".")[0] not in ("name",)}
    log_params(client, run_id, params)
    client.log_text(run_id, yaml.safe_dump(data, sort_keys=False), "config/config.yaml")


def log_params(client: Any, run_id: str, params: dict[str, Any], prefix: str = "") -> None:
    """Logs params in one batch, values rendered as strings up to MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(f"{prefix}{k}", _param_text(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], prefix: str = "", step: int = 0,
                synchronous: bool = True) -> list[Any]:
    """Logs finite metrics in one batch, names prefixed by step.

    The prefix's first `.` becomes `/` (`train.` gives `train/loss`,
    `champion.test.` gives `champion/test.accuracy`), so the MLflow UI's
    chart view shows one section per step.

    Returns:
        With `synchronous=False`, the pending `RunOperations` to `wait()` on;
        otherwise an empty list.
    """
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    head = prefix.replace(".", "/", 1)  # `train.` -> `train/`: MLflow's chart view groups metrics by `step/`
    items = [Metric(f"{head}{k}", float(v), now, step) for k, v in metrics.items()
             if v is not None and math.isfinite(float(v))]
    pending = []
    for start in range(0, len(items), 500):
        op = client.log_batch(run_id, metrics=items[start:start + 500], synchronous=synchronous)
        if not synchronous and op is not None:
            pending.append(op)
    return pending


class EpochLogger:
    """A per-epoch hook that logs metrics asynchronously, once per epoch.

    Logging each epoch synchronously costs a database round trip inside the
    training loop; this queues it on MLflow's async logger instead. Call
    `wait()` before the run moves on.

    A queued epoch that could not be written (the store went away and
    MLflow's bounded retries ran out) stops training at the next epoch with
    `TrackingUnavailable`; `undelivered()` counts what was queued but never
    confirmed.

    Args:
        client: An `MlflowClient`.
        run_id: The run to log into.
        prefix: Metric-name prefix, e.g. `train.`.
        journal: A step journal to record each epoch in. Default none.
    """

    def __init__(self, client: Any, run_id: str, prefix: str, journal: str | None = None):
        self.client, self.run_id, self.prefix, self.journal = client, run_id, prefix, journal
        self.pending: list[Any] = []
        _epoch_loggers.add(self)

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        self._check()
        self.pending += log_metrics(self.client, self.run_id, logs, self.prefix, step=epoch, synchronous=False)
        if self.journal is not None:
            record(self.journal, "metrics", metrics=logs, prefix=self.prefix, step=epoch)

    def _check(self) -> None:
        """Raises the first failure of an epoch already sent; forgets the epochs written."""
        still = []
        for op in self.pending:
            futures = getattr(op, "_operation_futures", [])
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise _async_failure(self.run_id, future.exception())
            if not all(future.done() for future in futures):
                still.append(op)
        self.pending = still

    def undelivered(self) -> int:
        """The number of queued epochs not confirmed written."""
        return sum(1 for op in self.pending for future in getattr(op, "_operation_futures", [])
                   if not future.done() or future.exception() is not None)

    def wait(self) -> None:
        """Blocks until every queued epoch is written, for at most the tracking budget.

        Flushes MLflow's async queue first: it batches for up to
        `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS` (1 s, see `quiet.py`), which
        the end of training need not wait out. The flush runs in a daemon
        thread: with the store down, MLflow would retry every queued batch in
        turn, for many times the budget.

        Raises:
            TrackingUnavailable: An epoch could not be written because the
                store did not answer, or was not confirmed within the budget.
        """
        if not self.pending:
            return
        import threading
        import time

        import mlflow

        deadline = time.monotonic() + tracking_budget() + 5
        flusher = threading.Thread(target=mlflow.flush_async_logging, name="kerasflow-flush", daemon=True)
        flusher.start()
        flusher.join(timeout=max(0.0, deadline - time.monotonic()))
        self._check()
        for op in self.pending:
            for future in getattr(op, "_operation_futures", []):
                try:
                    future.result(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise TrackingUnavailable(
                        f"{self.undelivered()} epoch(s) of metrics of run {self.run_id} were not confirmed written "
                        f"within {tracking_budget()} s") from None
                except Exception as exc:
                    raise _async_failure(self.run_id, exc) from exc
        self.pending.clear()


_epoch_loggers: "weakref.WeakSet[EpochLogger]" = weakref.WeakSet()


def undelivered_epochs() -> int:
    """Epochs of metrics queued by this process's `EpochLogger`s and never confirmed written."""
    return sum(logger.undelivered() for logger in list(_epoch_loggers))


def _async_failure(run_id: str, exc: BaseException) -> BaseException:
    if unreachable(exc):
        error = TrackingUnavailable(f"could not log the epoch metrics of run {run_id}: {exc}")
        error.__cause__ = exc
        return error
    return exc


def log_json(client: Any, run_id: str, data: Any, artifact_file: str) -> None:
    """Logs a JSON artifact."""
    client.log_text(run_id, json.dumps(data, indent=2, default=str), artifact_file)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts into `a.b.c` keys; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
    return text[:6000]


def ui_url(uri: str | None = None) -> str:
    """The MLflow UI address for a tracking URI.

    An `http(s)` tracking server is its own UI. A local store is shown by
    `kerasflow ui` or `kerasflow serve`: `KERASFLOW_MLFLOW_UI_URL` (which
    `kerasflow serve` sets) else `http://127.0.0.1:5000`.
    """
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return os.environ.get("KERASFLOW_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def run_url(experiment_id: str, run_id: str, uri: str | None = None) -> str:
    """The MLflow UI page of a run."""
    return f"{ui_url(uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def _run_tags(config: Any, kind: str, flow_run_id: str | None) -> dict[str, str]:
    tags = {RUN_KIND_TAG: kind, "kerasflow.config_hash": config.fingerprint(), "kerasflow.pipeline": config.name,
            "mlflow.source.name": f"kerasflow {kind} ({config.name})", "mlflow.source.type": "JOB",
            "mlflow.user": _user(),
            **process_identity()}
    if flow_run_id:
        tags[FLOW_RUN_TAG] = str(flow_run_id)
    return {**tags, **_git_tags()}


def _user() -> str:
    """Who runs the pipeline (MLflow's "Created by"): the login name, else `kerasflow`."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "kerasflow"


def _git_tags() -> dict[str, str]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit} if commit else {}


@functools.lru_cache(maxsize=8)
def client_for(uri: str) -> Any:
    """Returns the `MlflowClient` of a store, configuring MLflow for it once per process."""
    return configure(uri)


@dataclass(frozen=True)
class Tracker:
    """Where a task hands its results: one MLflow run, by id and store.

    A tracker is a few strings, so it travels to thread, process and Dask
    workers alike; its client is made (and MLflow pointed at the store)
    once per process on first use. A journaling tracker (`journaled`) also
    records every call in a step's cache folder, and `replay` logs such a
    record into another run (see `kerasflow.tracking.journal`).

    Args:
        run_id: The run to log into.
        uri: Its tracking URI.
        journal: A journal file to record every call in. Default none.

    Example:

    ```python
    run.tracker.metrics({"rows": 120}, prefix="split.")
    run.tracker.json(report, "validation/result.json")
    ```
    """

    run_id: str
    uri: str
    journal: str | None = None

    @property
    def client(self) -> Any:
        """The `MlflowClient` of the tracker's store."""
        return client_for(self.uri)

    def journaled(self, journal: str) -> "Tracker":
        """Returns a tracker that logs into the same run and records every call in `journal`."""
        return dataclasses.replace(self, journal=journal)

    def _record(self, op: str, **payload: Any) -> None:
        if self.journal is not None:
            record(self.journal, op, **payload)

    def params(self, params: dict[str, Any], prefix: str = "") -> None:
        """Logs params in one batch (see `log_params`)."""
        log_params(self.client, self.run_id, params, prefix)
        self._record("params", params=params, prefix=prefix)

    def metrics(self, metrics: dict[str, float], prefix: str = "", step: int = 0) -> None:
        """Logs finite metrics in one batch (see `log_metrics`)."""
        log_metrics(self.client, self.run_id, metrics, prefix, step)
        self._record("metrics", metrics=metrics, prefix=prefix, step=step)

    def epochs(self, prefix: str) -> EpochLogger:
        """Returns a per-epoch hook that logs asynchronously under `prefix`."""
        return EpochLogger(self.client, self.run_id, prefix, journal=self.journal)

    def json(self, data: Any, artifact_file: str) -> None:
        """Logs a JSON artifact."""
        log_json(self.client, self.run_id, data, artifact_file)
        self._record("json", data=data, artifact_file=artifact_file)

    def text(self, text: str, artifact_file: str) -> None:
        """Logs a text artifact."""
        self.client.log_text(self.run_id, text, artifact_file)
        self._record("text", text=text, artifact_file=artifact_file)

    def table(self, frame: Any, artifact_file: str) -> None:
        """Logs a DataFrame as a table artifact (`MlflowClient.log_table`: a table view in the MLflow UI)."""
        self.client.log_table(self.run_id, data=frame, artifact_file=artifact_file)
        self._record("table", rows=frame.to_dict(orient="records"), artifact_file=artifact_file)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Logs a file (or a folder's files) under `folder`."""
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        else:
            self.client.log_artifact(self.run_id, str(path), folder)
        if self.journal is not None:
            self._record("artifact", path=keep_file(self.journal, path), folder=folder)

    def tags(self, tags: dict[str, Any]) -> None:
        """Sets tags, values as strings."""
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))
        self._record("tags", tags={key: str(value) for key, value in tags.items()})

    def dataset(self, frame: Any, *, source: str, digest: str, target: str, rows: int | None = None) -> None:
        """Records a DataFrame as the run's raw input (MLflow dataset tracking).

        Args:
            frame: The rows (a listing, for image folders).
            source: Where they came from (path or folder).
            digest: Their fingerprint; MLflow keeps the first 36 characters.
            target: The label column.
            rows: The table's row count when `frame` is a sample of it
                (streaming). Default `len(frame)`.

        The schema is inferred from an evenly spaced sample of
        `SCHEMA_SAMPLE_ROWS` rows (MLflow checks every value of every text
        column, 15 s for a million rows); the profile counts all rows.
        """
        import mlflow.data

        sample = frame.iloc[::max(1, len(frame) // SCHEMA_SAMPLE_ROWS)]  # MLflow infers the schema value by value
        dataset = mlflow.data.from_pandas(sample, source=source, targets=target, name=Path(source).stem or source,
                                          digest=digest[:36]).to_dict()
        total = len(frame) if rows is None else rows
        dataset["profile"] = json.dumps({"num_rows": total, "num_elements": total * frame.shape[1]})
        self._log_dataset(dataset)

    def _log_dataset(self, dataset: dict[str, str]) -> None:
        """Logs a dataset given as `mlflow.data.Dataset.to_dict()`, with the context `raw`."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        context = InputTag(key="mlflow.data.context", value="raw")
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(Dataset(**dataset), tags=[context])])
        self._record("dataset", dataset=dataset)

    def replay(self, folder: str | Path) -> str | None:
        """Logs what a cached step logged (its sealed journal) into this run.

        Args:
            folder: The step's cache folder.

        Returns:
            The id of the run that executed the step.

        Raises:
            FileNotFoundError: The folder holds no sealed journal.
        """
        journal = read_journal(folder)
        if journal is None:
            raise FileNotFoundError(f"No step journal in {folder}")
        origin, calls = journal
        for call in calls:
            op = call.pop("op")
            if op == "artifact":
                self.artifact(Path(folder) / call["path"], call["folder"])
            elif op == "table":
                import pandas as pd

                self.table(pd.DataFrame(call["rows"]), call["artifact_file"])
            elif op == "dataset":
                self._log_dataset(call["dataset"])
            else:
                getattr(self, op)(**call)
        return origin


@contextlib.contextmanager
def nested_run(parent: Tracker, name: str, kind: str, tags: dict[str, str] | None = None) -> Iterator[Tracker]:
    """Opens a run nested under `parent` (a fold, a trial), and closes it FINISHED or FAILED.

    Args:
        parent: The pipeline run's tracker.
        name: The nested run's name, e.g. `fold-2`.
        kind: Its `kerasflow.kind` tag, e.g. `fold`.
        tags: More tags. Default none.

    Yields:
        The nested run's `Tracker`.
    """
    client = parent.client
    experiment_id = client.get_run(parent.run_id).info.experiment_id
    run = client.create_run(experiment_id, run_name=name, tags={PARENT_TAG: parent.run_id, RUN_KIND_TAG: kind,
                                                                **process_identity(), **(tags or {})})
    child = Tracker(run.info.run_id, parent.uri)
    with closing_run(client, child.run_id, parent.uri):
        yield child
