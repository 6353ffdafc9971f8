"""The `tabm` family: trains, tunes, registers and serves through the pipeline like every other family.

A binary classifier (breast_cancer) is trained by the train flow,
registered and served through `models:/<name>@champion`; a k-fold
regression (diabetes, an ensemble of the fold models) uses piecewise-linear embeddings, whose bins the feature spec
fits on each fold's training rows; a tiny search varies `model.k` and `model.width`.
The unit checks pin the two TabM rules: training averages the members'
losses, prediction averages their outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.holdout import split_rows
from kerasflow.data.load import load_frame

ROOT = Path(__file__).resolve().parents[1]
NAME = "breast_cancer-tabm-test"
TABM = {"kind": "tabm", "k": 4, "width": 32, "depth": 2}
SPLIT = {"test_fraction": 0.2, "val_fraction": 0.15, "seed": 42}


def _write(folder: Path, name: str, **sections) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **sections}))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tabm")


@pytest.fixture(scope="module")
def binary_run(prefect_harness, mlflow_store: str, folder: Path) -> Any:
    from kerasflow.flows.train import train_flow
    from kerasflow.tracking.registry import promote

    config = _write(folder, "breast_cancer_tabm", data={"source": "breast_cancer", "target": "target"},
                    split=SPLIT, model=TABM,
                    training={"epochs": 30, "batch_size": 32, "early_stopping": {"patience": 8}},
                    registry={"model_name": NAME})
    result = train_flow(str(config))
    promote(mlflow.MlflowClient(mlflow_store, mlflow_store), NAME, result.version)
    return result


def test_the_tabm_section_parses_with_defaults_and_refuses_unknown_values() -> None:
    from kerasflow.schemas.config import ConfigError, load_config

    config = load_config(ROOT / "configs" / "breast_cancer_tabm.yaml")
    assert config.model.kind == "tabm" and config.preprocessing.numeric_embedding == "none"
    with pytest.raises(ConfigError, match=r"preprocessing\.numeric_embedding"):
        load_config(ROOT / "configs" / "breast_cancer_tabm.yaml", ["preprocessing.numeric_embedding=splines"])
    with pytest.raises(ConfigError, match=r"model\.numeric_embedding"):  # the setting moved to preprocessing
        load_config(ROOT / "configs" / "breast_cancer_tabm.yaml", ["model.numeric_embedding=periodic"])
    with pytest.raises(ConfigError, match=r"preprocessing\.numeric_embedding"):
        load_config(ROOT / "configs" / "breast_cancer_tabm.yaml",
                    ["data.streaming=true", "preprocessing.numeric_embedding=piecewise_linear"])


def test_training_averages_the_members_losses_and_prediction_their_outputs() -> None:
    import keras

    from kerasflow.features.labels import fit_labels
    from kerasflow.features.numeric_embeddings import PiecewiseLinearEncoding
    from kerasflow.features.tabular import as_model_inputs, fit_features, frame_to_inputs
    from kerasflow.models.families import build_model
    from kerasflow.models.spec import ModelSpec
    from kerasflow.schemas.config import OptimizerConfig
    from kerasflow.schemas.tabm import TabMModelConfig

    frame = load_frame("diabetes").iloc[:200]
    numeric = [c for c in frame.columns if c != "target"]
    features = fit_features(frame, numeric, [], numeric_embedding="piecewise_linear")
    labels = fit_labels(frame["target"], "regression")
    spec = ModelSpec(TabMModelConfig(**{**TABM, "dropout": 0.0}), OptimizerConfig(), features, labels)
    model = build_model(None, spec)
    x, y = as_model_inputs(frame_to_inputs(frame, features)), frame["target"].to_numpy("float32")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    members = model(x, training=True)  # (batch, k, 1): each member's prediction
    assert tuple(members.shape) == (200, 4, 1) and tuple(model(x).shape) == (200, 1)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.mean(members, axis=1), rtol=1e-4, atol=1e-4)
    per_member = np.mean((np.asarray(members)[..., 0] - y[:, None]) ** 2)
    assert float(model.compute_loss(x, y, members)) == pytest.approx(per_member, rel=1e-4)
    encoding = next(layer for layer in model.layers if isinstance(layer, PiecewiseLinearEncoding))
    assert encoding.bins == features.bins  # fitted with the feature spec, on its training rows
    normalized = keras.Model(model.inputs, encoding.input).predict(x, verbose=0)  # the z-scores the layer receives
    np.testing.assert_allclose([edges[0] for edges in encoding.bins], normalized.min(axis=0), atol=1e-4)
    np.testing.assert_allclose([edges[-1] for edges in encoding.bins], normalized.max(axis=0), atol=1e-4)


def test_a_tabm_classifier_trains_registers_and_serves(binary_run: Any, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    run = client.get_run(binary_run.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.kind"] == "tabm"
    assert binary_run.metrics["accuracy"] > 0.9
    assert client.get_model_version(NAME, binary_run.version).run_id == binary_run.run_id
    frame = load_frame("breast_cancer")
    split = split_rows(frame["target"], _split_section(), classify=True)
    rows = frame.iloc[split.test].reset_index(drop=True)
    evaluated = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=binary_run.run_id, artifact_path="evaluation/predictions.csv", tracking_uri=mlflow_store))
    assert evaluated["actual"].astype(str).tolist() == rows["target"].astype(str).tolist()
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(rows.drop(columns="target"))
    probas = [c for c in served.columns if c.startswith("proba_")]
    assert len(probas) == 2
    np.testing.assert_allclose(served[probas].to_numpy(), evaluated[probas].to_numpy(), rtol=1e-4, atol=1e-5)
    assert served["prediction"].astype(str).tolist() == evaluated["prediction"].astype(str).tolist()


def test_a_kfold_tabm_regression_with_piecewise_linear_embeddings(prefect_harness, mlflow_store: str,
                                                                folder: Path) -> None:
    from kerasflow.flows.train import train_flow

    name = "diabetes-tabm-test"
    config = _write(folder, "diabetes_tabm", data={"source": "diabetes", "target": "target"},
                    split={"kind": "kfold", "folds": 2, "test_fraction": 0.2, "seed": 42},
                    preprocessing={"numeric_embedding": "piecewise_linear"}, model=TABM,
                    training={"epochs": 30, "batch_size": 32, "early_stopping": {"patience": 8}},
                    registry={"model_name": name})
    result = train_flow(str(config))
    assert result.metrics["r2"] > 0.2 and result.metrics["mae"] < 60
    rows = load_frame("diabetes").drop(columns="target").head(5)  # the fold ensemble of TabM models serves
    served = mlflow.pyfunc.load_model(f"models:/{name}/{result.version}").predict(rows)
    assert list(served.columns) == ["prediction"] and served["prediction"].notna().all()


def test_a_tabm_search_varies_k_and_width(prefect_harness, mlflow_store: str, folder: Path) -> None:
    from kerasflow.flows.train import train_flow

    space = {"model.k": {"type": "choice", "values": [2, 4]}, "model.width": {"type": "choice", "values": [16, 32]}}
    config = _write(folder, "breast_cancer_tabm_tuned", data={"source": "breast_cancer", "target": "target"},
                    split=SPLIT, model=TABM, registry={"model_name": "breast_cancer-tabm-tuned-test"},
                    training={"epochs": 6, "batch_size": 32, "early_stopping": {"patience": 3}},
                    tuning={"tuner": "random", "max_trials": 2, "objective": {"name": "val_loss", "direction": "min"},
                            "space": space})
    result = train_flow(str(config))
    params = mlflow.MlflowClient(mlflow_store, mlflow_store).get_run(result.run_id).data.params
    assert params["model.kind"] == "tabm" and result.metrics["accuracy"] > 0.85


def _split_section() -> object:
    from kerasflow.schemas.config import SplitConfig

    return SplitConfig(**SPLIT)


def test_the_optimizer_that_trains_is_the_one_the_config_and_its_defaults_name() -> None:
    import keras

    from kerasflow.features.labels import fit_labels
    from kerasflow.features.tabular import fit_features
    from kerasflow.lint.defaults import default_sections
    from kerasflow.models.families import build_model
    from kerasflow.models.spec import ModelSpec
    from kerasflow.schemas.config import OptimizerConfig, load_config
    from kerasflow.schemas.tabm import TabMModelConfig

    config = load_config(ROOT / "configs" / "breast_cancer_tabm.yaml")

    class Profile:
        rows, train_rows = 569, 398

    chosen = default_sections(config, Profile(), given={"name", "data", "split", "model"})
    assert chosen["training"]["optimizer"] == {"name": "adamw", "learning_rate": 2e-3}
    frame = load_frame("diabetes").iloc[:50]
    numeric = [c for c in frame.columns if c != "target"]
    features, labels = fit_features(frame, numeric, []), fit_labels(frame["target"], "regression")
    for name, kind in (("adamw", keras.optimizers.AdamW), ("adam", keras.optimizers.Adam)):
        spec = ModelSpec(TabMModelConfig(**TABM), OptimizerConfig(name=name, learning_rate=2e-3), features, labels)
        optimizer = build_model(None, spec).optimizer
        assert type(optimizer) is kind and float(optimizer.learning_rate) == pytest.approx(2e-3)
