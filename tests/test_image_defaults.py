"""Image folders with defaults: size and channels inferred from file headers, a wrong channel count refused from a
sample in a few lines, and the default CNN sized to the images.

Folders are real PNG files written with Pillow (scikit-learn's digits, upscaled); the run with the data-driven model
and training sections goes through the real train flow under Prefect's test harness.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import yaml
from image_data import digit_png, write_digit_folder
from PIL import Image
from test_datakinds import Recorded

from kerasflow.data.image_sample import infer_image_shape, sample_image_headers
from kerasflow.data.images import check_image_folder, scan_image_folder
from kerasflow.data.load import load_frame
from kerasflow.features.images import ImageDataError
from kerasflow.lint.choose import choose_defaults, lint_profile
from kerasflow.lint.rules import lint_config
from kerasflow.models.cnn import default_section
from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config
from kerasflow.training.kinds import kind_of


def _only_data(tmp_path: Path, source: Path | str, sections: dict | None = None, **data: object) -> str:
    path = tmp_path / "only-data.yaml"
    path.write_text(yaml.safe_dump({"name": "only-data", "data": {"source": str(source), "image": {}, **data},
                                    **(sections or {})}))
    return str(path)


def _recolour(root: Path, mode: str) -> Path:
    for file in root.rglob("*.png"):
        with Image.open(file) as img:
            converted = img.convert(mode)
        converted.save(file)
    return root


def test_a_grayscale_folder_gets_its_size_and_one_channel_from_the_headers(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "gray", classes=(0, 1, 2), per_class=6)
    (root / "0" / "big.png").write_bytes(digit_png(np.arange(64) % 16, size=20))  # the most common size wins
    path = _only_data(tmp_path, root)
    written = load_config(path)
    assert written.data.target == "label" and written.data.image.size is None and written.model.kind == "cnn"

    defaulted = choose_defaults(written, path)
    image = defaulted.config.data.image
    assert image.size == (16, 16) and image.channels == 1 and image.shape == (16, 16, 1)
    assert image.on_channel_mismatch == "convert" and image.inferred == ["size", "channels", "on_channel_mismatch"]
    line = defaulted.describe()
    assert line.startswith("data.image inferred from the files: image size 16x16, 1 channel (grayscale) from the "
                           "headers of 19 of 19 files, 95% of them at that size; other channel counts are converted;")
    assert "defaults chosen from the data: split kfold" in line and "\n" not in line
    assert defaulted.config.model.kind == "cnn" and defaulted.config.training.epochs == 60


@pytest.mark.parametrize(("mode", "channels"), [("RGB", 3), ("RGBA", 3), ("P", 1), ("LA", 1)])
def test_colour_folders_get_three_channels_and_gray_palettes_one(tmp_path: Path, mode: str, channels: int) -> None:
    root = _recolour(write_digit_folder(tmp_path / mode, classes=(0, 1), per_class=3), mode)
    shape = infer_image_shape(sample_image_headers(root, [".png"]))
    assert (shape.size, shape.channels, shape.sampled, shape.files) == ((16, 16), channels, 6, 6)


def test_a_mixed_folder_gets_three_channels_and_the_sample_is_bounded(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "mixed", classes=(0, 1, 2), per_class=10)
    (root / "2" / "colour.png").write_bytes(digit_png(np.arange(64) % 16, mode="RGB"))
    assert infer_image_shape(sample_image_headers(root, [".png"])).channels == 3
    bounded = sample_image_headers(root, [".png"], limit=6)
    assert len(bounded) == 31 and bounded["sampled"].sum() == 6
    assert set(bounded.loc[bounded["sampled"], "label"]) == {"0", "1", "2"}, "spread over every class"


def test_only_what_the_config_leaves_out_is_inferred(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "gray", classes=(0, 1), per_class=4)
    path = _only_data(tmp_path, root)
    config = choose_defaults(load_config(path, ["data.image.size=[8,8]", "data.image.on_channel_mismatch=fail"]),
                             path).config
    assert config.data.image.size == (8, 8) and config.data.image.channels == 1
    assert config.data.image.inferred == ["channels"] and config.data.image.on_channel_mismatch == "fail"


def test_pixel_tables_need_a_size_and_infer_channels_from_the_column_count(tmp_path: Path) -> None:
    pixels = tmp_path / "pixels.csv"
    load_frame("digits").head(60).to_csv(pixels, index=False)
    path = _only_data(tmp_path, pixels, target="target")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.problems == [f"data.image.size: '{pixels}' is not a folder of class subfolders, whose "
                                      f"image size is inferred: give [height, width] for its pixel columns (or "
                                      f"correct the folder's path)"]
    defaulted = choose_defaults(load_config(path, ["data.image.size=[8,8]"]), path)
    assert defaulted.config.data.image.shape == (8, 8, 1) and defaulted.config.data.image.inferred == ["channels"]


def test_a_wrong_channel_count_is_refused_from_a_sample_in_a_few_lines(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "gray", classes=(0, 1, 2), per_class=10)
    path = _only_data(tmp_path, root)
    config = choose_defaults(load_config(path, ["data.image.channels=3"]), path).config
    assert config.data.image.channels == 3 and config.data.image.inferred == ["size"]

    linted, profile = lint_profile(load_config(path, ["data.image.channels=3"]), path)
    (finding,) = [f for f in lint_config(linted, profile).errors if f.rule == "image-channels"]
    assert finding.path == "data.image.channels" and "30 of 30 sampled files have another count (30 with 1)" in \
        finding.message and "set data.image.channels: 1" in finding.message

    workdir = tmp_path / "load"
    workdir.mkdir()
    with pytest.raises(ImageDataError) as refused:
        kind_of(config.data).load(config, str(workdir), Recorded())
    lines = str(refused.value).splitlines()
    assert lines[0] == f"image data {root} has 1 problem:"
    assert lines[1] == ("  - data.image.channels is 3 (RGB), but 30 of 30 files sampled from 30 have another channel "
                        "count: 30 with 1 (grayscale); set data.image.channels: 1, or "
                        "data.image.on_channel_mismatch: convert to convert them; for example:")
    assert lines[2] == "      0/img_000.png: 1 channel (L)"
    assert len(lines) == 13 and lines[-1] == "      ... and 20 more sampled files"
    assert not list(workdir.iterdir()), "refused before any file was decoded or written"


def test_per_file_lists_of_the_full_check_are_capped(tmp_path: Path) -> None:
    root = write_digit_folder(tmp_path / "gray", classes=(0, 1), per_class=15)
    (root / "1" / "broken.png").write_bytes(b"garbage")
    report = check_image_folder(scan_image_folder(root, "label", [".png"]), channels=3)
    assert len(report.files["channel_mismatch"]) == 30 and len(report.files["unusable"]) == 1
    assert report.problems[0] == "1/broken.png: corrupt: not a decodable image"
    assert report.problems[-1] == "... and 20 more files with another channel count (all in images/report.json)"
    assert len(report.problems) == 1 + 1 + 10 + 1
    message = str(ImageDataError("many", [f"file {i}" for i in range(100)]))
    assert len(message.splitlines()) == 32 and message.endswith("  - ... and 70 more problems")


def test_the_default_cnn_is_sized_to_the_images(tmp_path: Path) -> None:
    def section(size: list[int]) -> dict:
        config = PipelineConfig.model_validate({"name": "x", "data": {"source": str(tmp_path), "image": {
            "size": size, "channels": 1}}})
        return default_section(config, SimpleNamespace(images=True))

    small, mnist, large = section([16, 16]), section([28, 28]), section([128, 128])
    assert small["filters"] == [32, 64] and small["reduce"] == "flatten" and small["convs_per_block"] == 2
    assert mnist["filters"] == [32, 64] and mnist["reduce"] == "flatten"
    assert large["filters"] == [32, 64, 128, 128] and large["reduce"] == "global_average"


def test_a_defaults_only_folder_run_learns_and_records_what_it_inferred(prefect_harness, mlflow_store: str,
                                                                         tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    root = write_digit_folder(tmp_path / "digits", classes=(0, 1, 2, 3), per_class=30)
    result = train_flow(_only_data(tmp_path, root, {"split": {"kind": "holdout"}}))  # one fit, not five folds

    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    params = run.data.params
    assert params["data.image.size"] == "[16, 16]" and params["data.image.channels"] == "1"
    assert params["data.image.inferred"] == '["size", "channels", "on_channel_mismatch"]'
    assert params["model.kind"] == "cnn" and params["training.epochs"] == "60" and params["model.filters"] == "[32, 64]"
    assert result.metrics["accuracy"] >= 0.8, result.metrics  # 24 test images of 4 digits
