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


def test_a_streamed_target_is_fitted_in_the_stream_pass_as_in_memory(tmp_path: Path) -> None:
    from kerasflow.data.stream import (
        TRAIN,
        StreamManifest,
        assign_partitions,
        fit_stream_features,
        scan_stream,
        split_stream,
        stream_files,
    )

    frame = _diabetes().assign(skewed=lambda f: np.exp(f["target"] / 50))
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    files = stream_files(str(folder))
    train = frame.iloc[np.flatnonzero(assign_partitions(np.arange(len(frame)), 5, 0.2, 0.1) == TRAIN)]
    for target, how, transform in [("target", "auto", "none"), ("skewed", "auto", "log"), ("target", "log", "log")]:
        scan, sample = scan_stream(files, target, sample_rows=150)
        manifest, split = split_stream(StreamManifest(files=files, scan=scan, stride=3), 5, 0.2, 0.1)
        numeric = [c for c in frame.columns if c not in ("target", "skewed")]
        _, labels = fit_stream_features(manifest, sample.iloc[split.train], numeric, [], target, impute="mean",
                                        normalize=True, max_categories=None, task="regression", encoding="integer",
                                        non_finite="fail", target_transform=how)
        expected = fit_labels(train[target], "regression", target_transform=how)
        assert (labels.transform, labels.transformed) == (transform, True)
        assert np.allclose([labels.offset, labels.scale], [expected.offset, expected.scale])
        assert np.allclose(labels.bounds, expected.bounds) if transform == "log" else labels.bounds == []
    scan, sample = scan_stream(files, "target", sample_rows=150)
    manifest, split = split_stream(StreamManifest(files=files, scan=scan, stride=3), 5, 0.2, 0.1)
    _, raw = fit_stream_features(manifest, sample.iloc[split.train], numeric, [], "target", impute="mean",
                                 normalize=True, max_categories=None, task="regression", encoding="integer",
                                 non_finite="fail")
    assert not raw.transformed, "without a target_transform (a functional head) the raw label is learned"


def test_streamed_auto_falls_back_to_the_raw_label_when_the_full_pass_meets_a_negative_one() -> None:
    from kerasflow.features.labels import TargetMoments

    sample = pd.Series(np.exp(np.linspace(0, 6, 50)), name="y")  # skewed, >= 0: auto takes the log
    moments = TargetMoments("auto", sample)
    moments.update(sample)
    moments.update(pd.Series([-1.0, 2.0]))  # a row the sample missed
    values = np.concatenate([sample, [-1.0, 2.0]])
    assert moments.result() == ("none", pytest.approx(values.mean()), pytest.approx(values.std()), [])
    strict = TargetMoments("log", sample)
    with pytest.raises(FeatureError, match="log needs labels >= 0, but 'y' reaches -1"):
        strict.update(pd.Series([3.0, -1.0]))
