"""K-fold cross-validation: folds as nested runs, CV summaries, and the same results on Dask."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from kerasflow.data.load import load_frame
from kerasflow.data.split import split_kfold
from kerasflow.flows.results import TrainResult
from kerasflow.schemas.config import load_config
from kerasflow.schemas.tuning import RunnerConfig
from kerasflow.training.cv import make_folds

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/iris_kfold.yaml")
FAST = ["training.epochs=6", "training.early_stopping.patience=3", "split.folds=3"]


def test_folds_cover_the_non_test_rows_once_and_never_the_test_rows() -> None:
    labels = load_frame("iris")["target"]
    split = split_kfold(labels, folds=4, test_fraction=0.2, seed=1)
    rest = sorted(split.train)
    folds = make_folds(labels, rest, folds=3, stratify=True, shuffle=True, seed=7)
    assert len(folds) == 3
    val_rows = sorted(r for _, val in folds for r in val)
    assert val_rows == rest, "every non-test row is validated exactly once"
    for train, val in folds:
        assert not set(train) & set(val) and not (set(train) | set(val)) & set(split.test)
        counts = labels.iloc[val].value_counts()
        assert counts.max() - counts.min() <= 1, "stratified"


STEP_LINES: list[str] = []  # what the steps of `kfold_run` logged (Prefect's task-run logger)


class _Lines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        STEP_LINES.append(record.getMessage())


@pytest.fixture(scope="module")
def kfold_run(prefect_harness) -> TrainResult:
    from kerasflow.flows.train import train_flow

    logger, handler = logging.getLogger("prefect.task_runs"), _Lines(logging.INFO)
    logger.addHandler(handler)
    try:
        return train_flow(CONFIG, FAST)
    finally:
        logger.removeHandler(handler)


def _fold_runs(client: mlflow.MlflowClient, experiment_id: str, run_id: str) -> list:
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    return sorted(runs, key=lambda r: int(r.data.tags["kerasflow.fold"]))


def test_folds_on_two_local_threads_each_show_their_epochs(kfold_run: TrainResult) -> None:
    assert load_config(CONFIG).runner == RunnerConfig(kind="local", n_workers=2)
    epochs = [line for line in STEP_LINES if line.startswith("fold ")]
    for fold in ("1/3", "2/3", "3/3"):
        assert any(line.startswith(f"fold {fold}: epoch 1/6  ") for line in epochs), (fold, STEP_LINES)


def test_each_fold_is_a_nested_run_and_the_parent_gets_mean_and_std(kfold_run: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    folds = _fold_runs(client, kfold_run.experiment_id, kfold_run.run_id)
    assert [r.data.tags["kerasflow.fold"] for r in folds] == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" and r.data.tags["kerasflow.kind"] == "fold" for r in folds)
    assert all(r.data.params["fold"] == str(i) for i, r in enumerate(folds))
    history = client.get_metric_history(folds[0].info.run_id, "train/val_loss")
    assert len(history) == folds[0].data.metrics["train/epochs_run"] >= 1

    parent = client.get_run(kfold_run.run_id)
    accuracies = np.array([r.data.metrics["val/accuracy"] for r in folds])
    assert parent.data.metrics["cv/accuracy.mean"] == pytest.approx(accuracies.mean())
    assert parent.data.metrics["cv/accuracy.std"] == pytest.approx(accuracies.std())
    for name in ("loss", "f1_macro", "best_epoch"):
        assert {f"cv/{name}.mean", f"cv/{name}.std"} <= set(parent.data.metrics)
    assert parent.data.params["cv.final"] == "ensemble" and parent.data.params["cv.members"] == "3"
    assert "train/epochs_run" not in parent.data.metrics, "the ensemble averages the folds: nothing is refitted"
    assert parent.data.params["split.test_rows"] == "30" and kfold_run.version


def test_the_fold_ensemble_serves_raw_rows_from_the_registry(kfold_run: TrainResult, mlflow_store: str) -> None:
    model = mlflow.pyfunc.load_model(f"models:/iris_kfold-dense/{kfold_run.version}")
    rows = load_frame("iris").drop(columns=["target"]).iloc[[0, 60, 120]]
    predicted = model.predict(rows)
    assert len(predicted) == 3 and set(predicted["prediction"]) <= {"setosa", "versicolor", "virginica"}
    proba = predicted[[c for c in predicted.columns if c.startswith("proba_")]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)


def test_a_refit_final_model_trains_for_the_median_best_epoch(prefect_harness, mlflow_store: str) -> None:
    from kerasflow.flows.train import train_flow

    result = train_flow(CONFIG, [*FAST, "split.final=refit", "name=iris_kfold_refit",
                                 "registry.model_name=iris_kfold-refit"])
    parent = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    metrics = parent.data.metrics
    assert metrics["train/epochs_run"] == max(1, round(metrics["cv/best_epoch.median"]))
    assert metrics["cv/best_epoch.min"] <= metrics["cv/best_epoch.median"] <= metrics["cv/best_epoch.max"]


def test_an_ensemble_outputs_the_mean_of_its_members(tmp_path: Path) -> None:
    from kerasflow.heavy import import_tensorflow

    import_tensorflow()
    import keras

    from kerasflow.training.ensemble import average_models

    paths = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        inputs = {"a": keras.Input((3,), name="a"), "b": keras.Input((1,), name="b")}
        hidden = keras.layers.Concatenate()([inputs["a"], inputs["b"]])
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
        model.compile(loss="sparse_categorical_crossentropy")
        model.save(tmp_path / f"m{seed}.keras")
        paths.append(str(tmp_path / f"m{seed}.keras"))
    x = {"a": np.random.default_rng(0).normal(size=(4, 3)), "b": np.ones((4, 1))}
    expected = np.mean([keras.saving.load_model(p).predict(x, verbose=0) for p in paths], axis=0)
    ensemble = keras.saving.load_model(average_models(paths, tmp_path / "ensemble.keras"))
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, rtol=1e-5)


def test_out_of_fold_predictions_cover_every_non_test_row(kfold_run: TrainResult, mlflow_store: str) -> None:
    path = mlflow.artifacts.download_artifacts(run_id=kfold_run.run_id, artifact_path="cv/oof_predictions.csv",
                                               tracking_uri=mlflow_store)
    oof = pd.read_csv(path)
    config = load_config(CONFIG, FAST)
    labels = load_frame("iris")["target"]
    s = config.split
    split = split_kfold(labels, folds=s.folds, test_fraction=s.test_fraction, stratify=True, seed=s.seed)
    assert sorted(oof["row"]) == sorted(split.train)
    assert set(oof["fold"]) == {0, 1, 2}
    assert (oof["actual"].to_numpy() == labels.iloc[oof["row"]].to_numpy()).all()
    proba = oof[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)


def test_folds_on_a_dask_cluster_match_the_sequential_run(kfold_run: TrainResult, mlflow_store: str,
                                                          tmp_path: Path) -> None:
    from kerasflow.flows.cv import cross_validate_flow
    from kerasflow.flows.runners import task_runner
    from kerasflow.tasks.load import load_data
    from kerasflow.tasks.preprocess import fit_preprocessing
    from kerasflow.tasks.split import split_data
    from kerasflow.tracking import Tracker, configure, ensure_experiment, tracking_uri

    config = load_config(CONFIG, FAST)
    client = configure()
    experiment = ensure_experiment(client, config.name)
    results, fold_metrics = {}, {}
    for name, runner in {"sequential": RunnerConfig(kind="local", n_workers=1),
                         "dask": RunnerConfig(kind="dask", n_workers=2, processes=True)}.items():
        run_id = client.create_run(experiment, run_name=f"cv-{name}").info.run_id
        workdir = tmp_path / name
        workdir.mkdir()
        tracker = Tracker(run_id, tracking_uri())
        raw = load_data.fn(tracker, config, str(workdir))
        split = split_data.fn(tracker, config, raw, str(workdir))
        prepared = fit_preprocessing.fn(tracker, config, raw, split, str(workdir))
        results[name] = cross_validate_flow.with_options(task_runner=task_runner(runner))(tracker, config, prepared)
        fold_metrics[name] = [r.data.metrics["val/accuracy"] for r in _fold_runs(client, experiment, run_id)]
        client.set_terminated(run_id, "FINISHED")
    threaded = [r.data.metrics["val/accuracy"] for r in _fold_runs(client, kfold_run.experiment_id, kfold_run.run_id)]
    assert fold_metrics["dask"] == fold_metrics["sequential"] == threaded
    seq, dask = results["sequential"].summary, results["dask"].summary
    assert seq.keys() == dask.keys()
    for metric in seq:
        assert dask[metric]["mean"] == pytest.approx(seq[metric]["mean"], abs=1e-6), metric
    assert results["dask"].epochs == results["sequential"].epochs
