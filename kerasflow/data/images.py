"""Image data checks: folder listing and validation by file or row, before any training.

Two layouts are checked:

* `files`: a folder with one subfolder per class. `scan_image_folder` lists
  every file with its label, size and channel count (decoding each one), and
  `check_image_folder` applies the configured rules, naming every problem
  file. Partitions are made BY FILE from the listing, with the usual
  splitters. A test folder (`data.test_source`, same layout) is appended
  after the training files by `scan_image_folders`; its files are the test
  split (`test_rows`), as for a test table.
* `pixels`: a table whose feature columns hold the pixels of one image per
  row; `check_pixel_frame` checks their count and values.

Decoding and the fitted `ImageSpec` are features
(`kerasflow.features.images`), shipped with every logged model; nothing
here runs in a served model.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.features.images import (
    CHANNEL_NAMES,
    MAX_FILES_SHOWN,
    MAX_ROWS_NAMED,
    PATH_COLUMN,
    ImageDataError,
    capped,
    channel_count,
)
from kerasflow.progress import report_progress

FILE_COLUMN = "file"
TEST_PREFIX = "test_source/"  # marks test-folder files in the `file` column and in reports
FOLDER_KEY = b"kerasflow.image_folder"
LISTING_COLUMNS = (PATH_COLUMN, FILE_COLUMN, "bytes", "sha256", "width", "height", "channels", "mode",
                   "format", "problem")


@dataclass
class ImageFolder:
    """Every file found in a folder of class subfolders.

    Args:
        root: The folder.
        target: Name of the label column.
        classes: Class folder names, sorted.
        frame: One row per file: `path` (absolute), `file` (relative to the
            root; `test_source/...` for test files), the label, `bytes`,
            `sha256`, `width`, `height`, `channels`, `mode`, `format`, and
            `problem` (None when the file decodes as an image).
        test_root: The test folder (`data.test_source`), or None (default).
        test_classes: Class folder names of the test folder. Default none.
        test_rows: How many trailing rows of `frame` are test files. Default 0.
    """

    root: str
    target: str
    classes: list[str]
    frame: pd.DataFrame
    test_root: str | None = None
    test_classes: list[str] = field(default_factory=list)
    test_rows: int = 0

    @property
    def train_frame(self) -> pd.DataFrame:
        """Rows of the `source` folder."""
        return self.frame.iloc[:len(self.frame) - self.test_rows]

    @property
    def test_frame(self) -> pd.DataFrame:
        """Rows of the test folder (empty without one)."""
        return self.frame.iloc[len(self.frame) - self.test_rows:]

    def usable(self) -> "ImageFolder":
        """Returns the listing without its unusable files (`problem` set), test rows still last."""
        keep = self.frame["problem"].isna()
        test_kept = int(keep.iloc[len(self.frame) - self.test_rows:].sum())
        return replace(self, frame=self.frame[keep].reset_index(drop=True), test_rows=test_kept)

    def save(self, path: str | Path) -> Path:
        """Writes the listing as Parquet, with its folders and classes in the schema metadata.

        Args:
            path: Output file.

        Returns:
            The path written.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = {"root": self.root, "target": self.target, "classes": self.classes, "test_root": self.test_root,
                "test_classes": self.test_classes, "test_rows": self.test_rows}
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        metadata = {**(table.schema.metadata or {}), FOLDER_KEY: json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata(metadata), path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "ImageFolder":
        """Reads a listing written by `save`."""
        import pyarrow.parquet as pq

        meta = json.loads(pq.read_schema(path).metadata[FOLDER_KEY])
        return cls(frame=pd.read_parquet(path), **meta)


@dataclass
class ImageReport:
    """The outcome of checking image data.

    Args:
        problems: Violations, each naming its file (or rows); non-empty
            means the data are rejected. A per-file list names its first
            ten files and counts the rest (all of them are in `files`).
        skipped: Files left out under `on_corrupt: skip`, each with its reason.
        warnings: Things left out that do not stop the run, e.g. class
            folders without usable images under `on_corrupt: skip`.
        kept: Positions of the usable rows of the listing or table.
        statistics: Counts per class, image sizes and channel counts.
        files: The full per-file lists behind capped problems (`unusable`,
            `channel_mismatch`), for the logged report.
    """

    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when nothing was violated (skipped files are allowed)."""
        return not self.problems

    def require(self, where: str) -> None:
        """Raises `ImageDataError` with the problems (naming `where`, the folder or source) when there are any."""
        if self.problems:
            raise ImageDataError(where, self.problems)

    def summary(self) -> str:
        """Returns a readable report: verdict, problems, warnings, skipped files and statistics."""
        lines = [f"image check {'passed' if self.passed else 'FAILED'}: {len(self.kept)} usable, "
                 f"{len(self.skipped)} skipped, {len(self.problems)} problems"]
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"skipped: {s}" for s in self.skipped]
        lines.append(json.dumps(self.statistics, indent=2, default=str))
        return "\n".join(lines)

    def notices(self, limit: int = MAX_FILES_SHOWN) -> list[str]:
        """Returns what a user should see on screen although the check passed.

        Args:
            limit: Skipped files listed by name; the rest are counted. Default 10.

        Returns:
            One message per warning, then one listing the skipped files (if any).
        """
        notices = list(self.warnings)
        if self.skipped:
            count, shown = len(self.skipped), "\n".join(f"  - {line}" for line in capped(self.skipped, limit=limit))
            notices.append(f"{count} file{'s' if count != 1 else ''} skipped under data.image.on_corrupt: skip "
                           f"(all {count} in images/report.json):\n" + shown)
        return notices


def is_image_folder(source: str) -> bool:
    """Returns True when a data source is a folder (of class subfolders)."""
    return Path(source).expanduser().is_dir()


def scan_image_folder(root: str | Path, target: str, extensions: list[str]) -> ImageFolder:
    """Lists and decodes every file in a folder of class subfolders.

    Each subfolder is a class; files in it are found recursively. Hidden
    files and folders (starting with a dot) and files directly in the root
    are ignored. Every file is read and fully decoded, so corrupt files are
    found before any training.

    Args:
        root: The folder.
        target: Name given to the label column.
        extensions: Lower-case extensions read as images, with the dot.

    Returns:
        An `ImageFolder`; its `problem` column says why a file is unusable.

    Raises:
        ImageDataError: The folder is missing or the label column name
            clashes with a listing column.
    """
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise ImageDataError(str(root), [f"{base} is not a folder"])
    if target in LISTING_COLUMNS:
        raise ImageDataError(str(root), [f"data.target {target!r} clashes with a listing column; "
                                         f"choose another name (e.g. label)"])
    classes, files = list_class_files(base)
    rows = []
    for done, (file, name) in enumerate(files, start=1):
        rows.append({**_inspect_file(file, extensions), FILE_COLUMN: file.relative_to(base).as_posix(), target: name})
        report_progress(f"decode {base.name}", done, len(files), "image")
    frame = pd.DataFrame(rows, columns=[*LISTING_COLUMNS, target])
    return ImageFolder(root=str(base), target=target, classes=classes, frame=frame)


def list_class_files(root: str | Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Lists a folder of class subfolders without reading any file.

    Each subfolder is a class; files in it are found recursively. Hidden
    files and folders (starting with a dot) and files directly in the root
    are left out.

    Args:
        root: The folder.

    Returns:
        The class names, and `(file, class)` pairs in class and path order.
    """
    base = Path(root).expanduser().resolve()
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(file, name) for name in classes for file in sorted((base / name).rglob("*"))
             if file.is_file() and not any(part.startswith(".") for part in file.relative_to(base).parts)]
    return classes, files


def scan_image_folders(source: str | Path, target: str, extensions: list[str],
                       test_source: str | Path | None = None) -> ImageFolder:
    """Lists a folder of class subfolders and, after its files, those of a test folder.

    The test folder (`data.test_source`) has the same layout; its files are
    named `test_source/<class>/<file>` in the listing and are its last
    `test_rows` rows, which the split makes exactly the test set.

    Args:
        source: The training folder.
        target: Name given to the label column.
        extensions: Lower-case extensions read as images, with the dot.
        test_source: The test folder, or None (default) for none.

    Returns:
        An `ImageFolder` of both folders' files, training files first.

    Raises:
        ImageDataError: A folder is missing, both are the same folder, or
            the label column name clashes with a listing column.
    """
    folder = scan_image_folder(source, target, extensions)
    if test_source is None:
        return folder
    test = scan_image_folder(test_source, target, extensions)
    if test.root == folder.root:
        raise ImageDataError(str(test_source), [f"data.test_source is the same folder as data.source ({folder.root}); "
                                                "keep the test images in a folder of their own"])
    files = test.frame.assign(**{FILE_COLUMN: [f"{TEST_PREFIX}{name}" for name in test.frame[FILE_COLUMN]]})
    parts = [part for part in (folder.frame, files) if len(part)] or [folder.frame]
    return replace(folder, frame=pd.concat(parts, ignore_index=True), test_root=test.root,
                   test_classes=test.classes, test_rows=len(files))


def check_image_folder(folder: ImageFolder, channels: int, *, on_corrupt: str = "fail",
                       on_channel_mismatch: str = "fail") -> ImageReport:
    """Applies the image rules to a folder listing (and its test folder, if any).

    Args:
        folder: The scanned folder(s).
        channels: The channel count the model takes.
        on_corrupt: `fail` (default) reports unreadable, corrupt and
            non-image files and class folders without usable images as
            problems; `skip` leaves them out, listing the files as skipped
            and the class folders as warnings.
        on_channel_mismatch: `fail` (default) reports every file with
            another channel count; `convert` accepts them.

    Returns:
        An `ImageReport` naming the problem files (the first ten of each
        kind in `problems`, every one in `files`). A folder without
        classes, fewer than two classes with usable images, and test classes
        without usable training images are problems too.
    """
    frame = folder.frame
    report = ImageReport()
    if not folder.classes:
        report.problems.append(f"{folder.root}: no class subfolders (expected one folder per class)")
    bad = frame[frame["problem"].notna()]
    lines = [f"{row.file}: {row.problem}" for row in bad.itertuples()]
    if on_corrupt == "skip":
        report.skipped.extend(lines)
    elif lines:
        report.files["unusable"] = lines
        report.problems.extend(capped(lines, "unusable files (all in images/report.json)"))
    usable = frame[frame["problem"].isna()]
    if on_channel_mismatch == "fail":
        report.problems.extend(_channel_problems(usable, channels, report))
    _check_classes(folder, report, on_corrupt)
    if folder.test_root is not None:
        report.problems.extend(_test_class_problems(folder))
    report.kept = [int(i) for i in np.flatnonzero(frame["problem"].isna().to_numpy())]
    report.statistics = _split_statistics(folder)
    report.statistics["skipped"] = len(report.skipped)
    return report


def check_pixel_frame(frame: pd.DataFrame, target: str, columns: list[str],
                      shape: tuple[int, int, int]) -> ImageReport:
    """Checks that a table's pixel columns make images of the configured shape.

    Args:
        frame: The raw table.
        target: The label column.
        columns: The pixel columns, row-major.
        shape: `(height, width, channels)`.

    Returns:
        An `ImageReport`: a wrong column count, non-numeric columns, and
        rows with missing or negative pixels are problems.
    """
    report = ImageReport(kept=list(range(len(frame))))
    needed = int(np.prod(shape))
    if len(columns) != needed:
        report.problems.append(f"data.image size {shape[0]}x{shape[1]} with {shape[2]} channel(s) needs {needed} "
                               f"pixel columns, the data have {len(columns)} feature columns")
    missing = [c for c in columns if c not in frame.columns]
    text = [c for c in columns if c in frame.columns and not pd.api.types.is_numeric_dtype(frame[c])]
    if missing:
        report.problems.append(f"pixel columns not in the data: {missing}")
    if text:
        report.problems.append(f"pixel columns that are not numeric: {text}")
    if target not in frame.columns:
        report.problems.append(f"label column {target!r} is not in the data")
    if missing or text or target not in frame.columns:
        return report
    values = frame[columns].to_numpy(dtype="float64")
    for rows, what in ((np.isnan(values).any(axis=1), "missing"), ((values < 0).any(axis=1), "negative")):
        if rows.any():
            positions = _row_list(np.flatnonzero(rows))
            report.problems.append(f"{int(rows.sum())} rows with {what} pixel values: {positions}")
    counts = frame[target].astype(str).value_counts().sort_index()
    report.statistics = {"images": len(frame), "classes": {str(k): int(v) for k, v in counts.items()},
                         "height": shape[0], "width": shape[1], "channels": shape[2],
                         "pixel_min": float(np.nanmin(values)) if values.size else None,
                         "pixel_max": float(np.nanmax(values)) if values.size else None,
                         "pixel_mean": float(np.nanmean(values)) if values.size else None}
    return report


def folder_statistics(usable: pd.DataFrame, target: str, *, total: int, skipped: int) -> dict[str, Any]:
    """Counts per class, size statistics and channel counts of usable files.

    Args:
        usable: Listing rows of the usable files.
        target: The label column.
        total: Files found.
        skipped: Files that are unusable.

    Returns:
        A JSON-ready dict.
    """
    stats: dict[str, Any] = {"files": total, "images": len(usable), "unusable": skipped,
                             "classes": {str(k): int(v) for k, v in usable[target].value_counts().sort_index().items()}}
    for dim in ("width", "height"):
        values = usable[dim].astype("float64")
        stats[dim] = ({"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                       "median": float(values.median())} if len(values) else {})
    sizes = usable.groupby(["width", "height"]).size().sort_values(ascending=False).head(20) if len(usable) \
        else pd.Series(dtype="int64")
    stats["sizes"] = {f"{int(w)}x{int(h)}": int(n) for (w, h), n in sizes.items()}
    stats["channels"] = {str(int(k)): int(v) for k, v in usable["channels"].value_counts().sort_index().items()}
    stats["formats"] = {str(k): int(v) for k, v in usable["format"].value_counts().sort_index().items()}
    return stats


def fingerprint_listing(frame: pd.DataFrame) -> str:
    """Returns a sha256 over every file's relative path and content hash, in order."""
    digest = hashlib.sha256()
    for file, sha in zip(frame[FILE_COLUMN], frame["sha256"]):
        digest.update(f"{file}\x1f{sha}\x1e".encode())
    return digest.hexdigest()


def _inspect_file(file: Path, extensions: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {PATH_COLUMN: str(file), "bytes": None, "sha256": None, "width": None, "height": None,
                            "channels": None, "mode": None, "format": None, "problem": None}
    if file.suffix.lower() not in extensions:
        info["problem"] = (f"not an image file (extension {file.suffix or '(none)'} is not one of "
                           f"{', '.join(extensions)})")
        return info
    try:
        data = file.read_bytes()
    except OSError as exc:
        info["problem"] = f"unreadable: {exc.strerror or exc}"
        return info
    info.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    info.update(_decode_header(data))
    return info


def _decode_header(data: bytes) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    if not data:
        return {"problem": "corrupt: empty file"}
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return {"width": img.size[0], "height": img.size[1], "channels": channel_count(img),
                    "mode": img.mode, "format": img.format}
    except UnidentifiedImageError:
        return {"problem": "corrupt: not a decodable image"}
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as exc:
        return {"problem": f"corrupt: {exc}"}


def _channel_problems(usable: pd.DataFrame, channels: int, report: ImageReport) -> list[str]:
    wrong = usable[usable["channels"] != channels]
    if wrong.empty:
        return []
    counts = usable["channels"].value_counts().sort_index()
    mix = ", ".join(f"{int(n)} file{'s' if n != 1 else ''} with {int(c)} ({CHANNEL_NAMES.get(int(c), '?')})"
                    for c, n in counts.items())
    lines = [f"channel counts differ from data.image.channels = {channels}: {mix}; "
             f"set data.image.on_channel_mismatch: convert to convert them"]
    files = [f"{row.file}: {int(row.channels)} channels ({row.mode}), expected {channels}"
             for row in wrong.itertuples()]
    report.files["channel_mismatch"] = files
    return lines + capped(files, "files with another channel count (all in images/report.json)")


def _row_list(positions: np.ndarray) -> str:
    shown = ", ".join(str(int(p)) for p in positions[:MAX_ROWS_NAMED])
    more = f", ... (+{len(positions) - MAX_ROWS_NAMED} more)" if len(positions) > MAX_ROWS_NAMED else ""
    return f"[{shown}{more}]"


def _check_classes(folder: ImageFolder, report: ImageReport, on_corrupt: str) -> None:
    train = folder.train_frame
    usable = train[train["problem"].isna()]
    counts = usable[folder.target].value_counts()
    for name in folder.classes:
        if counts.get(name, 0):
            continue
        dropped = int((train[folder.target] == name).sum())
        reason = f" ({_count(dropped, 'unusable file')})" if dropped else ""
        if on_corrupt == "skip":
            report.warnings.append(f"{name}/: class folder without usable images{reason}; class {name!r} is "
                                   f"left out (it cannot be learned)")
        else:
            report.problems.append(f"{name}/: empty class folder, no usable images{reason}; add images, remove "
                                   f"the folder, or set data.image.on_corrupt: skip to leave the class out")
    learned = [name for name in folder.classes if counts.get(name, 0)]
    if folder.classes and len(learned) < 2:
        report.problems.append(f"{folder.root}: {_count(len(learned), 'class')} with usable images "
                               f"({', '.join(learned) or 'none'}); a classifier needs at least 2")


def _test_class_problems(folder: ImageFolder) -> list[str]:
    train, test = folder.train_frame, folder.test_frame
    learned = set(train.loc[train["problem"].isna(), folder.target])
    usable = test[test["problem"].isna()]
    if usable.empty:
        return [f"data.test_source {folder.test_root}: no usable images, the test set would be empty"]
    problems = []
    for name, count in sorted(usable[folder.target].value_counts().items()):
        if name not in learned:
            why = "has no usable images in" if name in folder.classes else "is not a class folder of"
            problems.append(f"{TEST_PREFIX}{name}/: {_count(int(count), 'test image')} of class {name!r}, which "
                            f"{why} data.source {folder.root}; the model cannot predict it")
    return problems


def _split_statistics(folder: ImageFolder) -> dict[str, Any]:
    stats = _part_statistics(folder.train_frame, folder.target)
    if folder.test_root is not None:
        stats["test"] = _part_statistics(folder.test_frame, folder.target)
    return stats


def _part_statistics(part: pd.DataFrame, target: str) -> dict[str, Any]:
    bad = int(part["problem"].notna().sum())
    return folder_statistics(part[part["problem"].isna()], target, total=len(part), skipped=bad)


def _count(n: int, noun: str) -> str:
    plural = "es" if noun.endswith("ss") else "s"
    return f"{n} {noun}{'' if n == 1 else plural}"
