"""The one run lifecycle: every run kerasflow opens is opened and closed here.

Pipeline runs (`pipeline_run`), prediction runs (`model_run`), nested runs
(`nested_run`: folds) and trial runs (`open_child_run`/`close_child_run`)
are all on this process's list of open runs while open, which the signal
watchdog closes KILLED if the process cannot unwind (`kill_open_runs`).
A block that ends closes its run by how it ended (`closing_run`): FINISHED,
FAILED with an error report, or KILLED for an interrupt.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import traceback
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from kerasflow.schemas.config import PipelineConfig
from kerasflow.stopping import interrupt_behind
from kerasflow.tracking.client import client_for, configure, ensure_experiment
from kerasflow.tracking.liveness import process_identity, reconcile_flow_runs, sweep_orphans
from kerasflow.tracking.records import log_config
from kerasflow.tracking.store import tracking_uri, unreachable
from kerasflow.tracking.tags import FLOW_RUN_TAG, NOTE_TAG, PARENT_TAG, RUN_KIND_TAG
from kerasflow.tracking.tracker import Tracker

if TYPE_CHECKING:  # for the annotation only: a run needs nothing of the registry's code
    from kerasflow.tracking.registry import ModelRef


_open_runs: dict[str, tuple[str, str | None]] = {}  # run id -> (tracking URI, flow run id) of this process's open runs


@dataclass
class PipelineRun:
    """A parent MLflow run and its scratch folder.

    Args:
        id: The MLflow run id.
        experiment_id: Its experiment.
        workdir: A private folder for files passed between tasks.
        uri: Its tracking URI. Default: as `tracking_uri`.
    """

    id: str
    experiment_id: str
    workdir: str
    uri: str = ""

    @property
    def tracker(self) -> "Tracker":
        """The `Tracker` that logs into this run."""
        return Tracker(self.id, self.uri or tracking_uri())


@contextlib.contextmanager
def pipeline_run(config: PipelineConfig, kind: str, flow_run_id: str | None = None,
                 on_orphan: Callable[[str, str], None] | None = None,
                 tags: dict[str, str] | None = None,
                 reconcile: Callable[[str, str, str], None] | None = None) -> Iterator[PipelineRun]:
    """Opens the parent run of a flow, and closes it FINISHED, FAILED or KILLED (`closing_run`).

    On an error the report is attached as `errors/error.txt`, the run is
    marked FAILED and the exception propagates; an interrupt marks it and
    its nested runs KILLED. Runs of dead processes are swept first
    (`sweep_orphans`), and flow runs awaiting their final state (the
    Prefect API was down) get it (`reconcile_flow_runs`).

    Args:
        config: The validated `PipelineConfig`.
        kind: `train`, `tune`, `retrain` or `predict`; stored as a tag.
        flow_run_id: The Prefect flow-run id, stored as a tag.
        on_orphan: Called with `(flow_run_id, note)` for each swept run that
            recorded a flow run, to close that flow run too. Default none.
        tags: More tags for the run (e.g. the Prefect flow run's URL). Default none.
        reconcile: Called with `(flow_run_id, state, note)` for each flow run
            of the experiment awaiting its final state. Default none.

    Yields:
        A `PipelineRun`.
    """
    client = configure(config.registry.tracking_uri)
    experiment_id = ensure_experiment(client, config.name)
    name = f"{kind}-{config.name}-{_suffix(flow_run_id)}"
    with _top_run(client, experiment_id, name, {**_run_tags(config, kind, flow_run_id), **(tags or {})},
                  tracking_uri(config.registry.tracking_uri), flow_run_id) as run:
        sweep_orphans(client, experiment_id, run.id, on_orphan)
        if reconcile is not None:
            reconcile_flow_runs(client, experiment_id, reconcile)
        log_config(client, run.id, config)
        yield run


@contextlib.contextmanager
def model_run(model: "ModelRef", kind: str, flow_run_id: str | None = None,
              configured_uri: str | None = None) -> Iterator[PipelineRun]:
    """Opens a run about a model (e.g. a batch prediction), closed FINISHED, FAILED or KILLED (`closing_run`).

    The run goes to its own experiment, `<training experiment>-predictions`
    (the experiment of the run that logged the model; else
    `kerasflow-predictions`), so predictions never crowd the training runs.
    It is tagged with the model's URI and version. On an exception the
    error report is attached and the run marked FAILED.

    Args:
        model: The resolved model (`kerasflow.tracking.registry.ModelRef`).
        kind: The run kind tag, e.g. `predict`.
        flow_run_id: The Prefect flow-run id, stored as a tag.
        configured_uri: Tracking URI override. Default: as `tracking_uri`.

    Yields:
        A `PipelineRun` with a private scratch folder.
    """
    client = configure(configured_uri)
    trained_in = client.get_experiment(client.get_run(model.run_id).info.experiment_id).name if model.run_id \
        else "kerasflow"
    experiment_id = ensure_experiment(client, f"{trained_in}-predictions")
    tags = {RUN_KIND_TAG: kind, "kerasflow.model_uri": model.uri, **process_identity()}
    if model.run_id:
        tags["kerasflow.training_run"] = model.run_id
    if model.name:
        tags.update({"kerasflow.model_name": model.name, "kerasflow.model_version": str(model.version)})
    if flow_run_id:
        tags[FLOW_RUN_TAG] = str(flow_run_id)
    label = f"{model.name}-v{model.version}" if model.name else "model"
    with _top_run(client, experiment_id, f"{kind}-{label}-{_suffix(flow_run_id)}", tags,
                  tracking_uri(configured_uri), flow_run_id) as run:
        yield run


def _suffix(flow_run_id: str | None) -> str:
    """A run name's last part: unique, and the flow run's id's start when there is one."""
    return (str(flow_run_id) if flow_run_id else uuid.uuid4().hex)[:8]


@contextlib.contextmanager
def _top_run(client: Any, experiment_id: str, name: str, tags: dict[str, str], uri: str,
             flow_run_id: str | None) -> Iterator[PipelineRun]:
    """Opens a run that has no parent, with a private scratch folder removed when it closes (`closing_run`)."""
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    workdir = tempfile.mkdtemp(prefix=f"kerasflow-{run_id[:8]}-")
    with closing_run(client, run_id, uri, flow_run_id):
        try:
            yield PipelineRun(id=run_id, experiment_id=experiment_id, workdir=workdir, uri=uri)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def closing_run(client: Any, run_id: str, uri: str, flow_run_id: str | None = None) -> Iterator[None]:
    """Closes a run by how its block ends: FINISHED, FAILED for an error, KILLED for an interrupt.

    Meanwhile the run is on this process's list of open runs, which the
    signal watchdog closes if the process cannot unwind (`kill_open_runs`).
    An interrupt that a library's cleanup error replaced (see
    `kerasflow.stopping.interrupt_behind`) is raised again in place of that
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

        what = f"stopped by {signal.Signals(signum).name}"
    elif isinstance(exc, KeyboardInterrupt):
        what = "interrupted (SIGINT, Ctrl-C)"
    else:
        what = f"stopped by {type(exc).__name__}"
    note = f"{what} in process {os.getpid()} on host {socket.gethostname()}"
    client.set_tag(run_id, NOTE_TAG, note)
    client.set_terminated(run_id, "KILLED")


def fail_run(client: Any, run_id: str, exc: BaseException) -> None:
    """Attaches an error report to a run and marks it FAILED.

    Args:
        client: An `MlflowClient`.
        run_id: The run.
        exc: The exception that ended it.
    """
    report = f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))
    try:
        client.log_text(run_id, report, "errors/error.txt")
    except OSError:  # a full disk: the run is still marked FAILED, the tag below holds the error
        pass
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
    return close_open_runs("KILLED", f"stopped by {signal.Signals(signum).name}",
                           "the process did not unwind in time and was ended")


def close_open_runs(status: str, what: str, why: str) -> list[str]:
    """Closes every run this process still has open, with a note: for a process that ends without unwinding.

    Normally every run is closed by its block (`closing_run`) before the
    process ends; a run still open here would stay RUNNING in the store
    after the process is gone. A run the store does not take is left as it
    is (the next pipeline run on this host marks it FAILED).

    Args:
        status: `FAILED` or `KILLED`.
        what: What ended the process, e.g. `stopped by SIGTERM`.
        why: Why the run was not closed by its block.

    Returns:
        The ids of the runs closed.
    """
    marked = []
    for run_id, (uri, _) in list(_open_runs.items()):
        with contextlib.suppress(Exception):
            client = client_for(uri)
            client.set_tag(run_id, NOTE_TAG, f"{what} in process {os.getpid()} on host {socket.gethostname()}; {why}")
            client.set_terminated(run_id, status)
            marked.append(run_id)
    return marked


@contextlib.contextmanager
def nested_run(parent: Tracker, name: str, kind: str, tags: dict[str, str] | None = None) -> Iterator[Tracker]:
    """Opens a run nested under `parent` (a fold), and closes it FINISHED, FAILED or KILLED (`closing_run`).

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
    child = Tracker(open_child_run(client, parent.run_id, experiment_id, parent.uri, name, kind, tags), parent.uri)
    with closing_run(client, child.run_id, parent.uri):
        yield child


def open_child_run(client: Any, parent_run_id: str, experiment_id: str, uri: str, name: str, kind: str,
                   tags: dict[str, str] | None = None) -> str:
    """Opens a run nested under another (a fold, a trial) and puts it on this process's list of open runs.

    `nested_run` closes it by how its block ends; a run whose end is an
    event of its own (a trial of a search) is closed by `close_child_run`.
    Until then the signal watchdog closes it if the process cannot unwind
    (`kill_open_runs`), and an interrupted pipeline run closes it KILLED
    (`end_failed_run`).

    Args:
        client: An `MlflowClient`.
        parent_run_id: The run it is nested under (`mlflow.parentRunId`).
        experiment_id: The parent's experiment.
        uri: The tracking URI.
        name: The run's name, e.g. `trial-3`.
        kind: Its `kerasflow.kind` tag, e.g. `trial`.
        tags: More tags. Default none.

    Returns:
        The new run's id.
    """
    run = client.create_run(experiment_id, run_name=name, tags={PARENT_TAG: parent_run_id, RUN_KIND_TAG: kind,
                                                                **process_identity(), **(tags or {})})
    track_open_run(run.info.run_id, uri)
    return run.info.run_id


def close_child_run(client: Any, run_id: str, status: str) -> None:
    """Closes a run opened by `open_child_run` and takes it off the list of open runs.

    Args:
        client: An `MlflowClient`.
        run_id: The run.
        status: `FINISHED`, `FAILED` or `KILLED` (a trial an interrupt stopped).
    """
    client.set_terminated(run_id, status)
    forget_open_run(run_id)


def _run_tags(config: PipelineConfig, kind: str, flow_run_id: str | None) -> dict[str, str]:
    tags = {RUN_KIND_TAG: kind, "kerasflow.config_hash": config.fingerprint(), "kerasflow.pipeline": config.name,
            "mlflow.source.name": f"kerasflow {kind} ({config.name})", "mlflow.source.type": "JOB",
            "mlflow.user": _user(),
            **process_identity()}
    if flow_run_id:
        tags[FLOW_RUN_TAG] = str(flow_run_id)
    return {**tags, **_git_tags()}


def _user() -> str:
    """Who runs the pipeline (MLflow's "Created by"): the login name, else `kerasflow`."""

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
