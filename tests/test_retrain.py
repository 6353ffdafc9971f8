"""The retraining flow end to end: real training, real registry, real Prefect harness.

The tests run in file order against one registered model: a weak first
champion, a better challenger that replaces it, then challengers that must
not move `champion` (worse, worse on one metric, no thresholds, drift).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import mlflow
import pytest
from retraining import retrain

from kerasflow.data.drift import DriftError
from kerasflow.data.load import load_frame
from kerasflow.flows.results import RetrainResult
from kerasflow.schemas.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/iris.yaml")
NAME = "iris-retrain"
BASE = [f"registry.model_name={NAME}", "training.early_stopping.patience=3", "registry.thresholds={}"]
WEAK = ["training.epochs=1", "training.optimizer.learning_rate=0.00001"]
STRONG = ["training.epochs=40", "training.optimizer.learning_rate=0.03"]
SOME_ACCURACY = "registry.gate.thresholds=[{metric: accuracy, min: 0.1}]"


def _retrain(*overrides: str, source: str | None = None, force: bool = False) -> RetrainResult:
    return retrain(CONFIG, BASE, *overrides, source=source, force=force)


def _retrain_state(*overrides: str, force: bool = False):
    """Runs the flow and returns its final Prefect state, as the API records it, and its result."""
    from prefect.client.orchestration import get_client

    from kerasflow.flows.retrain import retrain_flow

    state = retrain_flow(CONFIG, [*BASE, *overrides], None, force=force, return_state=True)
    with get_client(sync_client=True) as prefect:
        recorded = prefect.read_flow_run(state.state_details.flow_run_id).state
    return recorded, state.result()


def _flow_run_tags(run) -> list[str]:
    """The tags of the Prefect flow run an MLflow run recorded."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(run.data.tags["prefect.flow_run_id"]).tags


def _aliases(client: mlflow.MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


@pytest.fixture(scope="module")
def client(prefect_harness, mlflow_store: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(mlflow_store, mlflow_store)


@pytest.fixture(scope="module")
def first(client: mlflow.MlflowClient) -> RetrainResult:
    return _retrain(*WEAK, SOME_ACCURACY)


@pytest.fixture(scope="module")
def second(first: RetrainResult) -> RetrainResult:
    return _retrain(*STRONG, SOME_ACCURACY, "registry.gate.changes=[{metric: accuracy, min_delta: 0.0}]")


def test_first_model_becomes_champion(first: RetrainResult, client: mlflow.MlflowClient) -> None:
    assert first.outcome == "first-champion" and first.promoted
    assert _aliases(client)["champion"] == first.version and first.compared_with is None
    assert first.drift.summary == "skipped: no champion yet"
    tags = client.get_model_version(NAME, first.version).tags
    assert tags["kerasflow.decision"] == "first-champion" and tags["kerasflow.promoted"] == "true"
    assert tags["kerasflow.gate.threshold.accuracy"].startswith("accuracy: expected >= 0.1, observed ")
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kerasflow.kind"] == "retrain"
    files = {a.path for folder in ("gate", "reference") for a in client.list_artifacts(first.run_id, folder)}
    assert {"gate/decision.json", "gate/decision.txt", "reference/stats.json", "reference/suite.json"} <= files


def test_better_challenger_replaces_the_champion(second: RetrainResult, first: RetrainResult, client: mlflow.MlflowClient) -> None:
    assert second.outcome == "promoted", second.reasons
    assert client.get_model_version(NAME, second.version).description.startswith(
        "Gate decision: promoted (promoted to @champion)")
    assert second.compared_with == first.version
    assert second.metrics["accuracy"] > second.champion_metrics["accuracy"]
    assert _aliases(client) == {"champion": second.version, "previous-champion": first.version}
    run = client.get_run(second.run_id)
    assert run.data.metrics["champion/test.accuracy"] == pytest.approx(second.champion_metrics["accuracy"])
    assert second.drift.checked and not second.drift.detected, second.drift.summary
    assert "drift/psi_max" in run.data.metrics and not [m for m in run.data.metrics if m.startswith("drift/psi.")]
    table = mlflow.artifacts.load_dict(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="drift/features.json", tracking_uri=client.tracking_uri))
    assert "petal_length_cm" in [row[table["columns"].index("feature")] for row in table["data"]]
    tags = client.get_model_version(NAME, second.version).tags
    assert "vs champion" in tags["kerasflow.gate.change.accuracy"]
    assert tags["kerasflow.compared_with"] == first.version
    _assert_markdown_artifact("promoted")


def test_worse_challenger_is_rejected(second: RetrainResult, client: mlflow.MlflowClient) -> None:
    state, result = _retrain_state(*WEAK, SOME_ACCURACY,
                                   "registry.gate.changes=[{metric: accuracy, min_delta: -0.005}]")
    assert result.outcome == "rejected" and not result.promoted
    assert state.name == "Rejected" and state.type.value == "COMPLETED"
    assert state.message.startswith(f"rejected v{result.version}: accuracy: expected improvement >= -0.005")
    assert state.message.endswith("-> FAIL")
    description = client.get_model_version(NAME, result.version).description
    assert description.startswith(f"Gate decision: rejected (not promoted); compared with champion v{second.version}")
    assert "- change: accuracy: expected improvement >= -0.005" in description
    assert "- threshold: accuracy: expected >= 0.1, observed" in description
    assert _aliases(client)["champion"] == second.version
    tags = client.get_model_version(NAME, result.version).tags
    assert tags["kerasflow.decision"] == "rejected" and tags["kerasflow.gate.change.accuracy"].endswith("FAIL")
    assert "1 of 2 gate rules failed" in tags["kerasflow.reasons"]
    assert datetime.fromisoformat(tags["kerasflow.decided_at"]).tzinfo is not None  # ISO 8601, UTC
    _assert_markdown_artifact("rejected")
    run = client.get_run(result.run_id)
    note = run.data.tags["mlflow.note.content"]  # the MLflow run page's description
    assert note.startswith("**rejected**") and f"]({run.data.tags['kerasflow.prefect_url']})" in note
    assert f"models:/{NAME}/{result.version}" in note and "- change: accuracy: expected improvement >= -0.005" in note
    assert "kerasflow:rejected" in _flow_run_tags(run)


def test_challenger_worse_on_one_metric_is_rejected(second: RetrainResult, client: mlflow.MlflowClient) -> None:
    changes = "registry.gate.changes=[{metric: accuracy, min_delta: -1.0}, {metric: loss, min_delta: 0.0}]"
    result = _retrain("training.epochs=3", "training.optimizer.learning_rate=0.03", changes)
    assert result.outcome == "rejected", result.reasons
    tags = client.get_model_version(NAME, result.version).tags
    assert tags["kerasflow.gate.change.accuracy"].endswith("pass")
    assert tags["kerasflow.gate.change.loss"].endswith("FAIL")
    assert "lower is better" in tags["kerasflow.gate.change.loss"]
    assert _aliases(client)["champion"] == second.version


def test_no_thresholds_promotes_nothing(second: RetrainResult, client: mlflow.MlflowClient) -> None:
    result = _retrain("training.epochs=2")
    assert result.outcome == "not-gated" and not result.promoted
    assert "nothing is promoted automatically" in result.reasons[0]
    assert _aliases(client)["champion"] == second.version
    assert client.get_model_version(NAME, result.version).tags["kerasflow.decision"] == "not-gated"


def test_drift_above_threshold_fails_the_run(second: RetrainResult, client: mlflow.MlflowClient, tmp_path: Path) -> None:
    frame = load_frame("iris")
    frame[frame["petal_length_cm"] > 4.0].to_csv(tmp_path / "iris_new.csv", index=False)
    versions = len(client.search_model_versions(f"name='{NAME}'"))
    with pytest.raises(DriftError, match="DRIFT DETECTED") as err:
        _retrain(*STRONG, SOME_ACCURACY, source=str(tmp_path / "*.csv"))
    assert "petal_length_cm" in str(err.value)
    assert _aliases(client)["champion"] == second.version
    assert len(client.search_model_versions(f"name='{NAME}'")) == versions
    failed = client.search_runs([second.experiment_id], "attributes.status = 'FAILED'",
                                order_by=["attributes.start_time DESC"])[0]
    assert failed.data.tags["kerasflow.drift"] == "detected" and "DriftError" in failed.data.tags["kerasflow.error"]
    assert failed.data.tags["mlflow.note.content"].startswith("**failed**") and "DriftError" in \
        failed.data.tags["mlflow.note.content"]
    assert "kerasflow:failed" in _flow_run_tags(failed)
    report = mlflow.artifacts.load_text(f"{failed.info.artifact_uri}/drift/report.txt")
    assert report.startswith("DRIFT DETECTED") and "petal_length_cm" in report


def test_drift_with_retune_searches_again(second: RetrainResult, client: mlflow.MlflowClient, tmp_path: Path) -> None:
    frame = load_frame("iris")
    frame[frame["petal_length_cm"] > 1.6].to_csv(tmp_path / "iris_new.csv", index=False)
    tuning = ("tuning={tuner: random, objective: {name: val_accuracy, direction: max}, max_trials: 1, seed: 1, "
              f"directory: '{tmp_path / 'tuner'}', space: {{model.units: {{type: int, min: 8, max: 16, step: 8}}}}}}")
    result = _retrain("training.epochs=2", SOME_ACCURACY, "registry.drift.on_drift=retune", tuning,
                      source=str(tmp_path / "iris_new.csv"))
    assert result.drift.detected and result.drift.action == "retune"
    run = client.get_run(result.run_id)
    assert run.data.tags["kerasflow.hyperparameters_from"] == "retuned after drift"
    assert run.data.params["tune.best.model.units"] in ("8", "16")


def test_configs_that_cannot_retrain_are_rejected_up_front(first: RetrainResult) -> None:
    with pytest.raises(ConfigError, match="registry.drift.on_drift: `retune`"):
        _retrain("registry.drift.on_drift=retune")
    with pytest.raises(ConfigError, match="registry.enabled"):
        _retrain("registry.enabled=false")


def test_rollback_command(second: RetrainResult, client: mlflow.MlflowClient, mlflow_store: str) -> None:
    before = _aliases(client)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    cli = [sys.executable, "-m", "kerasflow.runtime.cli"]
    proc = subprocess.run([*cli, "rollback", NAME], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _aliases(client) == {"champion": before["previous-champion"], "rolled-back": before["champion"]}
    assert client.get_model_version(NAME, before["champion"]).tags["kerasflow.decision"] == "rolled-back"
    assert "@champion -> v" in proc.stdout and "Traceback" not in proc.stderr
    from kerasflow.data.predictions import ModelReferenceError
    from kerasflow.promotion.plan import PromotionError
    from kerasflow.tracking.registry import rollback

    with pytest.raises(PromotionError, match="no `previous-champion` alias"):
        rollback(client, NAME)
    with pytest.raises(ModelReferenceError, match="no registered model named 'no-such-model'"):
        rollback(client, "no-such-model")
    missing = subprocess.run([*cli, "rollback", NAME], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert missing.returncode == 2 and "cannot move the champion: champion is v" in missing.stderr


def test_unchanged_data_config_and_code_skip_the_retraining(client: mlflow.MlflowClient, first: RetrainResult) -> None:
    same = ("training.epochs=2", SOME_ACCURACY, "registry.gate.changes=[]")
    base = _retrain(*same)
    assert base.outcome == "promoted", base.reasons
    versions, aliases = len(client.search_model_versions(f"name='{NAME}'")), _aliases(client)
    state, again = _retrain_state(*same)
    assert again.outcome == "skipped" and again.version is None and not again.promoted
    assert state.name == "Skipped" and state.message.startswith("skipped (no new data): data fingerprint ")
    assert f"champion v{base.version}" in state.message
    assert len(client.search_model_versions(f"name='{NAME}'")) == versions and _aliases(client) == aliases
    run = client.get_run(again.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kerasflow.new_data"] == "unchanged"
    assert run.data.tags["kerasflow.decision"] == "skipped" and "kerasflow.model_version" not in run.data.tags
    assert "kerasflow.code_version" in run.data.tags
    assert run.data.tags["mlflow.note.content"].startswith("**skipped**") and "kerasflow:skipped" in _flow_run_tags(run)
    forced = _retrain(*same, force=True)
    assert forced.outcome == "promoted" and forced.version not in (None, base.version)
    assert client.get_run(forced.run_id).data.tags["kerasflow.new_data"] == "forced"
    assert len(client.search_model_versions(f"name='{NAME}'")) == versions + 1
    changed = client.get_run(_retrain("training.epochs=3", SOME_ACCURACY, "registry.gate.changes=[]").run_id)
    assert changed.data.tags["kerasflow.new_data"] == "changed"
    assert changed.data.tags["kerasflow.changed_since_champion"].startswith("config hash ")


def _assert_markdown_artifact(outcome: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:
        found = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"retrain-{NAME}"])))
    latest = max(found, key=lambda a: a.created)
    assert latest.type == "markdown" and f"# Retraining of `{NAME}`: {outcome}" in latest.data
