"""The team stack for real: PostgreSQL (initdb, pg_ctl), MLflow and Prefect servers on it, a worker elsewhere.

The servers listen on 127.0.0.2 (not the default 127.0.0.1), which turns on
the logins: MLflow's basic-auth app and Prefect's API auth string. The
worker, the flow runs and the test's clients log in with the generated
credentials; requests without them are refused with HTTP 401.

A bare clone of this repository stands for the team's git remote. The
worker runs in a folder of its own, and each flow run clones the code from
that remote. The test trains through the `manual` deployment while it
retrains twice through `nightly` (one retraining at a time, the deployment's
limit), and checks runs, versions and aliases through the MLflow client
against the PostgreSQL-backed server. Everything is stopped at the end.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
import requests

from kerasflow.runtime.postgres import PostgresError, find_binary
from kerasflow.runtime.processes import free_port
from kerasflow.runtime.stack import StackError, StackSettings, write_env_file
from kerasflow.runtime.team import TeamSettings, TeamStack, git_source

ROOT = Path(__file__).resolve().parents[1]
MODEL = "iris-team"
AUTH_HOST = "127.0.0.2"  # not 127.0.0.1: logins on
ECHOED: list[str] = []  # what the stack printed
pytestmark = pytest.mark.slow  # starts PostgreSQL and two servers


def _postgres_missing() -> str:
    try:
        find_binary("initdb")
        find_binary("pg_ctl")
    except PostgresError as exc:
        return str(exc)
    return ""


@pytest.fixture(scope="module")
def team():
    if _postgres_missing():
        pytest.skip(_postgres_missing())
    # mode 0755: under root PostgreSQL runs as the `postgres` user, which must reach its data directory
    state = Path(tempfile.mkdtemp(prefix="kerasflow-team-"))
    state.chmod(0o755)
    origin = state / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(origin)], check=True, timeout=120)
    source = git_source(ROOT)
    settings = TeamSettings(home=ROOT, state_dir=state, prefect_port=free_port(), mlflow_port=free_port(),
                            postgres_port=free_port(), repository=f"file://{origin}", branch=source.get("branch"),
                            deployments=["manual", "nightly"], worker_poll_seconds=1, host=AUTH_HOST)
    stack = TeamStack(settings, echo=ECHOED.append)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        assert not stack.postgres.running(), "PostgreSQL is stopped with the stack"
        shutil.rmtree(state, ignore_errors=True)


def _run_deployment(stack: TeamStack, name: str, overrides: list[str]) -> str:
    proc = stack.prefect("deployment", "run", name, "--param", "config_path=configs/iris.yaml",
                         "--param", f"overrides={json.dumps(overrides)}", "--watch", "--watch-interval", "1",
                         "--watch-timeout", "300", check=False, timeout=360)
    log = (stack.settings.logs / "worker.log").read_text(errors="replace")[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + log
    return re.search(r"UUID: ([0-9a-f-]{36})", proc.stdout).group(1)


def test_deployments_clone_the_code_and_report_to_the_postgres_backed_servers(team: TeamStack, monkeypatch) -> None:
    settings = team.settings
    for name, value in team.credentials().items():  # as `source .kerasflow/env` does
        monkeypatch.setenv(name, value)
    deployment = json.loads(team.prefect("deployment", "inspect", "retrain/nightly", "--output", "json").stdout)
    clone, enter = deployment["pull_steps"]
    assert clone["prefect.deployments.steps.git_clone"]["repository"].endswith("origin.git")
    assert enter == {"kerasflow.runtime.pull_steps.enter_project": {"directory": "{{ clone.directory }}"}}
    assert deployment["work_pool_name"] == "kerasflow-team"

    base = ["training.epochs=3", f"registry.model_name={MODEL}",
            "registry.gate.thresholds=[{metric: accuracy, min: 0.0}]"]
    with ThreadPoolExecutor(1) as beside:  # the worker runs the manual training beside the first retraining
        training = beside.submit(_run_deployment, team, "train/manual", base)
        retrained = [_run_deployment(team, "retrain/nightly", base + [f"split.seed={seed}"]) for seed in (1, 2)]
        trained = training.result()

    client = mlflow.MlflowClient(settings.store, settings.store)
    experiment = client.get_experiment_by_name("iris")
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), "artifacts go through the server"
    runs = {}
    for flow_run_id in (trained, *retrained):
        (run,) = client.search_runs([experiment.experiment_id], f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
        assert run.info.status == "FINISHED"
        runs[flow_run_id] = run
    assert runs[trained].data.tags["kerasflow.kind"] == "train"
    decisions = [runs[r].data.tags["kerasflow.decision"] for r in retrained]
    assert decisions[0] == "first-champion" and decisions[1] in ("promoted", "rejected")
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 3, "one version per run"
    champion = str(client.get_registered_model(MODEL).aliases["champion"])
    promoted = [runs[r] for r, d in zip(retrained, decisions) if d != "rejected"][-1]
    assert champion == promoted.data.tags["kerasflow.model_version"]
    artifacts = {a.path for a in client.list_artifacts(promoted.info.run_id)}
    assert artifacts, "artifacts were uploaded through the MLflow server"

    # the stores are PostgreSQL: the runs are rows of the `mlflow` database
    rows = subprocess.run([str(find_binary("psql")), "-h", "127.0.0.1", "-p", str(settings.postgres_port), "-U", "kerasflow", "-tA",
                           "-c", "select count(*) from runs", "mlflow"], capture_output=True, text=True,
                          env={"PGPASSWORD": team.postgres.password, "PATH": "/usr/bin:/bin"}, timeout=30)
    assert int(rows.stdout.strip()) >= 3, rows.stderr
    assert requests.get(f"{settings.api_url}/health", timeout=10).ok
    assert ROOT not in settings.worker_dir.parents, "the worker ran outside the project folder"
    secrets = set(team.credentials().values())
    recorded = [str(v) for run in runs.values() for v in (*run.data.params.values(), *run.data.tags.values())]
    assert not [v for v in recorded + ECHOED if any(secret in v for secret in secrets)], "no secret recorded"


def _ws_events_out(settings: TeamSettings, token: str | None) -> str:
    """Opens Prefect's events websocket with the given token; returns how the server answered."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://{settings.host}:{settings.prefect_port}/api/events/out", subprotocols=["prefect"],
                 open_timeout=20) as socket:
        socket.send(json.dumps({"type": "auth", "token": token}))
        try:
            return json.loads(socket.recv(timeout=30))["type"]  # "auth_success"
        except ConnectionClosed as exc:
            return f"closed {exc.rcvd.code}"


def test_without_credentials_the_servers_refuse_requests(team: TeamStack) -> None:
    settings, logins = team.settings, team.credentials()
    assert settings.host == AUTH_HOST and settings.auth
    user, password = logins["MLFLOW_TRACKING_USERNAME"], logins["MLFLOW_TRACKING_PASSWORD"]
    search = f"{settings.mlflow_ui}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=(user, "wrong"), timeout=30).status_code == 401
    assert requests.get(search, auth=(user, password), timeout=30).status_code == 200
    assert requests.get(f"{settings.mlflow_ui}/health", timeout=30).status_code == 200  # unprotected

    # a per-user account, made as docs/team.md shows (the admin creates it; everyone may read by default)
    from mlflow.server import get_app_client

    with pytest.MonkeyPatch.context() as patch:
        for name, value in logins.items():
            patch.setenv(name, value)
        get_app_client("basic-auth", tracking_uri=settings.mlflow_ui).create_user("alice", "alice-password-1")
    assert requests.get(search, auth=("alice", "alice-password-1"), timeout=30).status_code == 200

    api, token = settings.api_url, base64.b64encode(logins["PREFECT_API_AUTH_STRING"].encode()).decode()
    for path in ("/flows/filter", "/deployments/filter"):
        assert requests.post(f"{api}{path}", json={}, timeout=30).status_code == 401
        assert requests.post(f"{api}{path}", json={}, headers={"Authorization": f"Basic {token}"},
                             timeout=30).status_code == 200
    assert requests.get(f"{api}/version", timeout=30).status_code == 401
    assert requests.get(f"{api}/health", timeout=30).status_code == 200  # unprotected, as are /ready and the UI
    ui = requests.get(f"{settings.prefect_ui}/ui-settings", timeout=30)
    assert ui.status_code == 200 and ui.json()["auth"] == "BASIC"  # the UI asks for the string
    # the events websocket (PrefectHQ/prefect#17687, closed by #17741): refused without the string
    assert _ws_events_out(settings, None) == "closed 1008"
    assert _ws_events_out(settings, "kerasflow:wrong") == "closed 1008"
    assert _ws_events_out(settings, logins["PREFECT_API_AUTH_STRING"]) == "auth_success"

    worker_env = team.worker_env_file.read_text()  # what a worker on another host sources
    assert stat.S_IMODE(team.worker_env_file.stat().st_mode) == 0o600
    assert f"PREFECT_API_URL={settings.public_api_url}" in worker_env and "PREFECT_API_AUTH_STRING=" in worker_env


def test_the_env_file_carries_the_logins_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = write_env_file(StackSettings(home=ROOT, state_dir=tmp_path), {"PREFECT_API_AUTH_STRING": "k:s e"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "export PREFECT_API_AUTH_STRING='k:s e'" in path.read_text()


def test_a_folder_that_is_not_a_git_clone_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(StackError) as caught:
        git_source(tmp_path)
    assert "is not a git clone" in str(caught.value) and "git init" in str(caught.value)
    assert "pass --repository" not in str(caught.value)


def test_the_team_deployment_file_clones_the_code_into_every_run(tmp_path: Path) -> None:
    import yaml

    from kerasflow.runtime.team import write_team_deployments

    settings = TeamSettings(home=ROOT, state_dir=tmp_path)
    path = write_team_deployments(settings, {"repository": "https://git.example.org/ml/project.git", "branch": "main"})
    team, project = yaml.safe_load(path.read_text()), yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert team["pull"][0] == {"prefect.deployments.steps.git_clone": {
        "id": "clone", "repository": "https://git.example.org/ml/project.git", "branch": "main"}}
    assert str(ROOT) not in path.read_text(), "no path of this clone"
    for mine, theirs in zip(team["deployments"], project["deployments"]):
        assert mine["work_pool"]["name"] == "kerasflow-team"
        assert {k: v for k, v in mine.items() if k != "work_pool"} == {k: v for k, v in theirs.items()
                                                                       if k != "work_pool"}


def test_a_detached_checkout_is_cloned_at_its_commit(tmp_path: Path) -> None:
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(work)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(work), "checkout", "--quiet", "--detach"], check=True, timeout=60)
    head = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_source(work) == {"repository": str(ROOT), "commit_sha": head}
    assert git_source(work, "https://h/r.git", "dev") == {"repository": "https://h/r.git", "branch": "dev"}


def test_serve_team_refuses_a_busy_port() -> None:
    import socket
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "serve", "--team", "--mlflow-port",
                               str(port), "--prefect-port", str(free_port())], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and f"port {port} on 127.0.0.1 is already in use" in proc.stderr
    assert "pass --mlflow-port" in proc.stderr and "Traceback" not in proc.stderr
    assert "stopped unexpectedly" not in proc.stderr, "one error, not a misleading second one"


def test_servers_open_to_other_hosts_accept_their_advertised_name(tmp_path: Path) -> None:
    stack = TeamStack(TeamSettings(home=ROOT, state_dir=tmp_path, host="0.0.0.0", mlflow_port=5000),
                      echo=lambda line: None)
    command = stack.mlflow_command()
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert f"{stack.settings.advertise}:5000" in allowed and "10.*" in allowed and "*" not in allowed
    assert stack.settings.advertise not in ("localhost", "127.0.0.1"), "other hosts get a name they reach"
    assert "--allowed-hosts" not in TeamStack(TeamSettings(home=ROOT, state_dir=tmp_path),
                                              echo=lambda line: None).mlflow_command()
