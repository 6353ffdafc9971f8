"""The training flow end to end under Prefect's test harness, on real data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.load import load_frame
from kerasflow.flows.results import TrainResult

ROOT = Path(__file__).resolve().parents[1]
FAST = ["training.epochs=8", "training.early_stopping.patience=3"]


@pytest.fixture(scope="module")
def iris_run(prefect_harness) -> TrainResult:
    from kerasflow.flows.train import train_flow

    return train_flow(str(ROOT / "configs/iris.yaml"), FAST)


def test_run_is_one_comparable_row(iris_run: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(iris_run.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/accuracy"] == pytest.approx(iris_run.metrics["accuracy"])
    assert run.data.params["split.test_rows"] == "30"
    assert run.data.params["model.activation"] == "relu"
    assert run.data.params["training.epochs"] == "8"
    for tag in ("kerasflow.data_fingerprint", "kerasflow.config_hash", "prefect.flow_run_id"):
        assert len(run.data.tags[tag]) >= 32
    assert run.inputs.dataset_inputs, "the dataset is logged with log_input"
    artifacts = {a.path for folder in ("validation", "evaluation", "train", "preprocessing")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"validation/data_docs.html", "validation/result.json", "evaluation/confusion_matrix.png",
            "evaluation/classification_report.json", "train/learning_curve.png",
            "preprocessing/features.json", "evaluation/per_class.json"} <= artifacts
    assert "test/class.setosa.precision" in run.data.metrics and "test/recall_min" in run.data.metrics
    table = pd.read_json(client.download_artifacts(run.info.run_id, "evaluation/per_class.json"), orient="split")
    assert list(table["class"]) == ["setosa", "versicolor", "virginica"] and table["support"].sum() == 30


def test_epoch_metrics_are_logged_once_each(iris_run: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    history = client.get_metric_history(iris_run.run_id, "train/loss")
    steps = [m.step for m in history]
    assert steps == sorted(set(steps)) and len(steps) == client.get_run(iris_run.run_id).data.metrics["train/epochs_run"]


def test_registered_model_predicts_like_the_keras_model(iris_run: TrainResult, mlflow_store: str) -> None:
    import keras

    from kerasflow.features.tabular import FeatureSpec, as_model_inputs, frame_to_inputs

    uri = f"models:/iris-dense/{iris_run.version}"
    model = mlflow.pyfunc.load_model(uri)
    rows = load_frame("iris").drop(columns="target").sample(12, random_state=0)
    served = model.predict(rows)
    folder = Path(mlflow.artifacts.download_artifacts(f"{uri}"))
    keras_model = keras.models.load_model(next(folder.rglob("*.keras")))
    spec = FeatureSpec.load(next(folder.rglob("features.json")))
    raw = keras_model.predict(as_model_inputs(frame_to_inputs(rows, spec)), verbose=0)
    np.testing.assert_allclose(served[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy(), raw, rtol=1e-5)
    assert set(served["prediction"]) <= {"setosa", "versicolor", "virginica"}
    assert model.metadata.get_input_schema().input_names() == list(rows.columns)


# The registered penguins model answering rows with missing values: tests/test_slices_flow.py, on its run.


def _cli(*args: str, env_uri: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": env_uri}
    return subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_data_breaking_its_suite_stops_the_run(tmp_path: Path, iris_run: TrainResult, mlflow_store: str) -> None:
    frame = load_frame("iris")
    frame.loc[0, "sepal_length_cm"] = 99.0
    frame.loc[[1, 2, 3], "target"] = "daisy"  # three rows: enough for the split, so the suite is what refuses them
    frame.to_csv(tmp_path / "iris_bad.csv", index=False)
    config = yaml.safe_load((ROOT / "configs/iris.yaml").read_text())
    config["data"]["source"] = str(tmp_path / "iris_bad.csv")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    client = mlflow.MlflowClient(mlflow_store)
    before = len(client.search_model_versions("name='iris-dense'"))

    proc = _cli("run", str(tmp_path / "bad.yaml"), env_uri=mlflow_store)

    assert proc.returncode == 2, proc.stderr
    assert "sepal_length_cm" in proc.stderr and "expect_column_values_to_be_between" in proc.stderr
    assert "daisy" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert len(client.search_model_versions("name='iris-dense'")) == before
    failed = client.search_runs([iris_run.experiment_id], "attributes.status = 'FAILED'")
    assert failed, "the failed run is recorded"
    files = {a.path for a in client.list_artifacts(failed[0].info.run_id, "validation")}
    assert "validation/summary.txt" in files


def test_bad_config_exits_2_and_records_a_failed_run(tmp_path: Path, mlflow_store: str) -> None:
    (tmp_path / "c.yaml").write_text("name: broken\ndata: {source: iris, target: target}\ntraining: {epochs: -1}\n")
    proc = _cli("run", str(tmp_path / "c.yaml"), env_uri=mlflow_store)
    assert proc.returncode == 2 and "training.epochs" in proc.stderr
    experiment = mlflow.MlflowClient(mlflow_store).get_experiment_by_name("broken")
    runs = mlflow.MlflowClient(mlflow_store).search_runs([experiment.experiment_id])
    assert runs[0].info.status == "FAILED"


# `--help` importing neither TensorFlow nor Great Expectations: tests/test_cli_help.py.


def test_missing_data_file_is_bad_input(tmp_path: Path, mlflow_store: str) -> None:
    config = yaml.safe_load((ROOT / "configs/iris.yaml").read_text())
    config["data"]["source"] = str(tmp_path / "nowhere.csv")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _cli("run", str(tmp_path / "c.yaml"), env_uri=mlflow_store)
    assert proc.returncode == 2 and "nowhere.csv" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_suite_init_writes_a_suite_that_passes(tmp_path: Path, mlflow_store: str) -> None:
    load_frame("wine").to_csv(tmp_path / "wine.csv", index=False)
    proc = _cli("suite", "init", str(tmp_path / "wine.csv"), "--target", "target", "--out",
                str(tmp_path / "wine.json"), env_uri=mlflow_store)
    assert proc.returncode == 0, proc.stderr
    from kerasflow.data.expectations.run import validate_frame
    from kerasflow.data.expectations.suites import load_suite

    assert validate_frame(load_frame(str(tmp_path / "wine.csv")), load_suite(tmp_path / "wine.json")).success


def test_validate_flow_only_validates(prefect_harness, mlflow_store: str) -> None:
    from kerasflow.flows.validate import validate_flow

    result = validate_flow(str(ROOT / "configs/wine.yaml"))
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["validation.failed"] == "0"
    assert "test/accuracy" not in run.data.metrics


def test_regression_reports_mae_rmse_r2(prefect_harness, mlflow_store: str) -> None:
    from kerasflow.flows.train import train_flow

    result = train_flow(str(ROOT / "configs/diabetes.yaml"), FAST)
    assert {"mae", "rmse", "r2", "loss"} <= set(result.metrics)
    files = {a.path for a in mlflow.MlflowClient(mlflow_store).list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/residuals.png" in files


def test_prefect_and_mlflow_link_both_ways(iris_run: TrainResult, mlflow_store: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(iris_run.run_id)
    flow_run_id = run.data.tags["prefect.flow_run_id"]
    prefect_url = run.data.tags["kerasflow.prefect_url"]
    assert prefect_url.endswith(f"/runs/flow-run/{flow_run_id}") and prefect_url == iris_run.prefect_url
    note = run.data.tags["mlflow.note.content"]  # the run page's description: a clickable link back, the outcome
    assert f"]({prefect_url})" in note and f"models:/iris-dense/{iris_run.version}" in note
    assert ("**promoted**" if iris_run.blessed else "**rejected**") in note and "### Gate decision" in note
    assert run.info.run_name == f"train-iris-{flow_run_id[:8]}"
    assert run.data.tags["mlflow.source.name"] == "kerasflow train (iris)"
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        tags = prefect.read_flow_run(flow_run_id).tags
    assert tags.count("kerasflow:promoted" if iris_run.blessed else "kerasflow:rejected") == 1, tags
    by_key = {a.key: a.data for a in artifacts}  # Prefect stores a link artifact as Markdown
    assert f"({iris_run.mlflow_url})" in by_key["mlflow-run-iris"]
    assert iris_run.mlflow_url in by_key["summary-iris"] and "| accuracy |" in by_key["summary-iris"]
    assert f"models:/iris-dense/{iris_run.version}" in by_key["summary-iris"]
    description = mlflow.MlflowClient(mlflow_store, mlflow_store).get_model_version("iris-dense", iris_run.version)
    assert description.description.startswith("Gate decision: ") and "accuracy" in description.description


def test_independent_steps_overlap_and_log_into_one_run(iris_run: TrainResult, mlflow_store: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = mlflow.MlflowClient(mlflow_store).get_run(iris_run.run_id).data.tags["prefect.flow_run_id"]
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    window = {run.name.rsplit("-", 1)[0]: (run.start_time, run.end_time) for run in runs}

    def overlap(a: str, b: str) -> bool:  # each started before the other ended
        return window[a][0] < window[b][1] and window[b][0] < window[a][1]

    assert overlap("fit-baseline", "train-model"), window  # 150 rows: the baseline fits beside the training
    assert overlap("evaluate-model", "register-model"), window
    assert window["bless-candidate"][0] >= max(window[s][1] for s in ("fit-baseline", "evaluate-model",
                                                                       "validate-infra")), "the gate waits for all"
    run = mlflow.MlflowClient(mlflow_store).get_run(iris_run.run_id)
    assert run.data.metrics["baseline/accuracy"] == pytest.approx(iris_run.baseline_metrics["accuracy"])
    assert run.data.metrics["test/accuracy"] == pytest.approx(iris_run.metrics["accuracy"])
    assert run.data.tags["kerasflow.cache.fit-baseline"] in ("miss", "off") and run.data.tags["kerasflow.infra"]
