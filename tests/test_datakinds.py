"""The data kinds (`kerasflow.training.kinds`): each resolves from its config and loads, profiles, checks and splits
through the one interface exactly as the library functions it wraps do."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from image_data import write_digit_folder

from kerasflow.data import holdout
from kerasflow.data.load import fingerprint_frame, load_frame
from kerasflow.data.split import Split
from kerasflow.data.stream import MANIFEST, fit_stream_features, manifest_beside, scan_stream, stream_files
from kerasflow.features.images import ImageSpec
from kerasflow.features.labels import fit_labels
from kerasflow.features.tabular import FeatureSpec, fit_features, select_columns
from kerasflow.lint.defaults import default_model
from kerasflow.lint.profile import profile_frame, profile_source
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.training.kinds import kind_of, register
from kerasflow.training.kinds.base import KINDS
from kerasflow.training.kinds.images import ImageCheck, sidecar_path
from kerasflow.training.kinds.table import Table


class Recorded:
    """A `StepLog` that keeps what a kind logs, in order (the tasks pass the tracker and the step's logger)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def tags(self, tags: dict[str, Any]) -> None:
        self.calls.append(("tags", dict(tags)))

    def params(self, params: dict[str, Any], prefix: str = "") -> None:
        self.calls.append(("params", {prefix + k: v for k, v in params.items()}))

    def metrics(self, metrics: dict[str, float], prefix: str = "", step: int = 0) -> None:
        self.calls.append(("metrics", {prefix + k: v for k, v in metrics.items()}))

    def counts(self, counts: dict[str, float], prefix: str = "") -> None:
        self.calls.append(("counts", {prefix + k: v for k, v in counts.items()}))

    def json(self, data: Any, artifact_file: str) -> None:
        self.calls.append(("json", artifact_file))

    def text(self, text: str, artifact_file: str) -> None:
        self.calls.append(("text", artifact_file))

    def dataset(self, frame: Any, *, source: str, digest: str, target: str, rows: int | None = None) -> None:
        self.calls.append(("dataset", {"source": source, "digest": digest, "target": target, "rows": rows}))

    def warning(self, message: str) -> None:
        self.calls.append(("warning", message))

    def merged(self, what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.calls:
            if name == what:
                out.update(value)
        return out

    def files(self) -> list[str]:
        return [value for name, value in self.calls if name in ("json", "text")]


def config_of(data: dict[str, Any], **sections: Any) -> PipelineConfig:
    return PipelineConfig.model_validate({"name": "kinds", "data": data,
                                          "split": {"test_fraction": 0.2, "val_fraction": 0.2, "seed": 3},
                                          **sections})


def same_spec(a: Any, b: Any, folder: Path) -> bool:
    return a.save(folder / "a.json").read_text() == b.save(folder / "b.json").read_text()


def write_shards(frame: pd.DataFrame, folder: Path, shards: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


@pytest.fixture()
def digits_folder(tmp_path: Path) -> Path:
    return write_digit_folder(tmp_path / "digits", classes=(0, 1, 2), per_class=6)


def image_config(source: Path | str, **image: Any) -> PipelineConfig:
    return config_of({"source": str(source), "target": "label", "image": {"size": [16, 16], "channels": 1, **image}})


def test_each_kind_resolves_from_its_data_section(tmp_path: Path, digits_folder: Path) -> None:
    pixels = tmp_path / "pixels.csv"
    load_frame("digits").to_csv(pixels, index=False)
    assert kind_of(DataConfig(source="iris", target="species")).name == "table"
    assert kind_of(DataConfig(source="x.parquet", target="y", streaming=True)).name == "stream"
    assert kind_of(DataConfig(source=str(digits_folder), target="label", image={"size": [8, 8]})).name == \
        "image_folder"
    assert kind_of(DataConfig(source=str(pixels), target="target", image={"size": [8, 8]})).name == "pixel_table"
    assert {k.name for k in KINDS} >= {"table", "stream", "image_folder", "pixel_table"}


def test_a_new_kind_is_one_registered_class(tmp_path: Path) -> None:
    @register
    class Spreadsheet(Table):  # reads like a table; claims sources ending in .ods
        name: ClassVar[str] = "spreadsheet"
        priority: ClassVar[int] = 5

        @classmethod
        def claims(cls, data: DataConfig) -> bool:
            return data.source.endswith(".ods")

    try:
        assert isinstance(kind_of(DataConfig(source="sheet.ods", target="y")), Spreadsheet)
        assert kind_of(DataConfig(source="sheet.csv", target="y")).name == "table"
    finally:
        KINDS.remove(Spreadsheet)
    assert kind_of(DataConfig(source="sheet.ods", target="y")).name == "table"


def test_a_table_loads_splits_and_fits_as_the_library_does(tmp_path: Path) -> None:
    config = config_of({"source": "wine", "target": "target"})
    kind, log = kind_of(config.data), Recorded()
    raw = kind.load(config, str(tmp_path), log)
    frame = pd.read_parquet(raw)
    assert log.merged("tags")["kerasflow.data_fingerprint"] == fingerprint_frame(frame) == kind.checkpoint_key(raw)
    assert log.merged("counts")["data.rows"] == len(frame) == len(load_frame("wine"))
    assert log.files()[:2] == ["contract/report.json", "contract/report.txt"]
    assert kind.sources(config) == ["wine", None]
    split_path = kind.split(config, raw, str(tmp_path), log)
    expected = holdout.split_rows(frame["target"], config.split, classify=True, test_rows=holdout.test_rows_of(raw))
    split = Split.load(split_path)
    assert (split.train, split.val, split.test) == (expected.train, expected.val, expected.test)
    assert "split/class_balance.json" in log.files() and log.merged("counts")["split.train_rows"] == len(split.train)
    fitted = kind.fit_features(config, raw, split_path)
    train = frame.iloc[split.train]
    numeric, categorical = select_columns(frame, "target", None, None)
    p = config.preprocessing
    direct = fit_features(train, numeric, categorical, impute=p.impute, normalize=p.normalize,
                          max_categories=p.max_categories)
    assert same_spec(fitted.features, direct, tmp_path)
    assert fitted.labels.classes == fit_labels(train["target"], "auto").classes
    assert fitted.params == {"task": "classification", "numeric_columns": len(numeric), "categorical_columns": 0,
                             "classes": fitted.labels.classes, "loss": fitted.labels.output()[2]}
    frame_, test_rows = kind.profile_rows(config)
    assert test_rows == 0 and len(frame_) == len(frame)
    assert not profile_source(config).images
    assert kind.check(config, raw).require() is None  # a table has nothing beyond the suite


def test_a_stream_loads_splits_and_fits_over_every_row(tmp_path: Path) -> None:
    frame = load_frame("wine")
    shards = write_shards(frame, tmp_path / "shards")
    config = config_of({"source": str(shards), "target": "target", "streaming": True})
    kind, log = kind_of(config.data), Recorded()
    files = stream_files(str(shards))
    assert kind.sources(config) == files
    assert kind_of(DataConfig(source=str(tmp_path / "none"), target="t", streaming=True)).sources(
        config_of({"source": str(tmp_path / "none"), "target": "t", "streaming": True})) == [str(tmp_path / "none")]
    (tmp_path / "load").mkdir()
    raw = kind.load(config, str(tmp_path / "load"), log)
    scan, _ = scan_stream(files, "target")
    assert Path(raw).with_name(MANIFEST).exists()
    tags, metrics = log.merged("tags"), log.merged("counts")
    assert tags["kerasflow.streaming"] == "true" and tags["kerasflow.data_fingerprint"] == scan.digest
    assert metrics["data.rows"] == len(frame) and metrics["data.files"] == 3
    assert kind.checkpoint_key(raw) == scan.digest != fingerprint_frame(pd.read_parquet(raw))
    (tmp_path / "split").mkdir()
    split_path = kind.split(config, raw, str(tmp_path / "split"), log)
    ruled = manifest_beside(split_path)
    assert ruled is not None and sum(ruled.sizes.values()) == len(frame)
    assert log.merged("counts")["split.train_rows"] == ruled.sizes["train_rows"]
    fitted = kind.fit_features(config, raw, split_path)
    sample = pd.read_parquet(raw)
    train = sample.iloc[Split.load(split_path).train]
    numeric, categorical = select_columns(sample, "target", None, None)
    p = config.preprocessing
    features, labels = fit_stream_features(ruled, train, numeric, categorical, "target", impute=p.impute,
                                           normalize=p.normalize, max_categories=p.max_categories, task="auto",
                                           encoding="integer", non_finite=p.non_finite)
    assert same_spec(fitted.features, features, tmp_path) and fitted.labels.classes == labels.classes


def test_an_image_folder_loads_checks_splits_and_fits_an_image_spec(tmp_path: Path, digits_folder: Path) -> None:
    config = image_config(digits_folder)
    kind, log = kind_of(config.data), Recorded()
    (tmp_path / "load").mkdir()
    raw = kind.load(config, str(tmp_path / "load"), log)
    assert sidecar_path(Path(raw)).exists() and len(pd.read_parquet(raw)) == 18
    assert log.merged("counts") == {"data.rows": 18, "data.files": 18, "data.classes": 3}
    check = kind.check(config, raw)
    assert isinstance(check, ImageCheck) and check.report.passed
    check.log(log)
    check.require()
    assert log.merged("counts")["images.images"] == 18 and "images/report.json" in log.files()
    split_path = kind.split(config, raw, str(tmp_path), log)
    fitted = kind.fit_features(config, raw, split_path)
    assert isinstance(fitted.features, ImageSpec) and fitted.features.layout == "files"
    assert fitted.params["image_shape"] == [16, 16, 1] and fitted.params["layout"] == "files"
    listing, test_rows = kind.profile_rows(config)
    assert len(listing) == 18 and test_rows == 0 and set(listing["label"]) == {"0", "1", "2"}
    profile = profile_source(config)
    assert profile.images and profile.text_columns == [] and profile.rows == 18
    assert default_model(config, profile)["kind"] == "cnn"


def test_a_pixel_table_loads_as_a_table_and_checks_its_pixels(tmp_path: Path) -> None:
    pixels = tmp_path / "pixels.csv"
    load_frame("digits").head(120).to_csv(pixels, index=False)
    config = config_of({"source": str(pixels), "target": "target", "image": {"size": [8, 8], "channels": 1}})
    kind, log = kind_of(config.data), Recorded()
    raw = kind.load(config, str(tmp_path), log)
    assert "contract/report.json" in log.files() and log.merged("counts")["data.rows"] == 120
    check = kind.check(config, raw)
    assert check.report.passed
    split_path = kind.split(config, raw, str(tmp_path), log)
    fitted = kind.fit_features(config, raw, split_path)
    assert fitted.features.layout == "pixels" and len(fitted.features.pixel_columns) == 64
    assert isinstance(fitted.features, ImageSpec) and not isinstance(fitted.features, FeatureSpec)
    profile = profile_frame(config, pd.read_parquet(raw))
    assert profile.images and profile.text_columns == [] and profile.input_width == 0
