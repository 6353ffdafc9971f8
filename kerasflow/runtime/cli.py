"""The `kerasflow` command line.

Each command imports what it runs (its flow, the tracking or registry
helpers) inside its function: those modules bring Prefect, MLflow, and
through them TensorFlow or Great Expectations, which must stay off the path
of `kerasflow --help` and of the commands that do not need them.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from kerasflow.quiet import silence


class _PlainHelp:
    """Show `--help` without Typer's `<bool>` type label, like every other flag."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class PlainHelpCommand(_PlainHelp, TyperCommand):
    """A command whose `--help` row has a plain metavar."""


class PlainHelpGroup(_PlainHelp, TyperGroup):
    """A command group whose `--help` row has a plain metavar."""


app = typer.Typer(cls=PlainHelpGroup, help="Keras models from raw data to a tracked, tuned and promoted production model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
suite_app = typer.Typer(cls=PlainHelpGroup, help="Great Expectations suites.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")
server_app = typer.Typer(cls=PlainHelpGroup, help="The shared local Prefect server that pipeline commands report to.",
                         no_args_is_help=True)
app.add_typer(server_app, name="server")

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False, metavar="CONFIG")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                     help="Override a config value: section.key=value.")]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


NoLintOpt = Annotated[bool, typer.Option("--no-lint", metavar="", help="Skip the design lint (`kerasflow lint`) before training.")]


def _print_version(value: bool) -> None:
    if value:
        from kerasflow import __version__

        typer.echo(f"kerasflow {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", metavar="", callback=_print_version, is_eager=True,
                                                   help="Print the kerasflow version and exit.")] = False) -> None:
    """Keras models from raw data to a tracked, tuned and promoted production model."""


@app.command(cls=PlainHelpCommand)
def run(config: ConfigArg, set_: SetOpt = None, fresh: Annotated[bool, typer.Option(metavar="",
        help="Recompute every cached step, and start the tuner search, folds and fit over.")] = False,
        no_lint: NoLintOpt = False) -> None:
    """Run the whole pipeline: validate, split, preprocess, train, evaluate, register."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "train")
    server = _warm(cfg)
    from kerasflow.flows.train import train_flow

    result = _run_flow(lambda: train_flow(str(config), overrides, fresh=fresh, lint=not no_lint), server, "train")
    _print_result(result, cfg, server)


@app.command(cls=PlainHelpCommand)
def lint(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a config's design against its data with the tutorial's rules of thumb; exit 2 on an error."""
    silence()
    from kerasflow.errors import BadInputError, describe
    from kerasflow.lint import lint_config, profile_source
    from kerasflow.schemas.config import ConfigError, load_config

    try:
        cfg = load_config(config, list(set_ or []))
        report = lint_config(cfg, profile_source(cfg))
    except (ConfigError, BadInputError) as exc:
        _fail(describe(exc) if isinstance(exc, BadInputError) and not isinstance(exc, ConfigError) else str(exc),
              EXIT_BAD_INPUT)
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command(cls=PlainHelpCommand)
def tune(config: ConfigArg, set_: SetOpt = None, fresh: Annotated[bool, typer.Option(metavar="",
        help="Start the search over instead of resuming it.")] = False, no_lint: NoLintOpt = False) -> None:
    """Run only the hyperparameter search of a config's tuning section and print its trials."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "tune")
    if cfg.tuning is None:
        _fail(f"{config} has no tuning section: add one with a search space (see configs/wine_tuned.yaml)",
              EXIT_BAD_INPUT)
    server = _warm(cfg)
    from kerasflow.flows.tune import tune_flow

    result = _run_flow(lambda: tune_flow(str(config), overrides, fresh=fresh, lint=not no_lint), server, "tune")
    _print_search(result, cfg)


@app.command(cls=PlainHelpCommand)
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Validate the raw data against the config's expectation suite only."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "validate")
    server = _warm(cfg, heavy=cfg.data.image is not None)
    from kerasflow.flows.validate import validate_flow

    result = _run_flow(lambda: validate_flow(str(config), overrides), server, "validate")
    if cfg.validation.suite:
        verdict = "passed" if result["expectations"] else "failed (on_failure: warn)"
        typer.echo(f"data {verdict} the expectations of suite {cfg.validation.suite}")
    elif cfg.data.image is None:
        typer.echo("data passed the data contract (no expectation suite configured)")
    if cfg.data.image is not None:
        typer.echo("images passed their checks (counts per class and sizes: images/report.json in the run)")
    typer.echo(f"MLflow run: {result['run_id']}")


@suite_app.command("init", cls=PlainHelpCommand)
def suite_init(
    data: Annotated[str, typer.Argument(metavar="DATA", help="Known-good data: a built-in name, CSV or Parquet file.")],
    target: Annotated[str, typer.Option(metavar="COLUMN", help="The label column.")],
    out: Annotated[Optional[Path], typer.Option(metavar="PATH", help="Where to write the suite JSON.")] = None,
    name: Annotated[Optional[str], typer.Option(metavar="NAME", help="Suite name. Default: the data file's stem.")] = None,
    range_margin: Annotated[float, typer.Option(metavar="SHARE",
        min=0.0, help="Widen numeric bounds by this fraction of the observed range.")] = 0.1,
    out_of_range: Annotated[Optional[float], typer.Option(metavar="SHARE",
        min=0.0, max=1.0, help="Share of rows allowed outside numeric bounds (0 = strict). "
        "Default: 10/(n+1), at most 0.05.", show_default=False)] = None,
    unseen_categories: Annotated[float, typer.Option(metavar="SHARE",
        min=0.0, max=1.0, help="Share of rows allowed unseen categories, features only (0 = strict).")] = 0.01,
) -> None:
    """Write a starter expectation suite from a known-good data file (see docs/validation.md)."""
    silence()
    from kerasflow.data.expectations.draft import build_suite
    from kerasflow.data.expectations.suites import write_suite
    from kerasflow.data.load import DataLoadError, load_frame

    suite_name = name or Path(data).stem
    try:
        frame = load_frame(data)
        if target not in frame.columns:
            raise DataLoadError(f"target column {target!r} is not in {data}; columns: {list(frame.columns)}")
        suite = build_suite(frame, target, name=suite_name, range_margin=range_margin,
                            out_of_range=out_of_range, unseen_categories=unseen_categories)
    except (DataLoadError, ValueError) as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    path = write_suite(suite, out or Path("schemas/suites") / f"{suite_name}.json")
    typer.echo(f"wrote {path} ({len(frame)} rows, {frame.shape[1]} columns)")


@server_app.command("status", cls=PlainHelpCommand)
def server_status() -> None:
    """Show the shared local Prefect server: its address and whether it answers."""
    from kerasflow.runtime.prefect_server import (
        PrefectServerError,
        configured_api_url,
        prefect_home,
        server_port,
        shared_server,
    )

    silence()
    if configured_api_url():
        typer.echo(f"PREFECT_API_URL is set ({configured_api_url()}): commands report there, not to a local server")
    try:
        server = shared_server()
        port = server_port()
    except PrefectServerError as exc:
        _fail(str(exc), EXIT_FAILED)
    if server is None:
        typer.echo(f"no shared local Prefect server is running (PREFECT_HOME {prefect_home()}); "
                   f"the next pipeline command starts one on port {port}")
        return
    health = "healthy" if server.healthy() else "not answering"
    started = f"pid {server.pid}, " if server.pid else "not started in the background from this PREFECT_HOME, "
    typer.echo(f"shared local Prefect server: {server.ui_url}  ({health}; {started}PREFECT_HOME {prefect_home()})")


@server_app.command("start", cls=PlainHelpCommand)
def server_start() -> None:
    """Start the shared local Prefect server now (`prefect server start --background`; commands start it on demand)."""
    from kerasflow.runtime.prefect_server import PrefectServerError, ensure_shared_server

    silence()
    try:
        server = ensure_shared_server()
        server.wait_ready()
    except PrefectServerError as exc:
        _fail(str(exc), EXIT_FAILED)
    state = "started" if server.started else "already running"
    typer.echo(f"shared local Prefect server {state}: {server.ui_url}" + (f"  (pid {server.pid})" if server.pid else ""))


@server_app.command("stop", cls=PlainHelpCommand)
def server_stop() -> None:
    """Stop the shared local Prefect server (`prefect server stop`)."""
    from kerasflow.runtime.prefect_server import stop_shared_server

    silence()
    server = stop_shared_server()
    typer.echo(f"stopped the shared local Prefect server {server.ui_url} (pid {server.pid})" if server
               else "no shared local Prefect server was running in the background")


@app.command(cls=PlainHelpCommand)
def ui(port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1.")] = 5000) -> None:
    """Open the MLflow UI on the local store."""
    import os
    import subprocess

    from kerasflow.tracking import tracking_uri

    uri = tracking_uri()
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {uri}); Ctrl-C stops it")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    try:
        subprocess.run(cmd, env=env, check=False)
    except KeyboardInterrupt:
        pass


@app.command(cls=PlainHelpCommand)
def retrain(config: ConfigArg, set_: SetOpt = None, source: Annotated[Optional[str], typer.Option(metavar="PATH",
        help="Data file or glob (newest match) overriding data.source.")] = None,
        force: Annotated[bool, typer.Option(metavar="",
            help="Retrain even when the data, config and code equal those of the champion's training run.")] = False,
        ) -> None:
    """Retrain on the newest data; promote the challenger to @champion only if it passes the gate."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "retrain")
    server = _warm(cfg)
    from kerasflow.flows.retrain import retrain_flow

    result = _run_flow(lambda: retrain_flow(str(config), overrides, source, force=force), server, "retrain")
    _print_retrain(result, cfg)


def _print_retrain(result: dict[str, Any], cfg: Any) -> None:
    where = f"v{result['champion']}" if result["champion"] else "none yet"
    if result["outcome"] == "skipped":
        typer.echo(f"\nmodel {cfg.model_name}: nothing changed since champion v{result['compared_with']}")
        typer.echo(f"decision: skipped (no new data); @champion is {where}, nothing registered")
    else:
        typer.echo(f"\nmodel {cfg.model_name}: challenger v{result['version']} vs champion "
                   f"{'v' + result['compared_with'] if result['compared_with'] else '(none)'}")
        typer.echo(f"drift:    {result['drift']['summary'].splitlines()[0]}")
        typer.echo(f"decision: {result['outcome']} ({'promoted' if result['promoted'] else 'not promoted'}); "
                   f"@champion is {where}")
    for reason in result["reasons"]:
        typer.echo(f"  {reason}")
    typer.echo(f"MLflow run: {result['run_id']}")


@app.command(cls=PlainHelpCommand)
def predict(
    model_uri: Annotated[str, typer.Argument(metavar="MODEL_URI", help="models:/NAME@champion, models:/NAME/VERSION or any model URI.")],
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="CSV or Parquet file of raw rows, or a glob.")],
    out: Annotated[Optional[Path], typer.Option(metavar="PATH", help="Output file. Default: <input stem>.predictions.csv.")] = None,
) -> None:
    """Predict a file of raw rows with a registered model; writes the rows with predictions."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.registry import resolve_model

    _require_store(None)
    try:  # a wrong name or alias fails here, before any flow starts
        resolve_model(tracking.configure(), model_uri)
    except BadInputError as exc:
        _fail(describe(exc), EXIT_BAD_INPUT)
    from kerasflow.runtime.warmup import warm_start

    server = warm_start(validation=True)
    from kerasflow.flows.batch_predict import batch_predict_flow

    result = _run_flow(lambda: batch_predict_flow(model_uri, input_path, str(out) if out else None), server,
                       "predict")
    typer.echo(f"wrote {result['rows']} rows with predictions to {result['output']}")
    typer.echo(f"model: {result['model_uri']}   MLflow run: {result['run_id']}")


@app.command(cls=PlainHelpCommand)
def promote(name: Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")],
            version: Annotated[str, typer.Argument(metavar="VERSION", help="The version to make champion.")]) -> None:
    """Make a model version the champion by hand; the replaced one becomes @previous-champion."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.registry import promote as promote_version

    _require_store(None)
    try:
        plan = promote_version(tracking.configure(), name, version)
    except BadInputError as exc:
        _fail(describe(exc), EXIT_BAD_INPUT)
    moves = ", ".join(f"@{alias} -> v{v}" for alias, v in plan.set.items())
    typer.echo(f"{name}: {moves}")


@app.command(cls=PlainHelpCommand)
def rollback(name: Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")]) -> None:
    """Move @champion back to @previous-champion; the demoted version gets @rolled-back."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.registry import rollback as rollback_champion

    _require_store(None)
    try:
        plan = rollback_champion(tracking.configure(), name)
    except BadInputError as exc:
        _fail(describe(exc), EXIT_BAD_INPUT)
    typer.echo(f"{name}: @champion -> v{plan.set['champion']} (v{plan.set['rolled-back']} is now @rolled-back)")


@app.command(cls=PlainHelpCommand)
def serve(
    home: Annotated[Path, typer.Option(metavar="PATH", help="Project folder with prefect.yaml.")] = Path("."),
    prefect_port: Annotated[Optional[int], typer.Option(metavar="PORT",
        help=("Port for the shared Prefect server if none runs yet. Default: KERASFLOW_PREFECT_PORT, else 4200 "
              "(with --team: the team's Prefect server, default 4200)."),
        show_default=False)] = None,
    mlflow_port: Annotated[int, typer.Option(metavar="PORT", help="MLflow server port.")] = 5000,
    pool: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
        help="Process work pool name. Default: kerasflow-process (kerasflow-team with --team).")] = None,
    team: Annotated[bool, typer.Option("--team", metavar="", help=(
        "Run the team stack: PostgreSQL under .kerasflow/team, MLflow and Prefect servers on it, deployments "
        "that clone the code from git (docs/team.md)."))] = False,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help=(
        "With --team: the address the servers listen on; 0.0.0.0 lets workers on other hosts in."))] = "127.0.0.1",
    advertise: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False, help=(
        "With --team --host 0.0.0.0: the name workers on other hosts use. Default: this machine's full name."))] = None,
    postgres_port: Annotated[int, typer.Option(metavar="PORT", help="With --team: PostgreSQL's port.")] = 5433,
    repository: Annotated[Optional[str], typer.Option(metavar="URL", show_default=False, help=(
        "With --team: the git repository the deployments clone. Default: the origin remote."))] = None,
    branch: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False, help=(
        "With --team: the branch they clone. Default: the current branch."))] = None,
) -> None:
    """Use or start the shared Prefect server; start work pool, deployments, worker and MLflow UI; Ctrl-C stops them.

    With --team: PostgreSQL, and MLflow and Prefect servers on it, for workers on other hosts (docs/team.md).
    """
    from kerasflow.runtime.stack import Stack, StackError, StackSettings, write_env_file
    from kerasflow.runtime.team import TEAM_POOL, TeamSettings, TeamStack

    silence()
    common = {"home": home, "prefect_port": prefect_port, "mlflow_port": mlflow_port,
              "pool": pool or (TEAM_POOL if team else "kerasflow-process")}
    if team:
        settings = TeamSettings(**common, host=host, advertise=advertise, postgres_port=postgres_port,
                                repository=repository, branch=branch)
        stack = TeamStack(settings, echo=typer.echo)
    else:
        settings = StackSettings(**common)
        stack = Stack(settings, echo=typer.echo)
    signal.signal(signal.SIGTERM, _interrupt)  # while starting: unwind like Ctrl-C
    typer.echo(f"starting the kerasflow {'team ' if team else ''}stack in {settings.home} (logs in {settings.logs})")
    try:
        stack.start()
        env_file = write_env_file(settings)
        _print_stack(stack, env_file)
        signal.signal(signal.SIGINT, stack.stop_soon)
        signal.signal(signal.SIGTERM, stack.stop_soon)
        exited = stack.wait()
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        exited = "a part of the stack"
    except KeyboardInterrupt:
        exited = None
    finally:
        typer.echo("stopping the stack ...")
        stack.stop()
        typer.echo("stopped")
    if exited:
        typer.echo(f"error: {exited} stopped unexpectedly; logs in {settings.logs}", err=True)
        raise typer.Exit(EXIT_FAILED)


def _print_stack(stack: Any, env_file: Path) -> None:
    """Prints the addresses of a started stack and how to use it."""
    settings = stack.settings
    team = getattr(stack, "postgres", None)
    if team is not None:
        typer.echo(f"PostgreSQL:  127.0.0.1:{settings.postgres_port}   (data in {team.data})")
        typer.echo(f"Prefect UI:  {settings.prefect_ui}   (database prefect)")
        typer.echo(f"MLflow UI:   {settings.mlflow_ui}   (database mlflow, artifacts in {settings.artifacts})")
        clone = stack.source
        typer.echo(f"work pool {settings.pool}; deployments: {', '.join(stack.deployed) or 'none'}; code from "
                   f"{clone['repository']} at {clone.get('branch') or clone.get('commit_sha')}")
        from kerasflow.runtime.team import source_notes

        for note in source_notes(settings.home, clone):
            typer.echo(note)
        typer.echo(f"a worker on another host:  PREFECT_API_URL={settings.public_api_url} "
                   f"MLFLOW_TRACKING_URI={settings.public_store} KERASFLOW_HOME=<its own folder> "
                   f"prefect worker start --pool {settings.pool}")
    else:
        started = stack.server is not None and stack.server.started
        typer.echo(f"Prefect UI:  {settings.prefect_ui}   (the shared server, "
                   f"{'started now' if started else 'already running'})")
        typer.echo(f"MLflow UI:   {settings.mlflow_ui}   (store {settings.store})")
        typer.echo(f"work pool {settings.pool}; deployments: {', '.join(stack.deployed) or 'none'}")
    typer.echo(f"in another shell:  source {env_file} && prefect deployment run 'retrain/nightly'")
    if team is not None:
        typer.echo("Ctrl-C stops the worker and the servers" + (", and PostgreSQL" if stack.postgres_started else
                   "; PostgreSQL was already running and keeps running"))
    else:
        typer.echo("Ctrl-C stops the worker and the MLflow UI" + (", and the Prefect server" if started else
                   "; the shared Prefect server keeps running (`kerasflow server stop` stops it)"))


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


_signal_received: int | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C (outside a flow; inside one, Prefect raises its `TerminationSignal`)."""

    signal = int(signal.SIGTERM)


def _on_signal(signum: int, _frame: Any) -> None:
    global _signal_received
    _signal_received = signum
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _install_signal_handlers() -> None:
    """SIGINT and SIGTERM unwind the command (closing its runs); it then exits 128 + the signal number.

    Inside a flow Prefect replaces the SIGTERM handler with its own, which
    raises `TerminationSignal` and marks the flow run Crashed; `_run_flow`
    handles both.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread
            return


def main() -> None:
    """Console-script entry point."""
    import atexit

    atexit.register(_skip_teardown)  # registered first, so it runs last
    _install_signal_handlers()
    try:
        app()
    except SystemExit as exc:  # click turns an unhandled KeyboardInterrupt into "Aborted!" and status 1
        _exit(128 + _signal_received if _signal_received and exc.code == 1 else exc.code)
    _exit(0)


_exit_status: int | None = None


def _exit(code: Any) -> None:
    """Exits with `code`, skipping interpreter teardown once TensorFlow is loaded.

    Tearing down the modules of TensorFlow, MLflow and Prefect takes about
    1.6 s after the work is done. The exit is otherwise a normal one: threads
    are joined and every `atexit` handler runs (Prefect and MLflow flush
    there; temporary servers and the validation worker stop); then
    `_skip_teardown`, the first handler registered and so the last to run,
    ends the process without the module teardown.
    """
    global _exit_status
    _exit_status = code if isinstance(code, int) else (0 if code is None else 1)
    raise SystemExit(code)


def _skip_teardown() -> None:
    """The last `atexit` handler: after `_exit`, with TensorFlow loaded, ends the process at once."""
    if _exit_status is None or "tensorflow" not in sys.modules:
        return
    import logging
    import os

    logging.shutdown()  # its own handler was registered before this one, so would not run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


def _preflight(config: Path, overrides: list[str], kind: str) -> Any:
    """Validates the config, then checks its tracking store answers, before any work.

    A bad config is recorded as a FAILED run; a store that does not answer
    stops the command (exit 1) before any server starts.
    """
    silence()
    from kerasflow.schemas.config import ConfigError, load_config, read_raw_config

    try:
        cfg = load_config(config, overrides)
    except ConfigError as exc:
        _record_bad_config(config, kind, exc, read_raw_config)
        _fail(str(exc), EXIT_BAD_INPUT)
    typer.echo(f"kerasflow {kind}: pipeline {cfg.name} from {config}", err=True)  # something within 2 s
    _require_store(cfg.registry.tracking_uri)
    return cfg


_store_uri: str | None = None  # the tracking store of this command, once checked


def _require_store(configured: str | None) -> str:
    """Stops the command (exit 1, one paragraph) unless its tracking store answers; returns its URI."""
    global _store_uri
    from kerasflow.budget import tracking_budget
    from kerasflow.runtime.stores import StoreUnreachable, check_store
    from kerasflow.tracking import tracking_uri

    try:
        tracking_budget()
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    uri = tracking_uri(configured)
    try:
        check_store(uri)
    except StoreUnreachable as exc:
        _fail(str(exc), EXIT_FAILED)
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
        typer.echo(f"could not record the failure in MLflow: {record_error}", err=True)


def _warm(cfg: Any, heavy: bool = True) -> Any:
    """Starts the validation worker and the Prefect server while heavy libraries import."""
    from kerasflow.runtime.prefect_server import PrefectServerError
    from kerasflow.runtime.warmup import warm_start

    try:
        return warm_start(validation=cfg.validation.suite is not None, heavy=heavy)
    except PrefectServerError as exc:
        _fail(str(exc), EXIT_FAILED)
    except ValueError as exc:  # a bad KERASFLOW_LOW_MEMORY value
        _fail(str(exc), EXIT_BAD_INPUT)


def _run_flow(call: Any, server: Any, kind: str) -> dict[str, Any]:
    from prefect.exceptions import TerminationSignal

    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe, interrupt_behind
    from kerasflow.quiet import hide_tracebacks_for
    from kerasflow.runtime.prefect_server import PrefectServerError, prefect_api
    from kerasflow.runtime.watchdog import arm_watchdog

    arm_watchdog()
    hide_tracebacks_for((BadInputError, KeyboardInterrupt, TerminationSignal),
                        when=lambda exc: tracking.unreachable(exc) or interrupt_behind(exc) is not None)
    try:
        with prefect_api(server):
            if server is not None and server.started and server.shared:
                typer.echo(f"started a local Prefect server at {server.ui_url}; it stays up for the next runs "
                           f"(`kerasflow server stop` stops it)", err=True)
            return call()
    except PrefectServerError as exc:
        _fail(str(exc), EXIT_FAILED)
    except BadInputError as exc:
        _fail(describe(exc), EXIT_BAD_INPUT)
    except (KeyboardInterrupt, TerminationSignal) as exc:
        _stopped(kind, exc)
    except Exception as exc:
        if (stop := interrupt_behind(exc)) is not None:  # outside a pipeline run, which raises it itself
            _stopped(kind, stop)
        if tracking.unreachable(exc):
            typer.echo(f"error: {_outage_message(kind, exc, tracking.undelivered_epochs())}", err=True)
            _hard_exit(EXIT_FAILED)
        _fail(f"{kind} failed: {type(exc).__name__}: {exc}", EXIT_FAILED)


def _stopped(kind: str, exc: BaseException | None) -> None:
    """Says which signal stopped the flow and exits 128 + its number."""
    signum = getattr(exc, "signal", None) or _signal_received or (
        signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C (SIGINT)"
    typer.echo(f"error: {kind} stopped by {name}: the MLflow run and its nested runs are marked KILLED, "
               f"the Prefect flow run Crashed", err=True)
    _hard_exit(128 + int(signum))


def _outage_message(kind: str, exc: BaseException, lost: int) -> str:
    from kerasflow.budget import BUDGET_ENV, tracking_budget
    from kerasflow.tracking import tracking_uri

    uri = _store_uri or tracking_uri()
    text = str(exc)
    reasons = [r for r in ("Connection refused", "timed out", "Name or service not known", "Connection reset",
                           "Remote end closed connection") if r.lower() in text.lower()]
    cause = f"last error: {reasons[0].lower()}" if reasons else (text.splitlines()[0][:200] if text else
                                                                 type(exc).__name__)
    lost_text = (f" {lost} epoch(s) of metrics queued for logging were not delivered and are lost." if lost
                 else "")
    return (f"{kind} stopped: the MLflow tracking store {uri} stopped answering and MLflow's retries "
            f"({tracking_budget()} s, {BUDGET_ENV}) ran out ({cause}).{lost_text} The MLflow run stays RUNNING "
            f"in that store until the next pipeline run on this host marks it FAILED; the Prefect flow run is "
            f"Failed. Check that `mlflow server` is running at {uri}, and MLFLOW_TRACKING_URI or "
            f"registry.tracking_uri in the config.")


def _hard_exit(code: int) -> None:
    """Exits now, without waiting for worker threads or MLflow's queued async logging.

    After an interrupt or a store outage, training may go on in a worker
    thread and MLflow's exit handler would retry every queued batch against
    a store that is gone; the runs are already closed (or reported), so the
    process ends here after flushing its output and logs (at most 5 s).
    """
    import logging
    import os
    import threading

    flusher = threading.Thread(target=logging.shutdown, daemon=True)
    flusher.start()
    flusher.join(timeout=5)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _print_result(result: dict[str, Any], cfg: Any, server: Any = None) -> None:
    from kerasflow.tracking import tracking_uri

    typer.echo("")
    typer.echo(f"pipeline {cfg.name}: test metrics")
    shown = {k: v for k, v in result["metrics"].items()  # per-class scores (`[<output>.]class.*`) stay in MLflow
             if not (k.startswith("class.") or ".class." in k)}
    width = max([14, *(len(k) for k in shown)])
    for name, value in shown.items():
        typer.echo(f"  {name:<{width}} {value:.4f}")
    typer.echo(f"MLflow run:  {result['run_id']}  (experiment {result['experiment_id']}, store {tracking_uri(cfg.registry.tracking_uri)})")
    if result.get("version"):
        blessed = "blessed as @candidate" if result.get("blessed") else "not blessed"
        typer.echo(f"model:       models:/{cfg.model_name}/{result['version']}  ({blessed})")
        for reason in result.get("reasons", []):
            typer.echo(f"  gate: {reason}")
    _print_links(result, cfg, server)


def _print_links(result: dict[str, Any], cfg: Any, server: Any = None) -> None:
    """Prints the run's pages in the MLflow and Prefect UIs, at the addresses actually in use."""
    import os

    from kerasflow.tracking import run_url, tracking_uri

    uri = tracking_uri(cfg.registry.tracking_uri)
    url = result.get("mlflow_url") or run_url(result["experiment_id"], result["run_id"], uri)
    local = not uri.startswith(("http://", "https://")) and "KERASFLOW_MLFLOW_UI_URL" not in os.environ
    typer.echo(f"MLflow UI:   {url}" + ("  (start it with `kerasflow ui`)" if local else ""))
    flow_url = result.get("prefect_url")
    if flow_url:
        typer.echo(f"Prefect UI:  {flow_url}")
    elif server is not None and server.shared:
        typer.echo(f"Prefect UI:  {server.ui_url}/runs")


def _print_search(result: dict[str, Any], cfg: Any) -> None:
    resumed = len(result["trials"]) - result["new_trials"]
    typer.echo("")
    typer.echo(f"pipeline {cfg.name}: {cfg.tuning.tuner} search, {len(result['trials'])} trials "
               f"({result['new_trials']} new, {resumed} resumed from {result['directory']})")
    typer.echo(result["summary"])
    typer.echo(f"best {result['objective']}: {result['score']:.4f} after {result['epochs']} epochs")
    for name, value in result["hyperparameters"].items():
        typer.echo(f"  {name} = {value}")
    typer.echo(f"MLflow run:  {result['run_id']}  (experiment {result['experiment_id']})")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


if __name__ == "__main__":
    main()
