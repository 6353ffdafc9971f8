"""What a person reads first: `--version`, plain `--help`, the env file, and tasks that never retry bad input."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "kerasflow.runtime.cli"]


def test_version_names_the_libraries_and_help_imports_none_of_them() -> None:
    from importlib.metadata import version

    from kerasflow import __version__

    # one process for both: `--version` imports no heavy library; `--help` after it still neither TensorFlow
    # nor Great Expectations
    code = ("import sys; from typer.testing import CliRunner; from kerasflow.runtime.cli import app; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output; print(r.output); "
            "heavy = [m for m in ('tensorflow', 'keras', 'great_expectations', 'mlflow', 'prefect') if m in sys.modules]; "
            "assert not heavy, heavy; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "assert 'tensorflow' not in sys.modules and 'great_expectations' not in sys.modules, 'heavy import'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"kerasflow {__version__}"
    for line in (f"Prefect {version('prefect')}", f"MLflow {version('mlflow')}", f"TensorFlow {version('tensorflow')}",
                 f"Keras {version('keras')}", f"Great Expectations {version('great-expectations')}"):
        assert line in lines, (line, lines)


def test_dash_h_is_help_and_usage_shows_plain_argument_names() -> None:
    for words, usage in (([], "[OPTIONS] COMMAND [ARGS]..."), (["run"], "run [OPTIONS] CONFIG"),
                         (["server", "status"], "server status [OPTIONS]")):
        short = subprocess.run([*CLI, *words, "-h"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "120"})
        assert short.returncode == 0, (words, short.stderr)
        assert usage in short.stdout and "{" not in short.stdout.splitlines()[1], short.stdout
        long = subprocess.run([*CLI, *words, "--help"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "120"})
        assert long.stdout == short.stdout


# Every command's `--help`, rendered in one fresh process (an interpreter start per command cost ~30 of them):
# the words of each command, then its exit code and output, as JSON.
EVERY_HELP = """
import json
from typer.main import get_command
from typer.testing import CliRunner
from kerasflow.runtime.cli import app

commands = [[]]
for name, command in get_command(app).commands.items():
    commands.append([name])
    commands += [[name, sub] for sub in getattr(command, "commands", {})]
answers = []
for words in commands:
    result = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "120"})
    answers.append([words, result.exit_code, result.output])
print(json.dumps(answers))
"""


def test_help_shows_plain_metavars() -> None:
    import json

    out = subprocess.run([sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "120"}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)
    assert len(answers) > 10 and [] in [words for words, _, _ in answers]
    for words, code, output in answers:
        assert code == 0, (words, output)
        options = [line for line in output.splitlines() if "--" in line]
        assert not [line for line in options if "<bool>" in line or "<str>" in line], (words, options)
    run_help = subprocess.run([*CLI, "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "KEY=VALUE" in run_help and "CONFIG" in run_help


def test_the_env_file_puts_the_environment_on_path(tmp_path: Path) -> None:
    from kerasflow.runtime.stack import StackSettings, write_env_file

    settings = StackSettings(home=tmp_path, prefect_port=4321, state_dir=tmp_path)
    text = write_env_file(settings).read_text()
    assert f"export PATH={Path(sys.executable).parent}:" in text
    shell = subprocess.run(["bash", "-c", f"source {tmp_path / 'env'} && command -v prefect && command -v kerasflow"],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert shell.returncode == 0, shell.stderr


def test_no_task_retries_bad_input() -> None:
    from prefect import Task

    import kerasflow.tasks
    from kerasflow.tasks.policies import transient

    retrying = []
    for module in pkgutil.iter_modules(kerasflow.tasks.__path__):
        for value in vars(importlib.import_module(f"kerasflow.tasks.{module.name}")).values():
            if isinstance(value, Task) and value.retries:
                retrying.append(value.name)
                assert value.retry_condition_fn is transient, f"{value.name} retries without the transient condition"
    assert {"load-data", "read-input", "find-champion", "register-model"} <= set(retrying)
