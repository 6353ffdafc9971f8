"""`retrain` with a k-fold split does what `run` does: cross-validate, build the fold ensemble, then the gate.

Real training on iris (3 folds, a few epochs), a real SQLite MLflow registry
and Prefect's test harness. `run` registers a fold ensemble, made the
champion by hand (`kerasflow promote`); a retraining with another seed
cross-validates again, registers an ensemble of its own folds, and the
paired bootstrap compares the two ensembles on the same test rows.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from retraining import retrain

from kerasflow.data.load import load_frame
from kerasflow.flows.results import RetrainResult, TrainResult

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/iris_kfold.yaml")
NAME = "iris-kfold-retrain"
BASE = ["name=iris_kfold_retrain", f"registry.model_name={NAME}", "registry.thresholds={}", "split.folds=3",
        "training.epochs=6", "training.early_stopping.patience=3", "evaluation.baseline=false",
        "promotion.infra_validation='off'", "promotion.compare={metric: accuracy, rule: superiority, resamples: 1000}"]


@pytest.fixture(scope="module")
def client(prefect_harness, mlflow_store: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(mlflow_store, mlflow_store)


@pytest.fixture(scope="module")
def champion(client: mlflow.MlflowClient) -> TrainResult:
    from kerasflow.flows.train import train_flow
    from kerasflow.tracking.registry import promote

    trained = train_flow(CONFIG, BASE)
    promote(client, NAME, trained.version)  # what `kerasflow promote NAME VERSION` does
    return trained


@pytest.fixture(scope="module")
def challenger(champion: TrainResult) -> RetrainResult:
    return retrain(CONFIG, BASE, "training.seed=7")


def _is_fold_ensemble(version: str, folds: int, client: mlflow.MlflowClient, tmp: Path) -> bool:
    """Whether the registered version serves an average of `folds` fold models, logged as one."""
    import keras

    import kerasflow.features.layers  # noqa: F401  (the custom layers the members hold)

    params = client.get_run(client.get_model_version(NAME, version).run_id).data.params
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{version}", dst_path=str(tmp),
                                                      tracking_uri=client.tracking_uri))
    model = keras.saving.load_model(next(folder.rglob("*.keras")))
    members = [layer.name for layer in model.layers if layer.name.startswith("fold_")]
    return (params["cv.final"] == "ensemble" and params["cv.members"] == str(folds)
            and model.name == "fold_ensemble" and members == [f"fold_{i}" for i in range(folds)])


def test_a_kfold_retraining_cross_validates_and_registers_the_ensemble_run_builds(
        challenger: RetrainResult, champion: TrainResult, client: mlflow.MlflowClient, tmp_path: Path) -> None:
    folds = client.search_runs([challenger.experiment_id], f"tags.`mlflow.parentRunId` = '{challenger.run_id}'")
    assert sorted(r.data.tags["kerasflow.fold"] for r in folds) == ["0", "1", "2"]
    assert all(r.data.tags["kerasflow.kind"] == "fold" and r.info.status == "FINISHED" for r in folds)
    metrics = client.get_run(challenger.run_id).data.metrics
    assert {"cv/accuracy.mean", "cv/accuracy.std"} <= set(metrics)
    assert "train/epochs_run" not in metrics, "the ensemble averages the folds: nothing is refitted"

    assert challenger.version != champion.version and challenger.compared_with == champion.version
    for version in (champion.version, challenger.version):
        assert _is_fold_ensemble(version, 3, client, tmp_path / version)
        served = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}").predict(
            load_frame("iris").drop(columns=["target"]).iloc[[0, 60, 120]])
        assert set(served["prediction"]) <= {"setosa", "versicolor", "virginica"}


def test_the_ensembles_are_compared_on_identical_test_rows(challenger: RetrainResult, champion: TrainResult,
                                                           client: mlflow.MlflowClient) -> None:
    assert challenger.outcome in ("promoted", "rejected"), challenger.reasons
    mine = client.get_run(challenger.run_id).data
    theirs = client.get_run(champion.run_id).data
    assert mine.params["split.test_rows"] == theirs.params["split.test_rows"] == "30"
    # the champion scored again on the retraining's test rows scores as on its own run's: the same rows
    assert mine.metrics["champion/test.accuracy"] == pytest.approx(theirs.metrics["test/accuracy"])
    assert mine.metrics["compare/improvement"] == pytest.approx(
        mine.metrics["test/accuracy"] - mine.metrics["champion/test.accuracy"])
    assert mine.metrics["compare/ci_low"] <= mine.metrics["compare/improvement"] <= mine.metrics["compare/ci_high"]
    assert challenger.reasons[0].startswith("accuracy ") and "(95% CI " in challenger.reasons[0]
    version = client.get_model_version(NAME, challenger.version)
    assert "95% CI" in version.tags["kerasflow.gate.compare.accuracy"]
    assert "95% CI" in version.description and "- compare: accuracy" in version.description
