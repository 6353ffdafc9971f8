"""Image data: folder listing and validation by file name, decoding, the image spec, image config.

Folders are real PNG files written with Pillow from scikit-learn's digits
(upscaled), plus a corrupt file, a truncated one, a text file, an empty
class folder and a colour image among grayscale ones.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from image_data import digit_png, write_digit_folder

from kerasflow.data.images import check_image_folder, check_pixel_frame, scan_image_folder
from kerasflow.data.load import load_frame
from kerasflow.features.images import ImageDataError, ImageSpec, decode_image, fit_image_spec, pixel_array
from kerasflow.features.tabular import FeatureSpec, frame_to_inputs
from kerasflow.schemas.config import ConfigError, load_config

EXTENSIONS = [".png", ".jpg", ".jpeg"]


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


def test_skip_and_convert_leave_only_structural_problems(messy_folder: Path) -> None:
    folder = scan_image_folder(messy_folder, "label", EXTENSIONS)
    report = check_image_folder(folder, channels=1, on_corrupt="skip", on_channel_mismatch="convert")

    assert report.problems == ["3/: empty class folder, no usable images"]
    assert sorted(line.split(":")[0] for line in report.skipped) == ["1/notes.txt", "2/broken.png", "2/truncated.png"]
    assert len(report.kept) == 25


def test_a_class_emptied_by_skipping_is_reported(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "d", classes=(0,), per_class=3)
    (root / "7").mkdir()
    (root / "7" / "x.png").write_bytes(b"garbage")
    report = check_image_folder(scan_image_folder(root, "label", EXTENSIONS), channels=1, on_corrupt="skip")
    assert report.problems == ["7/: empty class folder, no usable images (1 unusable files)"]


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
