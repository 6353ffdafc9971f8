"""Step caching: a rerun after a late failure reuses the earlier steps; a changed value invalidates only its steps."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from kerasflow.promotion.inputs import IncompatibleInputsError
from kerasflow.schemas.config import load_config
from kerasflow.tasks.baseline import fit_baseline
from kerasflow.tasks.caching import CACHE_TAG
from kerasflow.tasks.load import load_data
from kerasflow.tasks.preprocess import fit_preprocessing
from kerasflow.tasks.split import split_data
from kerasflow.tasks.train import train_model
from kerasflow.tasks.validate import validate_data

ROOT = Path(__file__).resolve().parents[1]
IRIS = str(ROOT / "configs/iris.yaml")
FAST = ["name=iris_cache", "training.epochs=6", "training.early_stopping.patience=3"]
THREE = ["data.features=[sepal_length_cm, sepal_width_cm, petal_length_cm]"]
STEPS = ("load-data", "validate-data", "split-data", "fit-preprocessing", "train-model", "fit-baseline")


@pytest.fixture
def caching_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("KERASFLOW_CACHE_DAYS", "7")
    monkeypatch.setenv("KERASFLOW_HOME", str(tmp_path))
    return tmp_path


def _latest_run(client: mlflow.MlflowClient, status: str) -> mlflow.entities.Run:
    experiment = client.get_experiment_by_name("iris_cache")
    return client.search_runs([experiment.experiment_id], f"attributes.status = '{status}'",
                              order_by=["attributes.start_time DESC"])[0]


def test_a_rerun_after_a_failed_register_reuses_every_earlier_step(prefect_harness, mlflow_store: str,
                                                                     caching_on: Path) -> None:
    from kerasflow.flows.train import train_flow

    client = mlflow.MlflowClient(mlflow_store)
    train_flow(IRIS, [*FAST, "registry.model_name=iris-cache"])  # a version with four inputs
    with pytest.raises(IncompatibleInputsError):  # three inputs cannot join it: register fails after training
        train_flow(IRIS, [*FAST, *THREE, "registry.model_name=iris-cache"])
    failed = _latest_run(client, "FAILED")
    assert all(failed.data.tags.get(CACHE_TAG + step) == "miss" for step in STEPS), {k: v for k, v in failed.data.tags.items() if "cache" in k}

    rerun = train_flow(IRIS, [*FAST, *THREE, "registry.model_name=iris-cache-three"])
    run = client.get_run(rerun.run_id)
    for step in STEPS:
        assert run.data.tags[CACHE_TAG + step] == "hit", step
        assert run.data.tags[f"{CACHE_TAG}{step}.run"] == failed.info.run_id
    assert rerun.version is not None and run.info.status == "FINISHED"
    # what the cached steps logged is in the new run too
    assert run.data.params["data.rows"] == failed.data.params["data.rows"]
    assert run.data.tags["kerasflow.data_fingerprint"] == failed.data.tags["kerasflow.data_fingerprint"]
    assert run.inputs.dataset_inputs, "the dataset is logged again"
    losses = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert losses == [m.step for m in client.get_metric_history(failed.info.run_id, "train/loss")]
    logged = {a.path for folder in ("preprocessing", "train", "validation")
              for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"preprocessing/features.json", "train/learning_curve.png", "validation/result.json"} <= logged
    assert run.data.metrics["test/accuracy"] == pytest.approx(rerun.metrics["accuracy"])

    fresh = train_flow(IRIS, [*FAST, *THREE, "registry.model_name=iris-cache-three"], fresh=True)
    tags = client.get_run(fresh.run_id).data.tags
    assert all(tags[CACHE_TAG + step] == "miss" for step in STEPS), "--fresh recomputes every step"


def _keys(overrides: list[str]) -> dict[str, str]:
    config = load_config(IRIS, overrides)
    raw, split = "/steps/raw.parquet", "/steps/split.json"
    inputs = {
        "load-data": (load_data, {"config": config}),
        "validate-data": (validate_data, {"config": config, "raw_path": raw, "skip_columns": None}),
        "split-data": (split_data, {"config": config, "raw_path": raw}),
        "fit-preprocessing": (fit_preprocessing, {"config": config, "raw_path": raw, "split_path": split}),
        "train-model": (train_model, {"config": config, "prepared": "p", "hyperparameters": None,
                                      "refit": "train", "epochs": None}),
        "fit-baseline": (fit_baseline, {"config": config, "prepared": "p"}),
    }
    return {name: step.cache_policy.key_of({"tracker": None, "workdir": "/tmp/x", **args})
            for name, (step, args) in inputs.items()}


def test_a_changed_value_invalidates_only_the_steps_that_depend_on_it(caching_on: Path) -> None:
    base = _keys([])
    assert all(base.values()) and len(set(base.values())) == len(base)

    def changed(overrides: list[str]) -> set[str]:
        return {step for step, key in _keys(overrides).items() if key != base[step]}

    assert changed(["training.epochs=7"]) == {"train-model", "fit-baseline"}
    assert changed(["split.seed=7"]) == {"split-data", "train-model", "fit-baseline"}
    assert changed(["model.dropout=0.2"]) == {"fit-preprocessing", "train-model", "fit-baseline"}
    assert changed(["registry.model_name=other", "evaluation.confusion_matrix=false"]) == set()
    assert changed(["data.target=target"]) == set(), "equal values give equal keys"


def test_a_step_whose_source_cannot_be_read_is_not_cached(caching_on: Path) -> None:
    config = load_config(IRIS, ["data.source=missing/file.csv"])
    assert load_data.cache_policy.key_of({"config": config}) is None
