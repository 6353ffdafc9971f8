"""How a command ends: its exit statuses, its one-line errors, and the checks that end it before any work.

- 2: bad input (the config, the data, a model reference; `BadInputError`);
- 1: a failure (the tracking store or the Prefect server does not answer, a
  step crashed);
- 128 + the signal number for SIGINT or SIGTERM (`kerasflow.runtime.stopping`).

Every error is one line on stderr, `error: ...`, without a traceback.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, TypeVar

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
    from kerasflow.errors import BadInputError, describe
    from kerasflow.quiet import hide_tracebacks_for
    from kerasflow.runtime.prefect_server import PrefectServerError, prefect_api
    from kerasflow.runtime.stopping import arm_watchdog, hard_exit, stopped
    from kerasflow.stopping import interrupt_behind
    from kerasflow.tracking.infra import stop_probe

    arm_watchdog()
    watch_console()
    hide_tracebacks_for((BadInputError, KeyboardInterrupt, TerminationSignal),
                        when=lambda exc: tracking.unreachable(exc) or interrupt_behind(exc) is not None)
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
        if tracking.unreachable(exc):
            typer.echo(f"error: {outage_message(kind, exc, tracking.undelivered_epochs())}", err=True)
            hard_exit(EXIT_FAILED)
        fail(f"{kind} failed: {type(exc).__name__}: {exc}", EXIT_FAILED)


def start_heartbeat() -> None:
    """Starts the command's heartbeat (`kerasflow.progress.Heartbeat`), once: till `stop_heartbeat`, a silence prints what is going on.

    It writes to its own copy of file descriptor 2, so its lines show while
    TensorFlow's import mutes the descriptor (`kerasflow.quiet.muted_stderr`).
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
