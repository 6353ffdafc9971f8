"""`kerasflow init DIR` writes a project that `kerasflow run` trains in and `kerasflow serve` deploys from,
under the project's own names (two projects on one Prefect server keep apart), schedules paused on stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kerasflow.runtime.cli import app
from kerasflow.runtime.processes import free_port
from kerasflow.runtime.projects import namespaced_deployments, project_name
from kerasflow.runtime.scaffold import init_project
from kerasflow.runtime.stack import Stack, StackSettings, declared_deployments

ROOT = Path(__file__).resolve().parents[1]
KERASFLOW = Path(sys.executable).with_name("kerasflow")


def test_init_writes_the_project_names_it_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    home = tmp_path / "demo project"
    result = CliRunner().invoke(app, ["init", str(home)])
    assert result.exit_code == 0, result.output
    written = {"prefect.yaml", "configs/digits.yaml", "README.md", ".gitignore", "data/incoming/digits_sample.csv",
               "data/incoming/README.md"}
    assert {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()} == written
    assert all(f"  {path}" in result.output for path in written)
    assert f"cd '{home}' && kerasflow run configs/digits.yaml" in result.output and "kerasflow serve" in result.output
    project = yaml.safe_load((home / "prefect.yaml").read_text())
    assert project["name"] == project_name(home) == "demo-project"
    assert "__PROJECT__" not in (home / "README.md").read_text() + (home / "prefect.yaml").read_text()
    assert all(d["available"] for d in declared_deployments(home)), "module entrypoints of the installed flows"

    (home / "configs/digits.yaml").write_text("edited")
    refused = CliRunner().invoke(app, ["init", str(home)])
    assert refused.exit_code == 2 and "is not empty" in refused.output and "--force" in refused.output
    assert (home / "configs/digits.yaml").read_text() == "edited", "nothing written"
    assert init_project(home, force=True).written and (home / "configs/digits.yaml").read_text() != "edited"


def test_serve_namespaces_the_deployments_by_the_project(tmp_path: Path) -> None:
    target = namespaced_deployments(ROOT / "prefect.yaml", tmp_path / "deployments.yaml", "shop", "shop-process")
    names = {d["name"]: d["work_pool"]["name"] for d in yaml.safe_load(target.read_text())["deployments"]}
    assert names == {"shop-manual": "shop-process", "shop-search": "shop-process", "shop-nightly": "shop-process",
                     "shop-default": "shop-process"}
    assert project_name(ROOT) == "kerasflow", "the name in prefect.yaml"
    assert StackSettings(home=tmp_path, project="shop").pool == "shop-process"
    assert StackSettings(home=tmp_path).pool == "kerasflow-process", "no project: the names of prefect.yaml"
    bad = CliRunner().invoke(app, ["serve", "--home", str(tmp_path), "--project", "a/b"])
    assert bad.exit_code == 2 and "project name 'a/b'" in bad.output
    team = CliRunner().invoke(app, ["serve", "--team", "--project", "shop"])
    assert team.exit_code == 2 and "drop --project" in team.output


@pytest.mark.slow
@pytest.mark.integration
def test_an_initialized_project_runs_and_its_deployments_deploy_with_schedules_paused_on_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "shop"
    init_project(home)
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "KERASFLOW_PREFECT_PORT": str(port)}
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", env["PREFECT_HOME"])
    try:
        run = subprocess.run([str(KERASFLOW), "run", "configs/digits.yaml", "--set", "training.epochs=2"],
                             capture_output=True, text=True, env=env, cwd=home, timeout=900)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        assert (home / "mlruns" / "mlflow.db").is_file(), "the project's own store"

        # What `kerasflow serve` does after its servers are up, on the shared server `kerasflow run` started.
        settings = StackSettings(home=home, prefect_port=port, project=project_name(home), state_dir=tmp_path / "state")
        stack = Stack(settings, echo=lambda line: None)
        stack.ensure_work_pool()
        assert stack.deploy() == ["shop-manual", "shop-nightly", "shop-predict"]

        def nightly() -> dict:
            return json.loads(stack.prefect("deployment", "inspect", "retrain/shop-nightly", "--output", "json").stdout)

        deployed = nightly()
        assert deployed["work_pool_name"] == "shop-process" and not deployed["paused"]
        assert deployed["entrypoint"] == "kerasflow.flows.retrain.retrain_flow"
        stack.server = object()  # as after `start`: the server answers, so `stop` pauses first
        stack.pause_schedules()
        assert nightly()["paused"], "no scheduled runs pile up while no worker serves them"
        stack.deploy()
        assert not nightly()["paused"], "the next start resumes them"
    finally:
        subprocess.run([str(KERASFLOW), "server", "stop"], env=env, cwd=home, capture_output=True, timeout=120)
