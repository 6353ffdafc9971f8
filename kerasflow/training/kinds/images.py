"""The image kinds (`data.image` set): a folder of class subfolders, or a table of pixel columns.

Both check every image before any training (`check`, the validate step),
fit an `ImageSpec` instead of a `FeatureSpec` (`fit_features`) and are
profiled without text columns or input widths (`images`). A folder is
listed and decoded file by file (`kerasflow.data.images`), its full listing
kept beside the raw rows for the check; a pixel table loads, splits and
trains as a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from kerasflow.data.holdout import save_raw
from kerasflow.data.images import (
    FILE_COLUMN,
    ImageFolder,
    ImageReport,
    check_image_folder,
    check_pixel_frame,
    fingerprint_listing,
    is_image_folder,
    list_class_files,
    require_valid_images,
    scan_image_folders,
)
from kerasflow.data.split import Split
from kerasflow.features.images import fit_image_spec
from kerasflow.features.labels import fit_labels
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.training.baseline import Baseline
from kerasflow.training.kinds.base import FileCheck, Fitted, StepLog, register
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
                  "skipped": report.skipped, "statistics": stats}, "images/report.json")
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
        log.metrics(metrics, prefix="images.")
        for notice in report.notices():
            log.warning(notice)

    def require(self) -> None:
        """Raises `ImageDataError` naming every problem file when any rule is violated."""
        require_valid_images(self.report, self.where)


class ImageKind(Table):
    """What both image layouts share: the image check's report, the `ImageSpec` fit, the profile."""

    images: ClassVar[bool] = True
    layout: ClassVar[str]

    def fit_features(self, config: PipelineConfig, raw_path: str, split_path: str) -> Fitted:
        """Fits the image spec and the label encoding on the training rows.

        Returns:
            The `Fitted` specs; a configured base model is recorded in the
            spec by the task (it may be downloaded from the registry).
        """
        frame = pd.read_parquet(raw_path)
        train = frame.iloc[Split.load(split_path).train]
        data, image = config.data, config.data.image
        spec = fit_image_spec(train, layout=self.layout, size=image.size, channels=image.channels,
                              max_value=image.max_value, pixel_columns=self.pixel_columns(data, frame),
                              convert=image.on_channel_mismatch == "convert")
        labels = fit_labels(train[data.target], data.task, data.label_encoding)
        return Fitted(spec, labels, {"task": labels.task, "layout": spec.layout, "image_shape": list(spec.shape),
                                     "max_value": spec.max_value, "classes": labels.classes,
                                     "loss": labels.output()[2]})

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

    def read(self, config: PipelineConfig) -> Any:
        """None: the profile lists the folder, the load step decodes it."""
        return None

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
        folder = scan_image_folders(data.source, data.target, image.extensions, test_source=data.test_source)
        rows = folder.usable() if image.on_corrupt == "skip" else folder
        digest = fingerprint_listing(folder.frame)
        log.tags({"kerasflow.data_fingerprint": digest, "kerasflow.data_source": folder.root})
        log.metrics({"rows": len(rows.frame), "files": len(folder.frame), "classes": len(folder.classes)},
                    prefix="data.")
        if folder.test_root is not None:
            log.tags({"kerasflow.test_source": folder.test_root})
            log.metrics({"test_rows": rows.test_rows, "test_files": folder.test_rows}, prefix="data.")
        log.dataset(rows.frame[[FILE_COLUMN, data.target, "width", "height", "channels"]], source=folder.root,
                    digest=digest, target=data.target)
        path = Path(workdir) / "raw.parquet"
        save_raw(rows.frame, path, rows.test_rows)
        folder.save(sidecar_path(path))
        return str(path)

    def profile_rows(self, config: PipelineConfig, read: Any = None) -> tuple[pd.DataFrame, int]:
        """The folder's (and test folder's) files by class, listed, not decoded."""
        data = config.data
        listing = count_image_files(data.source, data.image.extensions)
        test = count_image_files(data.test_source, data.image.extensions) if data.test_source else listing.head(0)
        return pd.concat([listing, test], ignore_index=True).rename(columns={"label": data.target}), len(test)

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

    def check(self, config: PipelineConfig, raw_path: str) -> FileCheck:
        """The column count must match the image shape; pixels must be present and non-negative."""
        data = config.data
        frame = pd.read_parquet(raw_path)
        report = check_pixel_frame(frame, data.target, self.pixel_columns(data, frame), data.image.shape)
        return ImageCheck(report, data.source)


def sidecar_path(raw_path: Path) -> Path:
    """Returns the full image listing kept beside the raw rows (every file found, with its folders and classes)."""
    return raw_path.with_suffix(SIDECAR_SUFFIX)


def count_image_files(folder: str | Path, extensions: list[str]) -> pd.DataFrame:
    """Lists an image folder's files by class without reading them: a `file`, `label` frame."""
    rows = [(str(path), name) for path, name in list_class_files(folder)[1] if path.suffix.lower() in extensions]
    return pd.DataFrame(rows, columns=["file", "label"])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))
