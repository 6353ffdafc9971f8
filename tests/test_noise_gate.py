"""The noise-aware champion/challenger decision (`promotion.compare`) end to end.

Real training on scikit-learn's iris set, a real SQLite MLflow registry and
Prefect's test harness. Same data, models of different true quality: a
one-epoch champion against a well-trained challenger is a clear
improvement, promoted; two equally good models that differ by their seed
are noise, and the champion is kept.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from retraining import retrain

from kerasflow.flows.results import RetrainResult

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/iris.yaml")
NAME = "iris-noise-gate"
BASE = [f"registry.model_name={NAME}", "training.early_stopping.patience=3", "registry.thresholds={}",
        "split.test_fraction=0.3", "promotion.infra_validation='off'",
        "promotion.compare={metric: accuracy, confidence: 0.95, rule: superiority, resamples: 1000}"]
WEAK = ["training.epochs=1", "training.optimizer.learning_rate=0.00001"]
STRONG = ["training.epochs=40", "training.optimizer.learning_rate=0.03"]


def _retrain(*overrides: str) -> RetrainResult:
    return retrain(CONFIG, BASE, *overrides)


@pytest.fixture(scope="module")
def client(prefect_harness, mlflow_store: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(mlflow_store, mlflow_store)


@pytest.fixture(scope="module")
def first(client: mlflow.MlflowClient) -> RetrainResult:
    return _retrain(*WEAK)


@pytest.fixture(scope="module")
def clear(first: RetrainResult) -> RetrainResult:
    return _retrain(*STRONG)


def test_first_model_has_nothing_to_compare_with(first: RetrainResult, client: mlflow.MlflowClient) -> None:
    assert first.outcome == "first-champion" and first.promoted
    data = client.get_run(first.run_id).data
    metrics, params = data.metrics, data.params
    assert metrics["test/accuracy.ci_low"] <= metrics["test/accuracy"] <= metrics["test/accuracy.ci_high"]
    assert "compare.passed" not in params


def test_clear_improvement_is_promoted(clear: RetrainResult, first: RetrainResult,
                                       client: mlflow.MlflowClient) -> None:
    assert clear.outcome == "promoted" and clear.promoted, clear.reasons
    assert clear.reasons[0].startswith("accuracy +") and "(95% CI +" in clear.reasons[0]
    assert "significantly better" in clear.reasons[0]
    data = client.get_run(clear.run_id).data
    metrics, params = data.metrics, data.params
    assert metrics["compare/ci_low"] > 0 and params["compare.passed"] == "1"
    assert metrics["compare/improvement"] == pytest.approx(
        metrics["test/accuracy"] - metrics["champion/test.accuracy"])
    description = client.get_model_version(NAME, clear.version).description
    assert "Reason: accuracy +" in description and "- compare: accuracy" in description
    assert str(client.get_registered_model(NAME).aliases["champion"]) == clear.version


def test_noisy_improvement_is_not_promoted(clear: RetrainResult, client: mlflow.MlflowClient) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    noisy = _retrain(*STRONG, "training.seed=7")
    assert noisy.outcome == "rejected" and not noisy.promoted, noisy.reasons
    assert noisy.reasons[0].endswith("not significant, champion kept") and "95% CI" in noisy.reasons[0]
    data = client.get_run(noisy.run_id).data
    metrics, params = data.metrics, data.params
    assert metrics["compare/ci_low"] <= 0 and params["compare.passed"] == "0"
    tags = client.get_model_version(NAME, noisy.version).tags
    assert tags["kerasflow.gate.compare.accuracy"].endswith("not significant, champion kept -> FAIL")
    assert "not significant" in client.get_model_version(NAME, noisy.version).description
    assert str(client.get_registered_model(NAME).aliases["champion"]) == clear.version
    with get_client(sync_client=True) as prefect:  # this model's decision, not another test's latest artifact
        found = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"retrain-{NAME}"])))
    assert "not significant, champion kept" in str(max(found, key=lambda a: a.created).data)
