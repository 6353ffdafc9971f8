"""The noise-aware champion/challenger decision on a regression metric (an error: lower is better).

Real training on scikit-learn's diabetes set, a real SQLite MLflow registry
and Prefect's test harness. A one-epoch champion predicts almost nothing of
the target; a trained challenger, scored on the same test rows, lowers the
mean absolute error by far more than the bootstrap's noise (the improvement
is `champion - challenger`), and is promoted. A second challenger that
differs only by its seed is not inferior within a 10-point margin, and is
promoted under `non_inferiority`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from retraining import retrain

from kerasflow.flows.results import RetrainResult

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/diabetes.yaml")
NAME = "diabetes-noise-gate"
BASE = [f"registry.model_name={NAME}", "registry.thresholds={}", "promotion.infra_validation='off'",
        "training.early_stopping.patience=5", "training.reduce_lr.enabled=false"]
WEAK = ["training.epochs=1", "training.optimizer.learning_rate=0.00001",
        "promotion.compare={metric: mae, rule: superiority, resamples: 1000}"]
TRAINED = ["training.epochs=80", "training.optimizer.learning_rate=0.02"]


def _retrain(*overrides: str) -> RetrainResult:
    return retrain(CONFIG, BASE, *overrides)


@pytest.fixture(scope="module")
def client(prefect_harness, mlflow_store: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(mlflow_store, mlflow_store)


@pytest.fixture(scope="module")
def trained(client: mlflow.MlflowClient) -> RetrainResult:
    assert _retrain(*WEAK).outcome == "first-champion"
    return _retrain(*TRAINED, "promotion.compare={metric: mae, rule: superiority, resamples: 1000}")


def test_a_challenger_with_a_clearly_lower_error_is_promoted(trained: RetrainResult,
                                                           client: mlflow.MlflowClient) -> None:
    assert trained.outcome == "promoted" and trained.promoted, trained.reasons
    assert trained.reasons[0].startswith("mae +") and "significantly better" in trained.reasons[0]
    data = client.get_run(trained.run_id).data
    metrics, params = data.metrics, data.params
    assert metrics["compare/ci_low"] > 0 and params["compare.passed"] == "1"
    # an error: the improvement is the champion's error minus the challenger's, on the same test rows
    assert metrics["compare/improvement"] == pytest.approx(metrics["champion/test.mae"] - metrics["test/mae"])
    assert metrics["compare/ci_low"] <= metrics["compare/improvement"] <= metrics["compare/ci_high"]
    assert metrics["test/mae.ci_low"] <= metrics["test/mae"] <= metrics["test/mae.ci_high"]
    assert str(client.get_registered_model(NAME).aliases["champion"]) == trained.version


def test_an_equal_challenger_passes_non_inferiority_within_its_margin(trained: RetrainResult,
                                                                   client: mlflow.MlflowClient) -> None:
    again = _retrain(*TRAINED, "training.seed=7",
                     "promotion.compare={metric: mae, rule: non_inferiority, margin: 10, resamples: 1000}")
    data = client.get_run(again.run_id).data
    low = data.metrics["compare/ci_low"]
    assert low > -10 and data.params["compare.passed"] == "1", again.reasons
    assert again.outcome == "promoted" and again.promoted, again.reasons
    assert str(client.get_registered_model(NAME).aliases["champion"]) == again.version
