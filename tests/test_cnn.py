"""CNNs on real images: architecture from config, augmentation, transfer learning, the flow end to end.

Every model is tiny and trains for a few epochs on scikit-learn's digits
(as 8x8x1 pixel tables, or as PNG folders written with Pillow). The whole
transfer cycle runs through the real flow under Prefect's test harness: a
CNN trained on digits 0-4 is registered, then reused as the frozen base of
a model for digits 5-9.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from image_data import digit_png, write_digit_folder

from kerasflow.data.load import load_frame
from kerasflow.features.images import ImageDataError, ImageSpec, fit_image_spec
from kerasflow.features.labels import encode_labels, fit_labels
from kerasflow.flows.results import TrainResult
from kerasflow.models.cnn import build_cnn, find_base, load_base
from kerasflow.models.errors import BaseModelError
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.final import model_spec

ROOT = Path(__file__).resolve().parents[1]
IMAGE = {"size": [8, 8], "channels": 1}
TINY = {"kind": "cnn", "filters": [8, 16], "dense_units": [16]}


def _digits(classes: range) -> pd.DataFrame:
    frame = load_frame("digits")
    return frame[frame["target"].isin(list(classes))].reset_index(drop=True)


def _pixel_spec(frame: pd.DataFrame) -> ImageSpec:
    columns = [c for c in frame.columns if c != "target"]
    return fit_image_spec(frame, layout="pixels", size=(8, 8), channels=1, pixel_columns=columns)


def _spec(model: dict, frame: pd.DataFrame, image: ImageSpec | None = None, search_space: dict | None = None):
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "digits", "target": "target",
                                                                  "image": IMAGE}, "model": model})
    return model_spec(config, image or _pixel_spec(frame), fit_labels(frame["target"]), search_space)


def _x(frame: pd.DataFrame, spec: ImageSpec) -> np.ndarray:
    return spec.frame_to_inputs(frame)["image"]


def _layers(model) -> dict[str, str]:
    return {layer.name: type(layer).__name__ for layer in model.layers}


def test_architecture_follows_the_config() -> None:
    frame = _digits(range(10)).head(64)
    model = build_cnn(None, _spec({"kind": "cnn", "filters": [4, 8, 8], "convs_per_block": 2,
                                   "convolution": "separable", "batch_norm": True, "dropout": 0.2,
                                   "reduce": "flatten", "dense_units": [12], "head_dropout": 0.5}, frame))
    kinds = _layers(model)
    assert kinds["rescaling"] == "Rescaling" and model.get_layer("rescaling").scale == pytest.approx(1 / 16)
    separable = [name for name, kind in kinds.items() if kind == "SeparableConv2D"]
    assert separable == [f"conv_{i}_{j}" for i in range(3) for j in range(2)]
    assert sum(k == "BatchNormalization" for k in kinds.values()) == 6
    assert {"pool_0", "pool_2", "dropout_1", "head_dropout_0", "head_dropout_out"} <= set(kinds)
    assert kinds["features"] == "Flatten" and model.get_layer("head_0").units == 12
    assert model.output_shape == (None, 10) and model.input_shape == (None, 8, 8, 1)
    plain = build_cnn(None, _spec({"kind": "cnn", "filters": [4], "batch_norm": False, "pooling": "none"}, frame))
    assert _layers(plain)["features"] == "GlobalAveragePooling2D" and "pool_0" not in _layers(plain)
    assert "BatchNormalization" not in _layers(plain).values() and _layers(plain)["conv_0_0"] == "Conv2D"


def test_searched_parameters_come_from_the_tuner() -> None:
    import keras_tuner

    frame = _digits(range(10)).head(64)
    space = {"model.conv_blocks": {"type": "int", "min": 1, "max": 3},
             "model.filters": {"type": "choice", "values": [4, 6]},
             "model.convolution": {"type": "choice", "values": ["conv2d", "separable"]}}
    hp = keras_tuner.HyperParameters()
    hp.Fixed("model.conv_blocks", 3)
    hp.Fixed("model.filters", 6)
    hp.Fixed("model.convolution", "separable")
    model = build_cnn(hp, _spec(TINY, frame, search_space=space))
    convs = [layer for layer in model.layers if type(layer).__name__ == "SeparableConv2D"]
    assert [c.filters for c in convs] == [6, 6, 6]
    first = build_cnn(keras_tuner.HyperParameters(), _spec(TINY, frame, search_space=space))
    # a fresh trial: config defaults where they are candidates (2 blocks, conv2d), else the first choice
    assert [layer.filters for layer in first.layers if type(layer).__name__ == "Conv2D"] == [4, 4]


def test_augmentation_runs_in_training_only() -> None:
    frame = _digits(range(10)).head(16)
    image = _pixel_spec(frame)
    augmentation = {"rotation_range": 20, "width_shift_range": 0.2, "height_shift_range": 0.2, "shear_range": 15,
                    "zoom_range": 0.2, "horizontal_flip": True, "fill_mode": "constant"}
    model = build_cnn(None, _spec({**TINY, "augmentation": augmentation}, frame, image))
    kinds = _layers(model)
    for name, kind in [("augment_rotation", "RandomRotation"), ("augment_translation", "RandomTranslation"),
                       ("augment_shear", "RandomShear"), ("augment_zoom", "RandomZoom"),
                       ("augment_flip", "RandomFlip")]:
        assert kinds[name] == kind
    x = _x(frame, image)
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, second)
    augmented = model.get_layer("augment_rotation")(x, training=True)
    assert not np.allclose(np.asarray(augmented), x)


def test_application_base_with_local_weights_is_frozen(tmp_path: Path) -> None:
    import keras

    frame = _digits(range(3)).head(48)
    image = _pixel_spec(frame)
    weights = tmp_path / "mobilenet_v2_0.35_32.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35, input_shape=(32, 32, 3)) \
        .save_weights(weights)
    base = {"source": "MobileNetV2", "weights": str(weights), "alpha": 0.35, "input_size": [32, 32]}
    model = build_cnn(None, _spec({**TINY, "base": base}, frame, image))
    kinds = _layers(model)
    assert kinds["resize_to_base"] == "Resizing" and kinds["gray_to_rgb"] == "Concatenate"
    assert model.get_layer("rescaling").offset == -1.0  # MobileNetV2 takes [-1, 1]
    nested = find_base(model)
    assert not nested.trainable and not nested.trainable_weights
    before = [w.copy() for w in nested.get_weights()]
    model.fit(_x(frame, image), encode_labels(frame["target"], fit_labels(frame["target"])), epochs=1,
              batch_size=16, verbose=0)
    for old, new in zip(before, nested.get_weights()):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(BaseModelError, match="never downloaded"):
        build_cnn(None, _spec({**TINY, "base": {**base, "weights": str(tmp_path / "missing.h5")}}, frame, image))
    with pytest.raises(BaseModelError, match="cannot build MobileNetV2 at 32x32"):
        build_cnn(None, _spec({**TINY, "base": {**base, "alpha": 0.5}}, frame, image))


def test_bad_keras_file_bases_are_named(tmp_path: Path) -> None:
    frame = _digits(range(3)).head(16)
    def base(source: str) -> object:
        return _spec({**TINY, "base": {"source": source}}, frame).model.base

    with pytest.raises(BaseModelError, match="does not exist"):
        load_base(base(str(tmp_path / "none.keras")), _pixel_spec(frame))
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(BaseModelError, match="cannot load .* as a Keras model"):
        load_base(base(str(tmp_path / "junk.keras")), _pixel_spec(frame))
    model = build_cnn(None, _spec(TINY, frame))
    model.save(tmp_path / "small.keras")
    spec = _spec({**TINY, "base": {"source": str(tmp_path / "small.keras"), "output_layer": "nope"}}, frame)
    with pytest.raises(BaseModelError, match="'nope' is not a layer of .*layers: image, rescaling, conv_0_0"):
        load_base(spec.model.base, _pixel_spec(frame))


# ---- the flow, end to end ------------------------------------------------------------------------


def _write_config(tmp_path: Path, name: str, data: dict, model: dict, epochs: int = 4) -> str:
    config = {"name": name, "data": data, "model": model, "split": {"kind": "holdout"},
              "training": {"epochs": epochs, "batch_size": 16, "early_stopping": {"patience": 3}},
              "registry": {"model_name": name}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _keras_file(uri: str):
    import keras

    folder = Path(mlflow.artifacts.download_artifacts(uri))
    return keras.models.load_model(next(folder.rglob("*.keras")))


@pytest.fixture(scope="module")
def low_digits_run(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    from kerasflow.flows.train import train_flow

    folder = tmp_path_factory.mktemp("low")
    _digits(range(5)).to_csv(folder / "low.csv", index=False)
    data = {"source": str(folder / "low.csv"), "target": "target", "image": IMAGE}
    model = {**TINY, "augmentation": {"rotation_range": 5, "zoom_range": 0.05}}
    return train_flow(_write_config(folder, "cnn-low", data, model))


def test_registered_cnn_serves_raw_pixels(low_digits_run: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(low_digits_run.run_id)
    assert run.info.status == "FINISHED" and low_digits_run.metrics["accuracy"] > 0.5
    assert int(run.data.params["images.images"]) == len(_digits(range(5)))
    assert int(run.data.params["images.class.3"]) == (load_frame("digits")["target"] == 3).sum()
    assert run.data.params["preprocessing.image_shape"] == "[8, 8, 1]"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "images")}
    assert {"images/report.json", "images/summary.txt"} <= artifacts
    served = mlflow.pyfunc.load_model(low_digits_run.model_uri)
    rows = _digits(range(5)).drop(columns="target").sample(10, random_state=1)
    predictions = served.predict(rows)
    assert set(predictions["prediction"]) <= {"0", "1", "2", "3", "4"}
    images = rows.to_numpy(dtype="float32").reshape(-1, 8, 8, 1)
    raw = _keras_file(low_digits_run.model_uri).predict(images, verbose=0)
    np.testing.assert_allclose(predictions[[f"proba_{i}" for i in range(5)]].to_numpy(), raw, rtol=1e-5)


def test_registered_cnn_is_a_frozen_base_for_other_classes(low_digits_run: TrainResult, mlflow_store: str,
                                                           tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    client = mlflow.MlflowClient(mlflow_store)
    client.set_registered_model_alias("cnn-low", "base", low_digits_run.version)
    _digits(range(5, 10)).to_csv(tmp_path / "high.csv", index=False)
    data = {"source": str(tmp_path / "high.csv"), "target": "target", "image": IMAGE}
    fine_tune = {"layers": 6, "learning_rate": 1e-4, "epochs": 2}
    model = {"kind": "cnn", "dense_units": [16], "base": {"source": "models:/cnn-low@base", "fine_tune": fine_tune}}

    result = train_flow(_write_config(tmp_path, "cnn-high", data, model, epochs=3))

    run = client.get_run(result.run_id)
    assert run.data.tags["kerasflow.base_model"] == f"models:/cnn-low/{low_digits_run.version}"
    assert run.data.params["finetune.unfrozen"] == '["conv_1_0"]'
    assert client.get_metric_history(run.info.run_id, "train/loss")
    assert len(client.get_metric_history(run.info.run_id, "finetune/loss")) == run.data.metrics["finetune/epochs_run"]
    source = _keras_file(low_digits_run.model_uri)
    tuned = find_base(_keras_file(result.model_uri))
    for name in ("conv_0_0", "batch_norm_0_0", "batch_norm_1_0"):  # frozen in both phases
        for old, new in zip(source.get_layer(name).get_weights(), tuned.get_layer(name).get_weights()):
            np.testing.assert_array_equal(old, new)
    tuned_kernel = tuned.get_layer("conv_1_0").get_weights()[0]
    assert not np.array_equal(source.get_layer("conv_1_0").get_weights()[0], tuned_kernel)
    rows = _digits(range(5, 10)).drop(columns="target").head(8)
    assert set(mlflow.pyfunc.load_model(result.model_uri).predict(rows)["prediction"]) <= {"5", "6", "7", "8", "9"}


def test_phase_one_leaves_a_registered_base_untouched(low_digits_run: TrainResult, tmp_path: Path) -> None:
    folder = Path(mlflow.artifacts.download_artifacts(low_digits_run.model_uri, dst_path=str(tmp_path)))
    frame = _digits(range(5, 10))
    image = _pixel_spec(frame)
    model = build_cnn(None, _spec({**TINY, "base": {"source": str(next(folder.rglob("*.keras")))}}, frame, image))
    assert "rescaling" not in _layers(model), "a kerasflow base rescales raw pixels itself"
    nested = find_base(model)
    before = [w.copy() for w in nested.get_weights()]
    model.fit(_x(frame, image), encode_labels(frame["target"], fit_labels(frame["target"])), epochs=1, batch_size=64,
              verbose=0)
    assert not nested.trainable_weights
    for old, new in zip(before, nested.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_unknown_registered_base_fails_the_run_and_keeps_the_registry(low_digits_run: TrainResult, mlflow_store: str,
                                                                      tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    client = mlflow.MlflowClient(mlflow_store)
    versions = len(client.search_model_versions("name='cnn-low'"))
    data = {"source": "digits", "target": "target", "image": IMAGE}
    path = _write_config(tmp_path, "cnn-orphan", data, {**TINY, "base": {"source": "models:/cnn-low@nowhere"}})
    with pytest.raises(BaseModelError, match="models:/cnn-low@nowhere: no such registered model version"):
        train_flow(path)
    experiment = client.get_experiment_by_name("cnn-orphan")
    failed = client.search_runs([experiment.experiment_id])[0]
    assert failed.info.status == "FAILED" and "BaseModelError" in failed.data.tags["kerasflow.error"]
    assert len(client.search_model_versions("name='cnn-low'")) == versions


def test_image_folder_trains_and_serves_base64_files(prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    root = write_digit_folder(tmp_path / "folder", classes=(0, 1, 7), per_class=20)
    (root / "7" / "half.png").write_bytes((root / "7" / "img_000.png").read_bytes()[:40])
    data = {"source": str(root), "target": "label",  # streamed from disk (tf.data); the defaults-only run holds them
            "image": {"size": [16, 16], "channels": 1, "on_corrupt": "skip", "in_memory": False}}
    result = train_flow(_write_config(tmp_path, "cnn-folder", data, TINY, epochs=3))

    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    assert run.data.params["images.images"] == "60" and run.data.params["images.width_max"] == "16"
    assert run.data.params["images.skipped"] == "1" and run.data.params["data.files"] == "61"
    assert run.data.params["split.test_rows"] == "12" and len(run.data.tags["kerasflow.data_fingerprint"]) == 64
    assert run.data.params["preprocessing.streamed"] == "true" and "test/accuracy" in run.data.metrics
    summary = Path(client.download_artifacts(run.info.run_id, "images/summary.txt", str(tmp_path))).read_text()
    assert "skipped: 7/half.png: corrupt" in summary
    served = mlflow.pyfunc.load_model(result.model_uri)
    assert served.metadata.get_input_schema().input_names() == ["image"]
    files = sorted((root / "7").glob("img_*.png"))[:3]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    bigger = base64.b64encode(digit_png(np.full(64, 8.0), size=40)).decode()  # resized like training files
    predictions = served.predict(pd.DataFrame({"image": [*encoded, bigger]}))
    assert len(predictions) == 4 and set(predictions["prediction"]) <= {"0", "1", "7"}
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"row 1: not a decodable image") as refused:
        served.predict(pd.DataFrame({"image": [encoded[0], base64.b64encode(b"<html>").decode()]}))
    assert isinstance(refused.value.__cause__, ImageDataError)  # a 400 when served, naming the row


def test_a_messy_folder_is_rejected_before_training(mlflow_store: str, tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "messy", classes=(0, 1), per_class=4)
    (root / "1" / "broken.png").write_bytes(b"\x89PNG garbage")
    (root / "0" / "readme.txt").write_text("hello")
    (root / "0" / "rgb.png").write_bytes(digit_png(np.zeros(64), mode="RGB"))
    (root / "2").mkdir()
    data = {"source": str(root), "target": "label", "image": {"size": [8, 8], "channels": 1}}
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    config = _write_config(tmp_path, "cnn-messy", data, TINY)
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "validate", config], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)

    assert proc.returncode == 2, proc.stderr
    assert "error: bad image data: image data" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    for name in ("1/broken.png", "0/readme.txt", "0/rgb.png: 3 channels (RGB), expected 1", "2/: empty class folder"):
        assert name in proc.stderr
    client = mlflow.MlflowClient(mlflow_store)
    failed = client.search_runs([client.get_experiment_by_name("cnn-messy").experiment_id])[0]
    assert failed.info.status == "FAILED"
    assert "images/report.json" in {a.path for a in client.list_artifacts(failed.info.run_id, "images")}
    assert failed.data.params["images.problems"] == "5"
