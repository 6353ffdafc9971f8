"""The `kerasflow` command line: the Typer app and its commands.

A command checks its input (`runtime/exits.py`: exit statuses and one-line
errors), runs its flow, and prints the flow's typed result
(`runtime/printing.py`); signals and the process's exit are
`runtime/stopping.py`'s.

Each command imports what it runs (its flow, the tracking or registry
helpers) inside its function: those modules bring Prefect, MLflow, and
through them TensorFlow or Great Expectations, which must stay off the path
of `kerasflow --help` and of the commands that do not need them.
"""

from __future__ import annotations

import atexit
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from kerasflow.quiet import silence
from kerasflow.runtime.exits import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    fail,
    preflight,
    require_store,
    run_flow,
    start_heartbeat,
    stop_heartbeat,
    warm,
)
from kerasflow.runtime.printing import (
    print_prediction,
    print_retrain,
    print_search,
    print_stack,
    print_train,
    print_validation,
)
from kerasflow.runtime.stopping import exit_status_of, exit_with, install_signal_handlers, interrupt, skip_teardown


class _PlainHelp:
    """Show `--help` without Typer's `<bool>` type label, like every other flag, and `CONFIG`, not `{CONFIG}`."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    def collect_usage_pieces(self, ctx):
        # Typer writes a required argument `{CONFIG}` on the usage line; the usual form is `CONFIG`
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


class PlainHelpCommand(_PlainHelp, TyperCommand):
    """A command whose `--help` row has a plain metavar."""


class PlainHelpGroup(_PlainHelp, TyperGroup):
    """A command group whose `--help` row has a plain metavar."""


HELP = {"help_option_names": ["-h", "--help"]}  # `kerasflow -h`, `kerasflow run -h`: inherited by every command
app = typer.Typer(cls=PlainHelpGroup, help="Keras models from raw data to a tracked, tuned and promoted production model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, context_settings=HELP)
suite_app = typer.Typer(cls=PlainHelpGroup, help="Great Expectations suites.", no_args_is_help=True,
                        context_settings=HELP)
app.add_typer(suite_app, name="suite")
server_app = typer.Typer(cls=PlainHelpGroup, help="The shared local Prefect server that pipeline commands report to.",
                         no_args_is_help=True, context_settings=HELP)
app.add_typer(server_app, name="server")

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False, metavar="CONFIG")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                     help="Override a config value: section.key=value.")]

NoLintOpt = Annotated[bool, typer.Option("--no-lint", metavar="", help="Skip the design lint (`kerasflow lint`) before training.")]


def _print_version(value: bool) -> None:
    if value:
        from kerasflow.runtime.versions import version_lines

        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", metavar="", callback=_print_version, is_eager=True,
                                                   help="Print the versions of kerasflow, Prefect, MLflow, TensorFlow, Keras and GX, and exit.")] = False) -> None:
    """Keras models from raw data to a tracked, tuned and promoted production model."""


@app.command(cls=PlainHelpCommand)
def run(config: ConfigArg, set_: SetOpt = None, fresh: Annotated[bool, typer.Option(metavar="",
        help="Recompute every cached step, and start the tuner search, folds and fit over.")] = False,
        no_lint: NoLintOpt = False) -> None:
    """Run the whole pipeline: validate, split, preprocess, train, evaluate, register."""
    overrides = list(set_ or [])
    cfg = preflight(config, overrides, "train")
    server = warm(cfg)
    from kerasflow.flows.train import train_flow

    result = run_flow(lambda: train_flow(str(config), overrides, fresh=fresh, lint=not no_lint, config=cfg), server,
                      "train")  # the flow takes the config validated here: the file is read once
    print_train(result, cfg, server)


@app.command(cls=PlainHelpCommand)
def lint(config: ConfigArg, set_: SetOpt = None) -> None:
    """Check a config's design against its data with the tutorial's rules of thumb; exit 2 on an error."""
    silence()
    from kerasflow.errors import BadInputError, describe
    from kerasflow.lint import lint_config
    from kerasflow.lint.choose import lint_profile
    from kerasflow.schemas.config import ConfigError, load_config

    try:
        report = lint_config(*lint_profile(load_config(config, list(set_ or [])), str(config)))  # defaults as a run
    except (ConfigError, BadInputError) as exc:
        fail(describe(exc) if isinstance(exc, BadInputError) and not isinstance(exc, ConfigError) else str(exc),
              EXIT_BAD_INPUT)
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command(cls=PlainHelpCommand)
def tune(config: ConfigArg, set_: SetOpt = None, fresh: Annotated[bool, typer.Option(metavar="",
        help="Start the search over instead of resuming it.")] = False, no_lint: NoLintOpt = False) -> None:
    """Run only the hyperparameter search of a config's tuning section and print its trials."""
    overrides = list(set_ or [])
    cfg = preflight(config, overrides, "tune")
    if cfg.tuning is None:
        fail(f"{config} has no tuning section: add one with a search space (see configs/wine_tuned.yaml)",
              EXIT_BAD_INPUT)
    server = warm(cfg)
    from kerasflow.flows.tune import tune_flow

    result = run_flow(lambda: tune_flow(str(config), overrides, fresh=fresh, lint=not no_lint, config=cfg), server,
                      "tune")
    print_search(result, cfg)


@app.command(cls=PlainHelpCommand)
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Validate the raw data against the config's expectation suite only."""
    overrides = list(set_ or [])
    cfg = preflight(config, overrides, "validate")
    server = warm(cfg, heavy=cfg.data.image is not None)
    from kerasflow.flows.validate import validate_flow

    result = run_flow(lambda: validate_flow(str(config), overrides, config=cfg), server, "validate")
    print_validation(result, cfg)


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
        fail(str(exc), EXIT_BAD_INPUT)
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
        fail(str(exc), EXIT_FAILED)
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
        fail(str(exc), EXIT_FAILED)
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
    """Open the MLflow UI on the local store; Ctrl-C or SIGTERM stops it and everything it started."""

    from kerasflow.runtime.ui import UIError, UIServer
    from kerasflow.secrets import mask
    from kerasflow.stopping import Terminated
    from kerasflow.tracking import prepare_store, tracking_uri

    uri = tracking_uri()
    prepare_store(uri)  # created or migrated under the store's lock, not by `mlflow ui` racing a run
    server = UIServer(uri, port)
    typer.echo(f"starting the MLflow UI on the store {mask(uri)} ({server.workers} worker(s); its output goes to "
               f"{server.log}) ...")
    failure = None
    try:
        server.start(progress=lambda waited: typer.echo(f"  still starting the MLflow UI ({waited:.0f} s) ..."))
        typer.echo(f"MLflow UI on {server.url}; Ctrl-C stops it")
        failure = f"the MLflow UI exited on its own with status {server.wait()}; see {server.log}"
    except UIError as exc:
        failure = str(exc)
    except (KeyboardInterrupt, Terminated):
        pass
    finally:
        handlers = {signum: signal.signal(signum, signal.SIG_IGN)  # stopping takes a few seconds: not interrupted
                    for signum in (signal.SIGINT, signal.SIGTERM)}
        server.stop()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if failure:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo("stopped the MLflow UI")


@app.command(cls=PlainHelpCommand)
def retrain(config: ConfigArg, set_: SetOpt = None, source: Annotated[Optional[str], typer.Option(metavar="PATH",
        help="Data file or glob (newest match) overriding data.source.")] = None,
        force: Annotated[bool, typer.Option(metavar="",
            help="Retrain even when the data, config and code equal those of the champion's training run.")] = False,
        ) -> None:
    """Retrain on the newest data; promote the challenger to @champion only if it passes the gate."""
    overrides = list(set_ or [])
    cfg = preflight(config, [*overrides, *([f"data.source={source}"] if source else [])], "retrain")
    server = warm(cfg)
    from kerasflow.flows.retrain import retrain_flow

    result = run_flow(lambda: retrain_flow(str(config), overrides, source, force=force, config=cfg), server,
                      "retrain")
    print_retrain(result, cfg)


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

    require_store(None)
    try:  # a wrong name or alias fails here, before any flow starts
        model = resolve_model(tracking.configure(), model_uri)
    except BadInputError as exc:
        fail(describe(exc), EXIT_BAD_INPUT)
    from kerasflow.runtime.warmup import warm_start

    server = warm_start(validation=False)  # the rows are checked by vectorized counts, not a GX worker
    from kerasflow.tracking.artifacts import preload_model  # deferred: MLflow

    preload_model(model.version_uri)  # TensorFlow and the model load while the flow starts
    from kerasflow.flows.batch_predict import batch_predict_flow

    result = run_flow(lambda: batch_predict_flow(model_uri, input_path, str(out) if out else None), server,
                       "predict")
    print_prediction(result)


@app.command(cls=PlainHelpCommand)
def promote(name: Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")],
            version: Annotated[str, typer.Argument(metavar="VERSION", help="The version to make champion.")]) -> None:
    """Make a model version the champion by hand; the replaced one becomes @previous-champion."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.registry import promote as promote_version

    require_store(None)
    try:
        plan = promote_version(tracking.configure(), name, version)
    except BadInputError as exc:
        fail(describe(exc), EXIT_BAD_INPUT)
    moves = ", ".join(f"@{alias} -> v{v}" for alias, v in plan.set.items())
    typer.echo(f"{name}: {moves}")


@app.command(cls=PlainHelpCommand)
def card(reference: Annotated[str, typer.Argument(
        metavar="NAME[@ALIAS|/VERSION]",
        help="A registered version: NAME@candidate, NAME/3, or NAME (its champion, else its newest version).")]) -> None:
    """Print a registered version's model card (Markdown): intended use, data, metrics, decisions, lineage."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.cards import find_card

    require_store(None)
    try:
        _, text = find_card(tracking.configure(), reference)
    except BadInputError as exc:
        fail(describe(exc), EXIT_BAD_INPUT)
    typer.echo(text.rstrip("\n"))


@app.command(cls=PlainHelpCommand)
def rollback(name: Annotated[str, typer.Argument(metavar="NAME", help="Registered model name.")]) -> None:
    """Move @champion back to @previous-champion; the demoted version gets @rolled-back."""
    silence()
    from kerasflow import tracking
    from kerasflow.errors import BadInputError, describe
    from kerasflow.tracking.registry import rollback as rollback_champion

    require_store(None)
    try:
        plan = rollback_champion(tracking.configure(), name)
    except BadInputError as exc:
        fail(describe(exc), EXIT_BAD_INPUT)
    typer.echo(f"{name}: @champion -> v{plan.set['champion']} (v{plan.set['rolled-back']} is now @rolled-back)")


@app.command(cls=PlainHelpCommand)
def init(directory: Annotated[Path, typer.Argument(metavar="DIR", help="The new project's folder (created if missing).")],
         force: Annotated[bool, typer.Option("--force", metavar="", help=(
             "Write into a non-empty folder; files of the same names are replaced."))] = False) -> None:
    """Write a new project into DIR: configs/, prefect.yaml, a sample config on a bundled dataset, a README."""
    from kerasflow.runtime.scaffold import ScaffoldError, init_project

    try:
        made = init_project(directory, force=force)
    except ScaffoldError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    typer.echo("\n".join(made.describe(str(directory))))


@app.command(cls=PlainHelpCommand)
def serve(
    home: Annotated[Path, typer.Option(metavar="PATH", help="Project folder with prefect.yaml.")] = Path("."),
    prefect_port: Annotated[Optional[int], typer.Option(metavar="PORT",
        help=("Port for the shared Prefect server if none runs yet. Default: KERASFLOW_PREFECT_PORT, else 4200 "
              "(with --team: the team's Prefect server, default 4200)."),
        show_default=False)] = None,
    mlflow_port: Annotated[int, typer.Option(metavar="PORT", help="MLflow server port.")] = 5000,
    pool: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False,
        help="Process work pool name. Default: PROJECT-process (kerasflow-team with --team).")] = None,
    project: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False, help=(
        "Deploy as retrain/NAME-nightly etc., so projects sharing the Prefect server keep apart. Default: the "
        "name in prefect.yaml, else the folder's (the team stack has its own server: names as in prefect.yaml)."))
        ] = None,
    team: Annotated[bool, typer.Option("--team", metavar="", help=(
        "Run the team stack: PostgreSQL under .kerasflow/team, MLflow and Prefect servers on it, deployments "
        "that clone the code from git (docs/team.md)."))] = False,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help=(
        "With --team: the address the servers listen on; 0.0.0.0 lets workers on other hosts in. Any address "
        "but 127.0.0.1 turns on logins (MLflow basic-auth, Prefect's auth string; docs/team.md)."))] = "127.0.0.1",
    advertise: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False, help=(
        "With --team --host 0.0.0.0: the name workers on other hosts use. Default: this machine's full name, else its address (not loopback)."))] = None,
    postgres_port: Annotated[int, typer.Option(metavar="PORT", help="With --team: PostgreSQL's port.")] = 5433,
    repository: Annotated[Optional[str], typer.Option(metavar="URL", show_default=False, help=(
        "With --team: the git repository the deployments clone. Default: the origin remote."))] = None,
    branch: Annotated[Optional[str], typer.Option(metavar="NAME", show_default=False, help=(
        "With --team: the branch they clone. Default: the current branch."))] = None,
) -> None:
    """Use or start the shared Prefect server; start work pool, deployments, worker and MLflow UI; Ctrl-C stops them.

    With --team: PostgreSQL, and MLflow and Prefect servers on it, for workers on other hosts (docs/team.md).
    """
    from kerasflow.runtime.projects import project_name
    from kerasflow.runtime.stack import Stack, StackError, StackSettings, write_env_file
    from kerasflow.runtime.team import TEAM_POOL, TeamSettings, TeamStack
    from kerasflow.secrets import mask

    silence()
    common = {"home": home, "prefect_port": prefect_port, "mlflow_port": mlflow_port,
              "pool": pool or (TEAM_POOL if team else None)}
    if team and project:
        fail("--project names the deployments on the shared Prefect server; the team stack runs its own server "
             "and deploys the names of prefect.yaml: drop --project", EXIT_BAD_INPUT)
    try:
        if team:
            settings = TeamSettings(**common, host=host, advertise=advertise, postgres_port=postgres_port,
                                    repository=repository, branch=branch)
            stack = TeamStack(settings, echo=typer.echo)
        else:
            settings = StackSettings(**common, project=project or project_name(home))
            stack = Stack(settings, echo=typer.echo)
    except StackError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    signal.signal(signal.SIGTERM, interrupt)  # while starting: unwind like Ctrl-C
    failed = False
    typer.echo(f"starting the kerasflow {'team ' if team else ''}stack in {settings.home} (logs in {settings.logs})")
    start_heartbeat()  # a silence while the parts start says which part it waits for
    try:
        try:
            stack.start()
        finally:
            stop_heartbeat()
        env_file = write_env_file(settings, stack.credentials())
        print_stack(stack, env_file)
        signal.signal(signal.SIGINT, stack.stop_soon)
        signal.signal(signal.SIGTERM, stack.stop_soon)
        exited = stack.wait()
    except StackError as exc:
        typer.echo(f"error: {mask(exc)}", err=True)
        exited, failed = None, True  # said already: no "stopped unexpectedly" after it
    except KeyboardInterrupt:
        exited = None
    finally:
        typer.echo("stopping the stack ...")
        stack.stop()
        typer.echo("stopped")
    if exited:
        typer.echo(f"error: {exited} stopped unexpectedly; logs in {settings.logs}", err=True)
    if exited or failed:
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    """Console-script entry point."""

    atexit.register(skip_teardown)  # registered first, so it runs last
    install_signal_handlers()
    try:
        app()
    except SystemExit as exc:  # click turns an unhandled KeyboardInterrupt into "Aborted!" and status 1
        exit_with(exit_status_of(exc.code))
    exit_with(0)


if __name__ == "__main__":
    main()
