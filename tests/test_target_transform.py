"""`preprocessing.target_transform`: what a regression network learns, and the inverse inside the model.

On scikit-learn's diabetes set (real labels, all positive, mildly skewed)
and a skewed transform of it: the `auto` rule (labels >= 0 and skewness
above 2) is fitted on the training labels only; `log` refuses negative
labels; a dense network learns the standardized (log) target while its
output is in the label's units, the loss being the one of the standardized
output; the model survives a `.keras` round trip; and a whole training run
logs the fitted transform and serves predictions in the label's units.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from kerasflow.features.labels import FeatureError, LabelSpec, fit_labels, skewed_target

ROOT = Path(__file__).resolve().parents[1]


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def test_auto_takes_the_log_of_skewed_non_negative_labels_only() -> None:
    y = _diabetes()["target"]
    skewed = np.exp(y / 50).rename("skewed")  # the same labels, strongly right-skewed
    assert not skewed_target(y) and skewed_target(skewed)
    assert not skewed_target(skewed - skewed.median())  # negative values: no log
    plain, logged = fit_labels(y, "regression", target_transform="auto"), fit_labels(skewed, "regression",
                                                                                      target_transform="auto")
    assert plain.transform == "none" and plain.offset == pytest.approx(y.mean()) and plain.scale == pytest.approx(y.std(ddof=0))
    assert logged.transform == "log" and logged.offset == pytest.approx(np.log1p(skewed).mean())
    assert logged.bounds == pytest.approx([np.log1p(skewed.min()), np.log1p(skewed.max())])
    assert fit_labels(y, "regression", target_transform="log").transform == "log"
    # no transform asked (a functional model's heads): the raw label, as before
    assert not fit_labels(y, "regression").transformed
    assert not fit_labels(y.astype(int) % 3, target_transform="auto").transformed  # classes: untouched
    with pytest.raises(FeatureError, match="target_transform: log needs labels >= 0"):
        fit_labels(y - 100, "regression", target_transform="log")


def test_the_fitted_transform_is_saved_and_older_label_files_still_load(tmp_path: Path) -> None:
    spec = fit_labels(_diabetes()["target"], "regression", target_transform="log")
    loaded = LabelSpec.load(spec.save(tmp_path / "labels.json"))
    assert (loaded.transform, loaded.offset, loaded.scale) == (spec.transform, spec.offset, spec.scale)
    (tmp_path / "old.json").write_text('{"task": "regression", "column": "y", "classes": [], "encoding": "integer"}')
    assert not LabelSpec.load(tmp_path / "old.json").transformed


def test_a_dense_network_learns_the_standardized_log_and_answers_in_label_units(tmp_path: Path) -> None:
    import keras

    from kerasflow.features.labels import encode_labels
    from kerasflow.features.tabular import as_model_inputs, fit_features, frame_to_inputs
    from kerasflow.models.families import build_model
    from kerasflow.schemas.config import PipelineConfig
    from kerasflow.training.final import model_spec
    from kerasflow.training.fitting import set_seed

    frame = _diabetes()
    train, rest = frame.iloc[::2], frame.iloc[1::2]
    columns = [c for c in frame.columns if c != "target"]
    features = fit_features(train, columns, [])
    labels = fit_labels(train["target"], "regression", target_transform="log")
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "diabetes", "target": "target"},
                                            "model": {"kind": "dense", "hidden_units": [16]}})
    set_seed(0)
    network = build_model(None, model_spec(config, features, labels))
    x, y = as_model_inputs(frame_to_inputs(train, features)), encode_labels(train["target"], labels)
    network.fit(x, y, epochs=15, batch_size=32, verbose=0)
    standardized = keras.Model(network.inputs, network.get_layer("output").output)(x, training=False)
    standardized = np.asarray(standardized).reshape(-1)
    predicted = network.predict(x, verbose=0).reshape(-1)
    inside = np.clip(standardized * labels.scale + labels.offset, *labels.bounds)  # the training labels' range
    np.testing.assert_allclose(predicted, np.expm1(inside), rtol=1e-4)
    assert 25 < np.median(predicted) < 350  # the label's units (diabetes progression runs from 25 to 346)
    target = (np.log1p(y) - labels.offset) / labels.scale
    clipped = (inside - labels.offset) / labels.scale
    assert network.evaluate(x, y, verbose=0)[0] == pytest.approx(np.mean((clipped - target) ** 2), rel=1e-3)
    path = tmp_path / "model.keras"
    network.save(path)
    rows = as_model_inputs(frame_to_inputs(rest, features))
    np.testing.assert_allclose(keras.saving.load_model(path).predict(rows, verbose=0), network.predict(rows, verbose=0))


@pytest.mark.slow
def test_a_run_logs_the_fitted_transform_and_serves_in_label_units(prefect_harness, mlflow_store: str) -> None:
    from kerasflow.flows.train import train_flow

    name = "diabetes-target-transform"
    result = train_flow(str(ROOT / "configs/diabetes.yaml"), [
        f"registry.model_name={name}", "registry.thresholds={}", "preprocessing.target_transform=log",
        "training.epochs=20", "training.early_stopping.patience=5"])
    params = mlflow.MlflowClient(mlflow_store).get_run(result.run_id).data.params
    assert params["preprocessing.target_transform"] == "log"
    assert params["preprocessing.target_transform_fitted"] == "log"
    assert result.metrics["mae"] < 75  # label units: always predicting the mean scores about 64
    rows = _diabetes().head(20).drop(columns="target")
    served = mlflow.pyfunc.load_model(f"models:/{name}/{result.version}").predict(rows)
    assert served["prediction"].between(10, 400).all()


def test_a_log_target_is_refused_with_streaming_naming_the_path(tmp_path: Path) -> None:
    import yaml

    from kerasflow.schemas.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "d", "data": {"source": "diabetes", "target": "target",
                                                           "task": "regression", "streaming": True}}))
    with pytest.raises(ConfigError, match=r"preprocessing\.target_transform: data\.streaming"):
        load_config(path, ["preprocessing.target_transform=log"])
    assert load_config(path).preprocessing.target_transform == "auto"  # the stream learns the raw label
