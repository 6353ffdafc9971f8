"""The image kinds (`data.image` set): a folder of class subfolders, or a table of pixel columns.

Both check every image before any training (`check`, the validate step),
fit an `ImageSpec` instead of a `FeatureSpec` (`fit_features`) and are
profiled without text columns or input widths (`images`). A folder is
listed and decoded file by file (`kerasflow.data.images`), its full listing
kept beside the raw rows for the check, and trained on either decoded into
memory or streamed from disk (`data.image.in_memory`, recorded as
`ImageSpec.streamed`; `kerasflow.training.image_stream`); a pixel table
loads, splits and trains as a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from kerasflow.data.holdout import save_raw
from kerasflow.data.image_sample import infer_image_shape, sample_channel_problems, sample_image_headers
from kerasflow.data.images import (
    FILE_COLUMN,
    TEST_PREFIX,
    ImageFolder,
    ImageReport,
    check_image_folder,
    check_pixel_frame,
    fingerprint_listing,
    is_image_folder,
    scan_image_folders,
)
from kerasflow.data.split import Split
from kerasflow.features.images import ImageDataError, fit_image_spec
from kerasflow.features.labels import fit_labels
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.training.baseline import Baseline
from kerasflow.training.image_stream import should_stream
from kerasflow.training.kinds.base import FileCheck, Fitted, Inferred, StepLog, reference_of, register
from kerasflow.training.kinds.table import Table

SIDECAR_SUFFIX = ".images.parquet"


class ImageCheck(FileCheck):
    """The image check's report: logged as `images/report.json`, `images/summary.txt` and `images.*` metrics.

    Args:
        report: The `ImageReport`.
        where: The folder or source named when the check fails.
    """

    def __init__(self, report: ImageReport, where: str) -> None:
        self.report, self.where = report, where

    def log(self, log: StepLog) -> None:
        """Logs the report and statistics, and shows warnings and skipped files (the first ten, by name)."""
        report, stats = self.report, self.report.statistics
        log.json({"passed": report.passed, "problems": report.problems, "warnings": report.warnings,
                  "skipped": report.skipped, "files": report.files, "statistics": stats}, "images/report.json")
        log.text(report.summary(), "images/summary.txt")
        metrics = {"images": stats.get("images", len(report.kept)), "problems": len(report.problems),
                   "skipped": len(report.skipped), "warnings": len(report.warnings),
                   "classes": len(stats.get("classes", {}))}
        metrics.update({f"class.{_safe(name)}": count for name, count in stats.get("classes", {}).items()})
        for dim in ("width", "height"):
            if isinstance(stats.get(dim), dict):
                metrics.update({f"{dim}_{key}": value for key, value in stats[dim].items()})
        if "test" in stats:
            metrics["test_images"] = stats["test"]["images"]
        log.counts(metrics, prefix="images.")
        for notice in report.notices():
            log.warning(notice)

    def require(self) -> None:
        """Raises `ImageDataError` naming every problem file when any rule is violated."""
        self.report.require(self.where)


class ImageKind(Table):
    """What both image layouts share: the image check's report, the `ImageSpec` fit, the profile."""

    images: ClassVar[bool] = True
    layout: ClassVar[str]

    def fit_features(self, config: PipelineConfig, raw_path: str, split_path: str) -> Fitted:
        """Fits the image spec and the label encoding on the training rows.

        Returns:
            The `Fitted` specs and the training rows' drift reference (pixels
            or file sizes); a configured base model is recorded in the
            spec by the task (it may be downloaded from the registry).
        """
        frame = pd.read_parquet(raw_path)
        train = frame.iloc[Split.load(split_path).train]
        data, image = config.data, config.data.image
        spec = fit_image_spec(train, layout=self.layout, size=image.size, channels=image.channels,
                              max_value=image.max_value, pixel_columns=self.pixel_columns(data, frame),
                              convert=image.on_channel_mismatch == "convert")
        if self.layout == "files":  # a folder: decoded into memory once, or streamed from disk (`image_stream`)
            spec.streamed = should_stream(image.in_memory, len(frame), spec.shape)
        labels = fit_labels(train[data.target], data.task, data.label_encoding, config.preprocessing.target_transform)
        return Fitted(spec, labels, {"task": labels.task, "layout": spec.layout, "image_shape": list(spec.shape),
                                     "max_value": spec.max_value, "classes": labels.classes,
                                     "loss": labels.output()[2], "streamed": spec.streamed, **labels.target_params()},
                      reference_of(config, train, spec))

    def baseline(self, config: PipelineConfig, raw_path: str, split_path: str, labels_path: str) -> Baseline:
        """None: no scikit-learn model is a cheap and fair baseline for images."""
        return Baseline(reason="image data have no baseline (no cheap scikit-learn model is a fair one)")

    def pixel_columns(self, data: DataConfig, frame: pd.DataFrame) -> list[str]:
        """The columns holding pixels: `data.features`, else every column but the target."""
        return data.features or [c for c in frame.columns if c != data.target]


@register
class ImageFiles(ImageKind):
    """A folder of class subfolders (and a test folder, `data.test_source`), one row per file."""

    name: ClassVar[str] = "image_folder"
    priority: ClassVar[int] = 20
    layout: ClassVar[str] = "files"

    @classmethod
    def claims(cls, data: DataConfig) -> bool:
        return data.image is not None and is_image_folder(data.source)

    def read(self, config: PipelineConfig) -> pd.DataFrame:
        """The folders' listing with a sample of file headers (`sample_folders`); the load step decodes every file."""
        return sample_folders(config.data)

    def incomplete(self, config: PipelineConfig) -> bool:
        """True when `data.image.size` or `channels` is left out."""
        return not config.data.image.complete

    def infer(self, config: PipelineConfig, rows: pd.DataFrame) -> Inferred | None:
        """`data.image.size` and `channels` from the sampled headers, when the config leaves them out.

        Inferred channels convert files with another channel count
        (`on_channel_mismatch: convert`), unless the config says otherwise.
        """
        image = config.data.image
        shape = None if image.complete else infer_image_shape(rows)
        if shape is None:
            return None
        values: dict[str, Any] = {}
        if image.size is None:
            values["size"] = list(shape.size)
        if image.channels is None:
            values["channels"] = shape.channels
            if "on_channel_mismatch" not in image.model_fields_set:
                values["on_channel_mismatch"] = "convert"
        note = f"data.image inferred from the files: {shape.describe()}" + (
            "; other channel counts are converted" if "on_channel_mismatch" in values else "")
        return Inferred({"image": {**values, "inferred": list(values)}}, note)

    def load(self, config: PipelineConfig, workdir: str, log: StepLog, read: Any = None) -> str:
        """Lists and decodes every file of the folder (and test folder), fingerprints them and logs the input.

        With `data.test_source` (a folder of the same class subfolders), its
        files follow the training files and are recorded as the test rows, so
        the split makes exactly them the test set. With `on_corrupt: skip`,
        unusable files are left out of the raw rows here and reported by the
        image check; with `fail` they stay in, so the check rejects them by
        name. The full listing is kept beside the raw rows for the check.

        Returns:
            Path of the raw rows (Parquet, one row per file, test files last).

        Raises:
            ImageDataError: A folder is missing or unusable as a whole.
        """
        data, image = config.data, config.data.image
        refuse_from_sample(data, read if read is not None else sample_folders(data))
        folder = scan_image_folders(data.source, data.target, image.extensions, test_source=data.test_source)
        rows = folder.usable() if image.on_corrupt == "skip" else folder
        digest = fingerprint_listing(folder.frame)
        log.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": folder.root})
        log.counts({"rows": len(rows.frame), "files": len(folder.frame), "classes": len(folder.classes)},
                    prefix="data.")
        if folder.test_root is not None:
            log.tags({"kerasflow.test_source": folder.test_root})
            log.counts({"test_rows": rows.test_rows, "test_files": folder.test_rows}, prefix="data.")
        log.dataset(rows.frame[[FILE_COLUMN, data.target, "width", "height", "channels"]], source=folder.root,
                    digest=digest, target=data.target)
        path = Path(workdir) / "raw.parquet"
        save_raw(rows.frame, path, rows.test_rows)
        folder.save(sidecar_path(path))
        return str(path)

    def profile_rows(self, config: PipelineConfig, read: Any = None) -> tuple[pd.DataFrame, int]:
        """The folder's (and test folder's) files by class, listed with a sample of headers, not decoded."""
        listing = read if read is not None else sample_folders(config.data)
        test_rows = int(listing["file"].str.startswith(TEST_PREFIX).sum())
        return listing.rename(columns={"label": config.data.target}), test_rows

    def check(self, config: PipelineConfig, raw_path: str) -> FileCheck:
        """Unreadable, corrupt and non-image files, other channel counts, empty classes, unknown test classes."""
        image = config.data.image
        folder = ImageFolder.load(sidecar_path(Path(raw_path)))
        report = check_image_folder(folder, image.channels, on_corrupt=image.on_corrupt,
                                    on_channel_mismatch=image.on_channel_mismatch)
        return ImageCheck(report, folder.root)

    def pixel_columns(self, data: DataConfig, frame: pd.DataFrame) -> list[str]:
        """None: the files are decoded."""
        return []


@register
class PixelTable(ImageKind):
    """A table whose columns are the pixels of one image per row: loaded, split and trained on as a table."""

    name: ClassVar[str] = "pixel_table"
    priority: ClassVar[int] = 15
    layout: ClassVar[str] = "pixels"

    @classmethod
    def claims(cls, data: DataConfig) -> bool:
        return data.image is not None  # a folder source is claimed first (`ImageFiles`, higher priority)

    def incomplete(self, config: PipelineConfig) -> bool:
        """True when `data.image.channels` is left out (`size` must be given for pixel columns)."""
        return config.data.image.channels is None

    def infer(self, config: PipelineConfig, rows: pd.DataFrame) -> Inferred | None:
        """`data.image.channels`: the pixel column count over `height * width` (3 when that is not 1, 3 or 4)."""
        image = config.data.image
        if image.channels is not None or image.size is None:
            return None
        columns = len(self.pixel_columns(config.data, rows))
        ratio, rest = divmod(columns, image.size[0] * image.size[1])
        channels = ratio if not rest and ratio in (1, 3, 4) else 3
        return Inferred({"image": {"channels": channels, "inferred": ["channels"]}},
                        f"data.image inferred from the data: {channels} channel(s) ({columns} pixel columns of "
                        f"{image.size[0]}x{image.size[1]} images)")

    def check(self, config: PipelineConfig, raw_path: str) -> FileCheck:
        """The column count must match the image shape; pixels must be present and non-negative."""
        data = config.data
        frame = pd.read_parquet(raw_path)
        report = check_pixel_frame(frame, data.target, self.pixel_columns(data, frame), data.image.shape)
        return ImageCheck(report, data.source)


def sidecar_path(raw_path: Path) -> Path:
    """Returns the full image listing kept beside the raw rows (every file found, with its folders and classes)."""
    return raw_path.with_suffix(SIDECAR_SUFFIX)


def sample_folders(data: DataConfig) -> pd.DataFrame:
    """The image files of `data.source` (and `data.test_source`, named `test_source/...`), with sampled headers.

    Reads the headers of at most 200 files per folder
    (`kerasflow.data.image_sample.sample_image_headers`), decoding none.
    """
    listing = sample_image_headers(data.source, data.image.extensions)
    if not data.test_source:
        return listing
    test = sample_image_headers(data.test_source, data.image.extensions, prefix=TEST_PREFIX)
    return pd.concat([part for part in (listing, test) if len(part)] or [listing], ignore_index=True)


def refuse_from_sample(data: DataConfig, listing: pd.DataFrame) -> None:
    """Refuses a folder from its sampled headers, before any file is decoded.

    A `data.image.channels` that most sampled files contradict is wrong for
    the folder: it is refused at once. A few files of another count are
    left to the full check, which names them with every other problem.

    Args:
        data: The `data` section.
        listing: The folders' listing with sampled headers (`sample_folders`).

    Raises:
        ImageDataError: Most sampled files have another channel count
            than `data.image.channels` under `on_channel_mismatch: fail`
            (named, the first ten); or `size`/`channels` were neither given nor
            inferred (no sampled file is a readable image).
    """
    image = data.image
    if not image.complete:
        raise ImageDataError(data.source, [
            f"data.image.size and channels were not given, and none of the {int(listing['sampled'].sum())} files "
            f"sampled from {len(listing)} is a readable image to infer them from; give them (e.g. size: [64, 64], "
            f"channels: 3)"])
    if image.on_channel_mismatch == "fail":
        problems = sample_channel_problems(listing, image.channels, above=0.5)
        if problems:
            raise ImageDataError(data.source, problems)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))
