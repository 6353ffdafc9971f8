"""Image data: folder listing, validation by file, decoding, and the fitted image spec.

Two layouts are supported:

* `files`: a folder with one subfolder per class. `scan_image_folder` lists
  every file with its label, size and channel count (decoding each one), and
  `check_image_folder` applies the configured rules, naming every problem
  file. Partitions are made BY FILE from the listing, with the usual
  splitters. Files are decoded with Pillow and resized to the configured
  size, the same way in training and serving.
* `pixels`: a table whose feature columns hold the pixels of one image per
  row in row-major `[height, width, channels]` order (e.g. `digits`).

`ImageSpec` is the image counterpart of `kerasflow.features.tabular.FeatureSpec`: it
is saved as the pipeline's `features.json`, travels with the logged model,
and turns raw rows into the model's `image` input. Serving input is the
pixel columns (`pixels`), or an `image` column of base64-encoded image
files (`files`; raw `bytes` also work in-process).

This module imports neither Prefect, MLflow, TensorFlow nor `schemas`; it
ships with every logged model (MLflow `code_paths`).
"""

from __future__ import annotations

from kerasflow.errors import BadInputError

import base64
import binascii
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

IMAGE_INPUT = "image"
IMAGE_COLUMN = "image"
PATH_COLUMN = "path"
FILE_COLUMN = "file"
LISTING_COLUMNS = (PATH_COLUMN, FILE_COLUMN, "bytes", "sha256", "width", "height", "channels", "mode",
                   "format", "problem")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_CHANNEL_NAMES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}
_MAX_ROWS_NAMED = 20


class ImageDataError(BadInputError):
    """Image data that cannot be used: every problem is listed, by file name or row.

    Args:
        where: The folder, table or input the problems are in.
        problems: One line per problem.
    """

    label = "bad image data"

    def __init__(self, where: str, problems: list[str]):
        self.where = where
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"image data {where} has {len(self.problems)} {noun}:\n{lines}")


@dataclass
class ImageFolder:
    """Every file found in a folder of class subfolders.

    Args:
        root: The folder.
        target: Name of the label column.
        classes: Class folder names, sorted.
        frame: One row per file: `path` (absolute), `file` (relative to the
            root), the label, `bytes`, `sha256`, `width`, `height`,
            `channels`, `mode`, `format`, and `problem` (None when the file
            decodes as an image).
    """

    root: str
    target: str
    classes: list[str]
    frame: pd.DataFrame


@dataclass
class ImageReport:
    """The outcome of checking image data.

    Args:
        problems: Violations, each naming its file (or rows); non-empty
            means the data are rejected.
        skipped: Files left out under `on_corrupt: skip`, each with its reason.
        kept: Positions of the usable rows of the listing or table.
        statistics: Counts per class, image sizes and channel counts.
    """

    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when nothing was violated (skipped files are allowed)."""
        return not self.problems

    def summary(self) -> str:
        """Returns a readable report: verdict, problems, skipped files and statistics."""
        lines = [f"image check {'passed' if self.passed else 'FAILED'}: {len(self.kept)} usable, "
                 f"{len(self.skipped)} skipped, {len(self.problems)} problems"]
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"skipped: {s}" for s in self.skipped]
        lines.append(json.dumps(self.statistics, indent=2, default=str))
        return "\n".join(lines)


@dataclass
class ImageSpec:
    """How raw rows become the model's `image` input; the image `FeatureSpec`.

    Args:
        layout: `files` (a path or encoded-image column) or `pixels`
            (pixel columns).
        height: Image height the model takes.
        width: Image width the model takes.
        channels: Channel count the model takes (1, 3 or 4).
        max_value: Largest raw pixel value; the model's `Rescaling` layer
            divides by it.
        pixel_columns: The pixel columns, row-major (`pixels` layout).
        convert: Convert images with another channel count instead of
            rejecting them (`files` layout).
        fitted_max: Whether `max_value` is a statistic of the training
            rows (refitted per fold) rather than configured.
        base_file: Local `.keras` file a registered base model was
            downloaded to; used while building only. Default none.
        base_reference: The base model's resolved reference, for lineage.
            Default none.
        kind: Always `image`; tells this spec from a `FeatureSpec` on disk.
    """

    layout: Literal["files", "pixels"]
    height: int
    width: int
    channels: int
    max_value: float
    pixel_columns: list[str] = field(default_factory=list)
    convert: bool = False
    fitted_max: bool = False
    base_file: str | None = None
    base_reference: str | None = None
    kind: Literal["image"] = "image"

    @property
    def shape(self) -> tuple[int, int, int]:
        """`(height, width, channels)` of one model input."""
        return (self.height, self.width, self.channels)

    @property
    def columns(self) -> list[str]:
        """The raw input columns the served model takes."""
        return list(self.pixel_columns) if self.layout == "pixels" else [IMAGE_COLUMN]

    def refit(self, train: pd.DataFrame) -> "ImageSpec":
        """Returns the spec with its statistics refitted on other training rows (e.g. a fold's)."""
        if not self.fitted_max:
            return self
        return replace(self, max_value=_pixel_max(train, self.pixel_columns))

    def drift_columns(self) -> tuple[list[str], list[str]]:
        """Returns the `(numeric, categorical)` raw columns watched for drift: pixels, or file sizes."""
        return (list(self.pixel_columns), []) if self.layout == "pixels" else (["width", "height"], [])

    def frame_to_inputs(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Converts raw rows to the model's named input.

        Args:
            df: Pixel columns (`pixels`), or an `image` column of
                base64-encoded image files or raw bytes, or a `path` column
                of image files (`files`).

        Returns:
            `{"image": float32 array of shape (rows, height, width, channels)}`.

        Raises:
            ImageDataError: Columns are missing, or rows hold bad images;
                every bad row is named.
        """
        if self.layout == "pixels":
            return {IMAGE_INPUT: pixel_array(df, self.pixel_columns, self.shape)}
        return {IMAGE_INPUT: self._decode_rows(df)}

    def serving_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Converts raw training rows to the serving input format.

        Args:
            df: Rows of the training table or folder listing.

        Returns:
            The pixel columns, or an `image` column of base64-encoded files.
        """
        if self.layout == "pixels" or IMAGE_COLUMN in df.columns:
            return df[self.columns].reset_index(drop=True)
        return pd.DataFrame({IMAGE_COLUMN: [encode_file(p) for p in df[PATH_COLUMN]]})

    def save(self, path: str | Path) -> Path:
        """Writes the spec as JSON and returns the path."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "ImageSpec":
        """Reads a spec written by `save`."""
        return cls(**json.loads(Path(path).read_text()))

    def _decode_rows(self, df: pd.DataFrame) -> np.ndarray:
        if IMAGE_COLUMN in df.columns:
            column, read = IMAGE_COLUMN, _payload_bytes
        elif PATH_COLUMN in df.columns:
            column, read = PATH_COLUMN, lambda value: Path(value).read_bytes()
        else:
            raise ImageDataError("input", [f"expected a column {IMAGE_COLUMN!r} of base64-encoded image files "
                                           f"(or {PATH_COLUMN!r} of file paths); got columns {list(df.columns)}"])
        out = np.empty((len(df), *self.shape), dtype="float32")
        problems = []
        for pos, (index, value) in enumerate(df[column].items()):
            try:
                out[pos] = decode_image(read(value), (self.height, self.width), self.channels, convert=self.convert)
            except (OSError, ValueError, TypeError) as exc:
                problems.append(f"{_row_name(pos, index, value if column == PATH_COLUMN else None)}: {exc}")
        if problems:
            raise ImageDataError("input", problems)
        return out


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
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = []
    for name in classes:
        for file in sorted((base / name).rglob("*")):
            if file.is_file() and not any(part.startswith(".") for part in file.relative_to(base).parts):
                rows.append({**_inspect_file(file, extensions), FILE_COLUMN: file.relative_to(base).as_posix(),
                             target: name})
    frame = pd.DataFrame(rows, columns=[*LISTING_COLUMNS, target])
    return ImageFolder(root=str(base), target=target, classes=classes, frame=frame)


def check_image_folder(folder: ImageFolder, channels: int, *, on_corrupt: str = "fail",
                       on_channel_mismatch: str = "fail") -> ImageReport:
    """Applies the image rules to a folder listing.

    Args:
        folder: The scanned folder.
        channels: The channel count the model takes.
        on_corrupt: `fail` (default) reports unreadable, corrupt and
            non-image files as problems; `skip` leaves them out.
        on_channel_mismatch: `fail` (default) reports every file with
            another channel count; `convert` accepts them.

    Returns:
        An `ImageReport` naming every problem file; empty class folders
        (after skipping) and a folder without classes are problems too.
    """
    frame = folder.frame
    report = ImageReport()
    if not folder.classes:
        report.problems.append(f"{folder.root}: no class subfolders (expected one folder per class)")
    bad = frame[frame["problem"].notna()]
    lines = [f"{row.file}: {row.problem}" for row in bad.itertuples()]
    (report.skipped if on_corrupt == "skip" else report.problems).extend(lines)
    usable = frame[frame["problem"].isna()]
    if on_channel_mismatch == "fail":
        report.problems.extend(_channel_problems(usable, channels))
    counts = usable[folder.target].value_counts()
    for name in folder.classes:
        if not counts.get(name, 0):
            dropped = int((bad[folder.target] == name).sum())
            reason = f" ({dropped} unusable files)" if dropped else ""
            report.problems.append(f"{name}/: empty class folder, no usable images{reason}")
    report.kept = [int(i) for i in np.flatnonzero(frame["problem"].isna().to_numpy())]
    report.statistics = folder_statistics(usable, folder.target, total=len(frame), skipped=len(bad))
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


def require_valid_images(report: ImageReport, where: str) -> None:
    """Raises when a report holds problems.

    Args:
        report: The check's report.
        where: The folder or source the report is about.

    Raises:
        ImageDataError: Listing every problem.
    """
    if report.problems:
        raise ImageDataError(where, report.problems)


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


def fit_image_spec(train: pd.DataFrame, *, layout: str, size: tuple[int, int], channels: int,
                   max_value: float | None = None, pixel_columns: list[str] | None = None,
                   convert: bool = False) -> ImageSpec:
    """Fits the image spec on training rows only.

    Args:
        train: Training rows (listing or table).
        layout: `files` or `pixels`.
        size: `(height, width)`.
        channels: Channel count.
        max_value: Largest raw pixel value. Default: 255 for files, the
            training maximum for pixel columns.
        pixel_columns: The pixel columns (`pixels`).
        convert: Convert other channel counts (`files`). Default false.

    Returns:
        The `ImageSpec`.
    """
    columns = list(pixel_columns or [])
    fitted = max_value is None and layout == "pixels"
    if max_value is None:
        max_value = _pixel_max(train, columns) if fitted else 255.0
    return ImageSpec(layout=layout, height=int(size[0]), width=int(size[1]), channels=int(channels),
                     max_value=float(max_value), pixel_columns=columns, convert=convert, fitted_max=fitted)


def decode_image(data: bytes, size: tuple[int, int], channels: int, *, convert: bool = False) -> np.ndarray:
    """Decodes an encoded image file and resizes it to the model's input.

    Args:
        data: The file's bytes (PNG, JPEG, GIF, BMP, WebP, TIFF, ...).
        size: `(height, width)` to resize to (bilinear).
        channels: 1, 3 or 4.
        convert: Convert another channel count instead of rejecting it.

    Returns:
        A float32 array `(height, width, channels)` of raw pixel values.

    Raises:
        ValueError: The bytes are not a decodable image, or the image has
            another channel count and `convert` is false.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("empty image data")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            found = channel_count(img)
            if found != channels and not convert:
                raise ValueError(f"image has {found} channels ({_CHANNEL_NAMES.get(found, img.mode)}), "
                                 f"the model expects {channels} ({_CHANNEL_NAMES[channels]})")
            img = img if img.mode == _MODES[channels] else img.convert(_MODES[channels])
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype="float32").reshape(size[0], size[1], channels)
    except UnidentifiedImageError:
        raise ValueError("not a decodable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"corrupt image: {exc}") from None


def channel_count(img: Any) -> int:
    """Returns the channel count of a Pillow image (palette images count as RGB or RGBA)."""
    if img.mode == "P":
        return 4 if "transparency" in img.info else 3
    if img.mode == "PA":
        return 4
    return len(img.getbands())


def pixel_array(df: pd.DataFrame, columns: list[str], shape: tuple[int, int, int]) -> np.ndarray:
    """Reshapes pixel columns to images.

    Args:
        df: Rows with the pixel columns.
        columns: Pixel columns, row-major.
        shape: `(height, width, channels)`.

    Returns:
        float32 array `(rows, height, width, channels)`.

    Raises:
        ImageDataError: Columns are missing, or rows have missing or
            non-numeric pixels (named by row).
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        shown = missing if len(missing) <= _MAX_ROWS_NAMED else [*missing[:_MAX_ROWS_NAMED], "..."]
        raise ImageDataError("input", [f"missing {len(missing)} of the {len(columns)} pixel columns: {shown}"])
    values = df[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float32", na_value=np.nan)
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    if bad.size:
        raise ImageDataError("input", [f"{_row_name(int(p), df.index[p])}: missing or non-numeric pixel values "
                                       f"in {', '.join(np.asarray(columns)[np.isnan(values[p])][:5])}"
                                       for p in bad[:_MAX_ROWS_NAMED]])
    return values.reshape(len(df), *shape)


def encode_file(path: str | Path) -> str:
    """Returns a file's bytes base64-encoded: the serving format of image files."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _pixel_max(train: pd.DataFrame, columns: list[str]) -> float:
    values = train[columns].to_numpy(dtype="float64") if len(train) else np.empty(0)
    observed = float(np.nanmax(values)) if values.size and not np.isnan(values).all() else 0.0
    return observed if observed > 0 else 255.0


def _payload_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64 (send image files base64-encoded)") from None
    raise TypeError(f"expected base64 text or bytes, got {type(value).__name__}")


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


def _channel_problems(usable: pd.DataFrame, channels: int) -> list[str]:
    wrong = usable[usable["channels"] != channels]
    if wrong.empty:
        return []
    counts = usable["channels"].value_counts().sort_index()
    mix = ", ".join(f"{int(n)} file{'s' if n != 1 else ''} with {int(c)} ({_CHANNEL_NAMES.get(int(c), '?')})"
                    for c, n in counts.items())
    lines = [f"channel counts differ from data.image.channels = {channels}: {mix}; "
             f"set data.image.on_channel_mismatch: convert to convert them"]
    lines += [f"{row.file}: {int(row.channels)} channels ({row.mode}), expected {channels}"
              for row in wrong.itertuples()]
    return lines


def _row_name(position: int, index: Any, path: Any = None) -> str:
    text = f"row {position}" if index == position else f"row {position} (index {index!r})"
    return f"{text} ({Path(str(path)).name})" if path is not None else text


def _row_list(positions: np.ndarray) -> str:
    shown = ", ".join(str(int(p)) for p in positions[:_MAX_ROWS_NAMED])
    more = f", ... (+{len(positions) - _MAX_ROWS_NAMED} more)" if len(positions) > _MAX_ROWS_NAMED else ""
    return f"[{shown}{more}]"
