"""Image data: folder listing and validation by file name, decoding, the image spec, image config.

Folders are real PNG files written with Pillow from scikit-learn's digits
(upscaled), plus a corrupt file, a truncated one, a text file, an empty
class folder and a colour image among grayscale ones. A test folder
(`data.test_source`) runs end to end through the `kerasflow` CLI with a
temporary MLflow store: one tiny CNN, one epoch.
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

from kerasflow.data import holdout
from kerasflow.data.images import (
    ImageFolder,
    ImageReport,
    check_image_folder,
    check_pixel_frame,
    scan_image_folder,
    scan_image_folders,
)
from kerasflow.data.load import load_frame
from kerasflow.features.images import ImageDataError, ImageSpec, decode_image, fit_image_spec, pixel_array
from kerasflow.features.tabular import FeatureSpec, frame_to_inputs
from kerasflow.schemas.config import ConfigError, SplitConfig, load_config

EXTENSIONS = [".png", ".jpg", ".jpeg"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def messy_folder(tmp_path: Path) -> Path:
    root = write_digit_folder(tmp_path / "digits")
    good = (root / "2" / "img_000.png").read_bytes()
    (root / "2" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (root / "2" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "1" / "notes.txt").write_text("labelled by hand")
    (root / "0" / "colour.png").write_bytes(digit_png(np.arange(64) % 16, mode="RGB"))
    (root / "0" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "3").mkdir()
    return root


def test_every_problem_file_is_named(messy_folder: Path) -> None:
    folder = scan_image_folder(messy_folder, "label", EXTENSIONS)
    report = check_image_folder(folder, channels=1)

    text = "\n".join(report.problems)
    assert not report.passed
    for name in ("2/broken.png", "2/truncated.png", "1/notes.txt", "0/colour.png", "3/: empty class folder"):
        assert name in text, name
    assert "not an image file (extension .txt" in text
    assert "0/colour.png: 3 channels (RGB), expected 1" in text
    assert "24 files with 1 (grayscale), 1 file with 3 (RGB)" in text
    assert ".DS_Store" not in text
    assert folder.classes == ["0", "1", "2", "3"]
    stats = report.statistics
    assert stats["classes"] == {"0": 9, "1": 8, "2": 8} and stats["unusable"] == 3
    assert stats["width"]["min"] == stats["width"]["max"] == 16 and stats["sizes"] == {"16x16": 25}


def test_skip_and_convert_leave_files_and_empty_classes_out_with_warnings(messy_folder: Path) -> None:
    folder = scan_image_folder(messy_folder, "label", EXTENSIONS)
    report = check_image_folder(folder, channels=1, on_corrupt="skip", on_channel_mismatch="convert")

    assert report.passed
    assert report.warnings == ["3/: class folder without usable images; class '3' is left out (it cannot be learned)"]
    assert sorted(line.split(":")[0] for line in report.skipped) == ["1/notes.txt", "2/broken.png", "2/truncated.png"]
    assert len(report.kept) == 25 and report.statistics["skipped"] == 3
    assert report.notices()[0] == report.warnings[0]
    assert report.notices()[1].startswith("3 files skipped under data.image.on_corrupt: skip "
                                          "(all 3 in images/report.json):\n  - 1/notes.txt: not an image file")


def test_a_class_emptied_by_skipping_is_named(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "d", classes=(0, 1), per_class=3)
    (root / "7").mkdir()
    (root / "7" / "x.png").write_bytes(b"garbage")
    folder = scan_image_folder(root, "label", EXTENSIONS)

    skipped = check_image_folder(folder, channels=1, on_corrupt="skip")
    assert skipped.passed and skipped.skipped == ["7/x.png: corrupt: not a decodable image"]
    assert skipped.warnings == ["7/: class folder without usable images (1 unusable file); class '7' is left out "
                                "(it cannot be learned)"]
    failed = check_image_folder(folder, channels=1)
    assert failed.problems[-1] == ("7/: empty class folder, no usable images (1 unusable file); add images, remove "
                                   "the folder, or set data.image.on_corrupt: skip to leave the class out")
    (root / "1" / "img_000.png").rename(root / "1" / "img_000.txt")
    for name in ("img_001.png", "img_002.png"):
        (root / "1" / name).unlink()
    alone = check_image_folder(scan_image_folder(root, "label", EXTENSIONS), channels=1, on_corrupt="skip")
    assert alone.problems == [f"{root.resolve()}: 1 class with usable images (0); a classifier needs at least 2"]


def test_notices_name_the_first_ten_skipped_files() -> None:
    report = ImageReport(skipped=[f"0/f{i:02d}.png: corrupt" for i in range(13)])
    (notice,) = report.notices()
    lines = notice.splitlines()
    assert lines[0] == "13 files skipped under data.image.on_corrupt: skip (all 13 in images/report.json):"
    assert lines[1:11] == [f"  - 0/f{i:02d}.png: corrupt" for i in range(10)] and lines[11] == "  - ... and 3 more"


def test_a_test_folder_becomes_the_trailing_test_rows(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "train", classes=(0, 1), per_class=6)
    test = write_digit_folder(tmp_path / "test", classes=(0, 1), per_class=3)
    (test / "1" / "broken.png").write_bytes(b"garbage")
    (test / "4").mkdir()  # an empty test class folder is fine: no test rows of that class
    folder = scan_image_folders(root, "label", EXTENSIONS, test_source=test)

    assert folder.test_rows == 7 and folder.test_classes == ["0", "1", "4"] and folder.test_root == str(test.resolve())
    assert folder.frame["file"].iloc[-1] == "test_source/1/img_002.png"
    report = check_image_folder(folder, channels=1, on_corrupt="skip")
    assert report.passed and report.skipped == ["test_source/1/broken.png: corrupt: not a decodable image"]
    assert report.statistics["images"] == 12 and report.statistics["test"]["images"] == 6
    rows = folder.usable()
    assert len(rows.frame) == 18 and rows.test_rows == 6
    assert ImageFolder.load(folder.save(tmp_path / "listing.parquet")).test_rows == 7
    raw = holdout.save_raw(rows.frame, tmp_path / "raw.parquet", rows.test_rows)
    cfg = SplitConfig(val_fraction=0.2)
    split = holdout.split_rows(pd.read_parquet(raw)["label"], cfg, classify=True,
                               test_rows=holdout.test_rows_of(raw))
    assert split.test == list(range(12, 18)) and sorted(split.train + split.val) == list(range(12))


def test_a_test_class_unseen_in_training_is_named_with_its_count(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "train", classes=(0, 1), per_class=4)
    (root / "2").mkdir()
    test = write_digit_folder(tmp_path / "test", classes=(0, 2, 9), per_class=2)
    folder = scan_image_folders(root, "label", EXTENSIONS, test_source=test)

    problems = check_image_folder(folder, channels=1, on_corrupt="skip").problems
    assert problems == [
        f"test_source/2/: 2 test images of class '2', which has no usable images in data.source {root.resolve()}; "
        f"the model cannot predict it",
        f"test_source/9/: 2 test images of class '9', which is not a class folder of data.source {root.resolve()}; "
        f"the model cannot predict it"]
    with pytest.raises(ImageDataError, match="is the same folder as data.source"):
        scan_image_folders(root, "label", EXTENSIONS, test_source=root)


def test_missing_folder_and_clashing_label_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ImageDataError, match="is not a folder"):
        scan_image_folder(tmp_path / "nowhere", "label", EXTENSIONS)
    with pytest.raises(ImageDataError, match="clashes with a listing column"):
        scan_image_folder(tmp_path, "path", EXTENSIONS)


def test_decode_resizes_and_guards_channels() -> None:
    png = digit_png(np.full(64, 16.0), size=12)
    array = decode_image(png, (8, 10), 1)
    assert array.shape == (8, 10, 1) and array.dtype == np.float32 and array.max() > 200
    assert decode_image(png, (8, 8), 3, convert=True).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="1 channels .* expects 3"):
        decode_image(png, (8, 8), 3)
    with pytest.raises(ValueError, match="not a decodable image"):
        decode_image(b"not an image at all", (8, 8), 1)


def test_file_spec_reads_base64_bytes_and_paths_and_names_bad_rows(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "d", classes=(0,), per_class=2)
    files = sorted((root / "0").glob("*.png"))
    spec = fit_image_spec(pd.DataFrame(), layout="files", size=(8, 8), channels=1)
    assert spec.max_value == 255 and spec.columns == ["image"]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]

    from_text = frame_to_inputs(pd.DataFrame({"image": encoded}), spec)["image"]
    from_bytes = spec.frame_to_inputs(pd.DataFrame({"image": [f.read_bytes() for f in files]}))["image"]
    from_paths = spec.frame_to_inputs(pd.DataFrame({"path": [str(f) for f in files]}))["image"]
    assert from_text.shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(from_text, from_bytes)
    np.testing.assert_array_equal(from_text, from_paths)

    rgb = base64.b64encode(digit_png(np.zeros(64), mode="RGB")).decode()
    bad = pd.DataFrame({"image": [encoded[0], "%%% not base64", rgb, base64.b64encode(b"junk").decode()]},
                       index=["a", "b", "c", "d"])
    with pytest.raises(ImageDataError) as err:
        spec.frame_to_inputs(bad)
    problems = err.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("row 1 (index 'b'): not valid base64")
    assert problems[1].startswith("row 2 (index 'c'): image has 3 channels")
    assert problems[2].startswith("row 3 (index 'd'): not a decodable image")
    assert spec.serving_frame(pd.DataFrame({"path": [str(files[0])]}))["image"][0] == encoded[0]


def test_image_spec_round_trips_through_feature_spec_load(tmp_path: Path) -> None:
    frame = load_frame("digits")
    columns = [c for c in frame.columns if c != "target"]
    spec = fit_image_spec(frame.head(100), layout="pixels", size=(8, 8), channels=1, pixel_columns=columns)
    assert spec.max_value == 16.0 and spec.columns == columns
    loaded = FeatureSpec.load(spec.save(tmp_path / "features.json"))
    assert isinstance(loaded, ImageSpec) and loaded == spec
    images = frame_to_inputs(frame.head(3), loaded)["image"]
    np.testing.assert_array_equal(images[1, 2], frame.loc[1, [f"pixel_2_{j}" for j in range(8)]].to_numpy()[:, None])


def test_pixel_tables_are_checked_and_bad_rows_named() -> None:
    frame = load_frame("digits").head(50)
    columns = [c for c in frame.columns if c != "target"]
    assert check_pixel_frame(frame, "target", columns, (8, 8, 1)).passed
    wrong = check_pixel_frame(frame, "target", columns[:-1], (8, 8, 1))
    assert "needs 64 pixel columns, the data have 63" in wrong.problems[0]
    holes = frame.copy()
    holes.loc[[3, 7], "pixel_4_4"] = np.nan
    holes.loc[9, "pixel_0_0"] = -1.0
    problems = check_pixel_frame(holes, "target", columns, (8, 8, 1)).problems
    assert problems == ["2 rows with missing pixel values: [3, 7]", "1 rows with negative pixel values: [9]"]
    with pytest.raises(ImageDataError, match=r"row 7: missing or non-numeric pixel values in pixel_4_4"):
        pixel_array(holes, columns, (8, 8, 1))
    with pytest.raises(ImageDataError, match="missing 1 of the 64 pixel columns"):
        pixel_array(frame.drop(columns="pixel_7_7"), columns, (8, 8, 1))


def _config(tmp_path: Path, **sections) -> Path:
    data = {"name": "img", "data": {"source": "digits", "target": "target", "image": {"size": [8, 8], "channels": 1}},
            "model": {"kind": "cnn"}, **sections}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _problems(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    return err.value.problems


def test_image_config_validates_with_paths(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, model={"kind": "cnn", "augmentation": {"zoom_range": [0.9, 1.2]}}))
    assert cfg.model.kind == "cnn" and cfg.data.image.shape == (8, 8, 1)
    assert cfg.model.augmentation.zoom_factors() == pytest.approx((-0.1, 0.2))
    path = _config(tmp_path)
    assert _problems(path, ["model.filterz=[8]"])[0].startswith("model.filterz: unknown key (allowed: activation,")
    assert _problems(path, ["data.image.channels=2"])[0].startswith("data.image.channels: Input should be 1, 3 or 4")
    assert _problems(path, ["model.kind=dense"]) == [
        "data.image: image data need an image model (model.kind: cnn), not 'dense'"]
    assert _problems(path, ["model.augmentation.shear_range=60"])[0].startswith(
        "model.augmentation.shear_range: Input should be less than or equal to 45")
    no_image = yaml.safe_load(path.read_text())
    del no_image["data"]["image"]
    path.write_text(yaml.safe_dump(no_image))
    assert _problems(path) == ["model.kind: a cnn needs image data: set data.image (size and channels)"]


def test_test_source_must_be_the_same_kind_as_source(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "train", classes=(0,), per_class=1)
    test = write_digit_folder(tmp_path / "test", classes=(0,), per_class=1)
    path = _config(tmp_path)
    folder = [f"data.source={root}", "data.target=label"]

    assert _problems(path, [*folder, f"data.test_source={tmp_path / 'test.csv'}"]) == [
        f"data.test_source: '{tmp_path / 'test.csv'}' is a .csv file, but data.source '{root}' is a folder of class "
        f"subfolders: give the test images as a folder of the same class subfolders (a table of test rows goes "
        f"with a table source)"]
    assert _problems(path, [f"data.test_source={test}"])[0].startswith(
        f"data.test_source: '{test}' is a folder, but data.source 'digits' is a table (or built-in set)")
    assert "is the same folder as data.source" in _problems(path, [*folder, f"data.test_source={root}"])[0]
    assert load_config(path, [*folder, f"data.test_source={test}"]).data.test_source == str(test)


@pytest.mark.parametrize(("base", "fragment"), [
    ({"source": "MobileNetV2"}, "needs a local weights file"),
    ({"source": "models:/digits"}, "is not models:/name@alias or models:/name/version"),
    ({"source": "weights.h5"}, "neither a .keras file, a models:/ URI nor one of the architectures"),
    ({"source": "m.keras", "weights": "w.h5"}, "weights: for keras.applications architectures only"),
    ({"source": "models:/m/1", "input_size": [32, 32]}, "input_size: for keras.applications architectures only"),
    ({"source": "EfficientNetB0", "weights": "w.h5", "alpha": 0.5}, "alpha applies to"),
    ({"source": "m.keras", "fine_tune": {"layers": 0}}, "greater than 0"),
])
def test_bad_base_references_are_config_errors(tmp_path: Path, base: dict, fragment: str) -> None:
    problems = _problems(_config(tmp_path, model={"kind": "cnn", "base": base}))
    assert problems[0].startswith("model.base") and fragment in problems[0]


def test_bundled_image_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs/digits_cnn.yaml")
    assert cfg.model.kind == "cnn" and cfg.data.image.shape == (8, 8, 1)


def _kerasflow(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, str]:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    return proc, store


def _folder_run(name: str, source: Path, test_source: Path | str, *more: str) -> list[str]:
    sets = [f"name={name}", f"data.source={source}", f"data.test_source={test_source}", "data.image.size=[8,8]",
            "training.epochs=1", "model.filters=[4]", "model.convs_per_block=1", "model.dense_units=[8]", *more]
    return ["run", "configs/digits_folder.yaml", *(arg for item in sets for arg in ("--set", item))]


def test_a_test_folder_is_the_test_split_of_a_cli_run(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "train", classes=(0, 1, 2), per_class=8)
    (root / "5").mkdir()
    (root / "1" / "broken.png").write_bytes(b"garbage")
    test = write_digit_folder(tmp_path / "test", classes=(0, 1, 2), per_class=3)
    (test / "2" / "notes.txt").write_text("labelled by hand")
    proc, store = _kerasflow(tmp_path, *_folder_run("folder-test-source", root, test, "data.image.on_corrupt=skip"))

    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "5/: class folder without usable images; class '5' is left out (it cannot be learned)" in output
    assert "2 files skipped under data.image.on_corrupt: skip (all 2 in images/report.json):" in output
    assert "  - 1/broken.png: corrupt: not a decodable image" in output
    assert "  - test_source/2/notes.txt: not an image file (extension .txt" in output
    client = mlflow.MlflowClient(store, store)
    run = client.search_runs([client.get_experiment_by_name("folder-test-source").experiment_id])[0]
    counts = {name: int(value) for name, value in run.data.params.items()
              if name.startswith(("split.", "images.")) and value.isdigit()}
    assert counts["split.test_rows"] == len(list(test.rglob("*.png"))) == 9
    assert counts["split.train_rows"] + counts["split.val_rows"] == 24 and counts["images.test_images"] == 9
    assert run.data.tags["kerasflow.test_source"] == str(test.resolve())


def test_a_folder_source_with_a_csv_test_source_is_a_config_error(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "train", classes=(0, 1), per_class=2)
    proc, _ = _kerasflow(tmp_path, *_folder_run("folder-csv-test", root, tmp_path / "test.csv"))

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: invalid config configs/digits_folder.yaml:\n  - data.test_source: " in proc.stderr
    assert "is a folder of class subfolders: give the test images as a folder" in proc.stderr
