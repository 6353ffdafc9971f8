"""The `kerasflow` command line.

Heavy libraries (TensorFlow, MLflow, Prefect, Great Expectations) are
imported inside the commands, so `kerasflow --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kerasflow.quiet import silence

app = typer.Typer(help="Keras models from raw data to a tracked, tuned and promoted production model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
suite_app = typer.Typer(help="Great Expectations suites.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")

ConfigArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config value: section.key=value.")]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


@app.command()
def run(config: ConfigArg, set_: SetOpt = None, fresh: Annotated[bool, typer.Option(
        help="Start a tuner search over instead of resuming it.")] = False) -> None:
    """Run the whole pipeline: validate, split, preprocess, train, evaluate, register."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "train")
    from kerasflow.quiet import import_tensorflow

    import_tensorflow()
    from flows.train import train_flow

    result = _run_flow(lambda: train_flow(str(config), overrides), cfg, "train")
    _print_result(result, cfg)


@app.command()
def validate(config: ConfigArg, set_: SetOpt = None) -> None:
    """Validate the raw data against the config's expectation suite only."""
    overrides = list(set_ or [])
    cfg = _preflight(config, overrides, "validate")
    from flows.validate import validate_flow

    result = _run_flow(lambda: validate_flow(str(config), overrides), cfg, "validate")
    typer.echo(f"data passed {result['expectations']} expectations of suite {cfg.validation.suite}")
    typer.echo(f"MLflow run: {result['run_id']}")


@suite_app.command("init")
def suite_init(
    data: Annotated[str, typer.Argument(help="Known-good data: a built-in name, CSV or Parquet file.")],
    target: Annotated[str, typer.Option(help="The label column.")],
    out: Annotated[Optional[Path], typer.Option(help="Where to write the suite JSON.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Suite name. Default: the data file's stem.")] = None,
) -> None:
    """Write a starter expectation suite from a known-good data file."""
    silence()
    from tasks.load import DataLoadError, load_frame
    from tasks.validate import build_suite, write_suite

    suite_name = name or Path(data).stem
    try:
        frame = load_frame(data)
        if target not in frame.columns:
            raise DataLoadError(f"target column {target!r} is not in {data}; columns: {list(frame.columns)}")
    except DataLoadError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    path = write_suite(build_suite(frame, target, name=suite_name), out or Path("schemas/suites") / f"{suite_name}.json")
    typer.echo(f"wrote {path} ({len(frame)} rows, {frame.shape[1]} columns)")


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000) -> None:
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


def main() -> None:
    """Console-script entry point."""
    app()


def _preflight(config: Path, overrides: list[str], kind: str) -> Any:
    """Validates the config before any work; a bad one is recorded as a FAILED run."""
    silence()
    from schemas.config import ConfigError, load_config, read_raw_config

    try:
        return load_config(config, overrides)
    except ConfigError as exc:
        _record_bad_config(config, kind, exc, read_raw_config)
        _fail(str(exc), EXIT_BAD_INPUT)


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


def _run_flow(call: Any, cfg: Any, kind: str) -> dict[str, Any]:
    from kerasflow.errors import BAD_INPUT_ERRORS, describe
    from kerasflow.quiet import hide_tracebacks_for

    hide_tracebacks_for(BAD_INPUT_ERRORS)
    try:
        return call()
    except BAD_INPUT_ERRORS as exc:
        _fail(describe(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        _fail(f"{kind} failed: {type(exc).__name__}: {exc}", EXIT_FAILED)


def _print_result(result: dict[str, Any], cfg: Any) -> None:
    from kerasflow.tracking import tracking_uri

    typer.echo("")
    typer.echo(f"pipeline {cfg.name}: test metrics")
    for name, value in result["metrics"].items():
        if not name.startswith("class."):
            typer.echo(f"  {name:<14} {value:.4f}")
    typer.echo(f"MLflow run:  {result['run_id']}  (experiment {result['experiment_id']}, store {tracking_uri(cfg.registry.tracking_uri)})")
    if result.get("version"):
        blessed = "blessed as @candidate" if result.get("blessed") else "not blessed"
        typer.echo(f"model:       models:/{cfg.model_name}/{result['version']}  ({blessed})")
        for reason in result.get("reasons", []):
            typer.echo(f"  gate: {reason}")
    typer.echo("open the UI: kerasflow ui   (then http://127.0.0.1:5000)")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


if __name__ == "__main__":
    main()
