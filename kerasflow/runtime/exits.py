"""How a command ends: its exit statuses, its one-line errors, and the checks that end it before any work.

- 2: bad input (the config, the data, a model reference; `BadInputError`);
- 1: a failure (the tracking store or the Prefect server does not answer, a
  step crashed);
- 0 also when the work succeeded but the Prefect API stopped answering before
  the flow run's final state was reported: one warning paragraph says so, and
  the next pipeline run sets that state (`prefect_outage_message`);
- 128 + the signal number for SIGINT or SIGTERM (`kerasflow.runtime.stopping`).

Every error is one line on stderr, `error: ...`, without a traceback.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import typer

from kerasflow.progress import Heartbeat
from kerasflow.quiet import silence
from kerasflow.secrets import mask

if TYPE_CHECKING:  # the CLI stays light: the config models load only when a command parses one
    from kerasflow.schemas.config import PipelineConfig

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

T = TypeVar("T")
_store_uri: str | None = None  # the tracking store of this command, once checked
_heartbeat: list[Heartbeat] = []  # the command's heartbeat, from `preflight` to the end of `run_flow`


def fail(message: str, code: int) -> NoReturn:
    """Prints `error: <message>` on stderr (credentials in addresses masked) and exits with `code`."""
    typer.echo(f"error: {mask(message)}", err=True)
    raise typer.Exit(code)


def preflight(config: Path, overrides: list[str], kind: str) -> Any:
    """Validates the config, then checks its tracking store answers, before any work.

    A bad config is recorded as a FAILED run; a store that does not answer
    stops the command (exit 1) before any server starts.

    Returns:
        The validated `PipelineConfig`.
    """
    silence()
    from kerasflow.schemas.config import ConfigError, load_config, read_raw_config

    try:
        cfg = load_config(config, overrides)
    except ConfigError as exc:
        _record_bad_config(config, kind, exc, read_raw_config)
        fail(str(exc), EXIT_BAD_INPUT)
    typer.echo(f"kerasflow {kind}: pipeline {cfg.name} from {config}", err=True)  # something within 2 s
    start_heartbeat()
    require_store(cfg.registry.tracking_uri)
    return cfg


def require_store(configured: str | None) -> str:
    """Stops the command (exit 1, one paragraph) unless its tracking store answers; returns its URI."""
    global _store_uri
    from kerasflow.budget import tracking_budget
    from kerasflow.runtime.stores import StoreUnreachable, check_store
    from kerasflow.tracking import tracking_uri

    try:
        tracking_budget()
    except ValueError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    uri = tracking_uri(configured)
    try:
        check_store(uri)
    except StoreUnreachable as exc:
        fail(str(exc), EXIT_FAILED)
    _store_uri = uri
    return uri


def _record_bad_config(config: Path, kind: str, exc: Exception, read_raw: Any) -> None:
    from kerasflow.tracking import record_failed_run

    try:
        raw = read_raw(config)
        name = raw.get("name") if isinstance(raw.get("name"), str) else config.stem
        tracking = (raw.get("registry") or {}).get("tracking_uri") if isinstance(raw.get("registry"), dict) else None
    except Exception:
        name, tracking = config.stem, None
    text = config.read_text(errors="replace") if config.is_file() else ""
    try:
        run_id = record_failed_run(name or "kerasflow", kind, exc, {"config/config.yaml": text}, tracking)
        typer.echo(f"recorded FAILED MLflow run {run_id}", err=True)
    except Exception as record_error:  # the store itself may be what is misconfigured
        typer.echo(mask(f"could not record the failure in MLflow: {record_error}"), err=True)


def warm(cfg: PipelineConfig, heavy: bool = True) -> Any:
    """Starts the validation worker and the Prefect server while heavy libraries import.

    The command's heartbeat (`start_heartbeat`) says what is going on meanwhile.
    """
    from kerasflow.runtime.prefect_server import PrefectServerError
    from kerasflow.runtime.warmup import warm_start

    start_heartbeat()
    try:
        return warm_start(validation=cfg.validation.suite is not None, heavy=heavy)
    except PrefectServerError as exc:
        fail(str(exc), EXIT_FAILED)
    except ValueError as exc:  # a bad KERASFLOW_LOW_MEMORY value
        fail(str(exc), EXIT_BAD_INPUT)


def run_flow(call: Callable[[], T], server: Any, kind: str) -> T:
    """Runs a flow for a command and turns how it ends into the command's exit.

    Args:
        call: Calls the flow.
        server: The Prefect server to report to (see `warm`), or None.
        kind: The command, for the messages.

    Returns:
        The flow's result; every other ending exits the process.
    """
    from prefect.exceptions import TerminationSignal

    from kerasflow import tracking
    from kerasflow.data.expectations.run import stop_validator
    from kerasflow.errors import BadInputError, describe, describe_disk_full, disk_full
    from kerasflow.quiet import hide_tracebacks_for, quiet_event_outages, quiet_log_worker_errors
    from kerasflow.runtime.prefect_server import PrefectServerError, prefect_api
    from kerasflow.runtime.stopping import arm_watchdog, hard_exit, stopped
    from kerasflow.stopping import interrupt_behind
    from kerasflow.tasks.outage import prefect_unreachable, when_unreported
    from kerasflow.tracking.infra import stop_probe

    arm_watchdog()
    watch_console()
    hide_tracebacks_for((BadInputError, KeyboardInterrupt, TerminationSignal),
                        when=lambda exc: tracking.unreachable(exc) or interrupt_behind(exc) is not None
                        or prefect_unreachable(exc))
    quiet_event_outages()
    quiet_log_worker_errors()
    when_unreported(lambda outcome: _end_unreported(kind, outcome, None))
    try:
        with prefect_api(server):
            if server is not None and server.started and server.shared:
                typer.echo(f"started a local Prefect server at {server.ui_url}; it stays up for the next runs "
                           f"(`kerasflow server stop` stops it)", err=True)
            try:
                return call()
            finally:  # before any exit below, some of which skip `atexit`
                stop_validator()
                stop_probe()
                stop_heartbeat()
    except PrefectServerError as exc:
        fail(str(exc), EXIT_FAILED)
    except BadInputError as exc:
        fail(describe(exc), EXIT_BAD_INPUT)
    except (KeyboardInterrupt, TerminationSignal) as exc:
        stopped(kind, exc)
    except Exception as exc:
        if (stop := interrupt_behind(exc)) is not None:  # outside a pipeline run, which raises it itself
            stopped(kind, stop)
        _end_if_prefect_down(kind, exc)
        if (full := disk_full(exc)) is not None:
            fail(f"{kind} failed: {describe_disk_full(full, _written_places())} The MLflow run is FAILED and no "
                 f"model version was registered from it.", EXIT_FAILED)
        if tracking.unreachable(exc):
            typer.echo(f"error: {outage_message(kind, exc, tracking.undelivered_epochs())}", err=True)
            hard_exit(EXIT_FAILED)
        fail(f"{kind} failed: {type(exc).__name__}: {exc}", EXIT_FAILED)


def _written_places() -> dict[str, str]:
    """The folders a run writes to: its artifacts (a local store's), kerasflow's state, the temporary folder."""
    from kerasflow.tasks.outage import last_outcome
    from kerasflow.tracking import client_for
    from kerasflow.training.resume import state_home

    places = {}
    outcome = last_outcome()
    if outcome is not None:
        try:
            uri = client_for(outcome.uri).get_run(outcome.run_id).info.artifact_uri
            if uri.startswith("file:"):
                places["the run's artifacts"] = unquote(urlsplit(uri).path)
        except Exception:  # the message names the other places
            pass
    home = state_home()
    places["the step cache"] = str(home if home.exists() else home.parent)
    places["the temporary folder"] = tempfile.gettempdir()
    return places


def _end_if_prefect_down(kind: str, exc: BaseException) -> None:
    """Ends the command at once when the Prefect API stopped answering (nothing else to wait for).

    The work's outcome is its MLflow run's: 0 when it is FINISHED, 1 (or 2
    for bad input) when it FAILED. The flow run's final state is recorded on
    the MLflow run for the next pipeline run to set. Ends without the atexit
    flushes of Prefect's event and log workers, which would retry a server
    that is gone.
    """
    from kerasflow.tasks.outage import last_outcome, prefect_unreachable

    if prefect_unreachable(exc):
        _end_unreported(kind, last_outcome(), exc)


def _end_unreported(kind: str, outcome: Any, exc: BaseException | None) -> None:
    """Says what the run left while the Prefect API is down, and ends the process: 0 if the work finished."""
    from kerasflow.data.expectations.run import stop_validator
    from kerasflow.errors import BadInputError
    from kerasflow.runtime.stopping import hard_exit

    finished = outcome is not None and outcome.status == "FINISHED"
    stop_heartbeat()  # nothing more is at work: the paragraph is the last line
    typer.echo(f"{'warning' if finished else 'error'}: {prefect_outage_message(kind, exc, outcome)}", err=True)
    stop_validator()
    if finished:
        hard_exit(0, logs_within=0.5)
    hard_exit(EXIT_BAD_INPUT if outcome and isinstance(outcome.error, BadInputError) else EXIT_FAILED,
              logs_within=0.5)


def prefect_outage_message(kind: str, exc: BaseException | None, outcome: Any) -> str:
    """The paragraph that says the Prefect API stopped answering, what the work left, and what happens next."""
    from kerasflow.errors import describe
    from kerasflow.runtime.prefect_server import configured_api_url
    from kerasflow.tasks.outage import prefect_down
    from kerasflow.tracking import client_for, mark_prefect_pending

    api = mask(os.environ.get("PREFECT_API_URL") or configured_api_url() or "Prefect's API")
    cause = mask(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}" if exc is not None
                 else prefect_down() or "no answer")[:200]
    if outcome is None:
        return (f"{kind} stopped: the Prefect API {api} does not answer ({cause}), and no MLflow run was opened. "
                f"Check that the Prefect server is running (`kerasflow server status`) or PREFECT_API_URL.")
    state = "Completed" if outcome.status == "FINISHED" else "Failed"
    note = f"the Prefect API did not answer when the flow run ended; its MLflow run {outcome.run_id} is {outcome.status}"
    try:
        client = client_for(outcome.uri)
        mark_prefect_pending(client, outcome.run_id, state, note)
        versions = [f"{v.name} v{v.version}" for v in client.search_model_versions(f"run_id = '{outcome.run_id}'")]
    except Exception:  # the store is the record; if it is gone too, say what is known
        versions = []
    registered = f" It registered {', '.join(versions)}." if versions else ""
    if outcome.status == "FINISHED":
        what = f"{kind} finished: its MLflow run {outcome.run_id} is FINISHED.{registered}"
    else:
        error = outcome.error
        reason = describe(error) if error is not None else outcome.status
        what = f"{kind} failed: {reason}. Its MLflow run {outcome.run_id} is {outcome.status}.{registered}"
    flow_run = f"flow run {outcome.flow_run_id}" if outcome.flow_run_id else "flow run"
    return (f"{what} The Prefect API {api} stopped answering during the run ({cause}), so the Prefect {flow_run} "
            f"could not be given its final state and still shows Running, and task logs and events after the outage "
            f"are lost. The next pipeline run of this experiment sets it {state} once the API answers again.")
def start_heartbeat() -> None:
    """Starts the command's heartbeat (`kerasflow.progress.Heartbeat`), once: till `stop_heartbeat`, a silence prints what is going on.

    It writes to its own copy of file descriptor 2, so its lines show while
    TensorFlow's import filters the descriptor (`kerasflow.heavy.import_tensorflow`).
    """
    if _heartbeat:
        return
    try:
        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, errors="replace")
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # not a file (a test's captured stream)
        stream = sys.stderr

    def print_line(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    _heartbeat.append(Heartbeat(print_line, close=stream.close if stream is not sys.stderr else None).start())


def stop_heartbeat() -> None:
    """Stops the command's heartbeat, if any."""
    while _heartbeat:
        _heartbeat.pop().stop()


def watch_console() -> None:
    """Lets the heartbeat count the lines Prefect's console handlers print (Prefect is imported by now)."""
    from kerasflow.tasks.progress import console_loggers

    streams = (sys.stdout, sys.stderr)
    for heartbeat in _heartbeat:
        for logger in console_loggers():
            heartbeat.watch(h for h in logger.handlers if getattr(h, "stream", None) in streams)


def outage_message(kind: str, exc: BaseException, lost: int) -> str:
    """The paragraph that says the tracking store stopped answering during a run, and what that left behind."""
    from kerasflow.budget import BUDGET_ENV, tracking_budget
    from kerasflow.tracking import tracking_uri

    uri = mask(_store_uri or tracking_uri())
    text = str(exc)
    reasons = [r for r in ("Connection refused", "timed out", "Name or service not known", "Connection reset",
                           "Remote end closed connection") if r.lower() in text.lower()]
    cause = f"last error: {reasons[0].lower()}" if reasons else (mask(text.splitlines()[0])[:200] if text else
                                                                 type(exc).__name__)
    lost_text = (f" {lost} epoch(s) of metrics queued for logging were not delivered and are lost." if lost
                 else "")
    return (f"{kind} stopped: the MLflow tracking store {uri} stopped answering and MLflow's retries "
            f"({tracking_budget()} s, {BUDGET_ENV}) ran out ({cause}).{lost_text} The MLflow run stays RUNNING "
            f"in that store until the next pipeline run on this host marks it FAILED; the Prefect flow run is "
            f"Failed. Check that `mlflow server` is running at {uri}, and MLFLOW_TRACKING_URI or "
            f"registry.tracking_uri in the config.")
