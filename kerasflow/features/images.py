"""Image features: decoding, the serving formats, and the fitted image spec.

Two layouts are supported:

* `files`: a folder with one subfolder per class, listed and checked file
  by file by `kerasflow.data.images`. Files are decoded with Pillow and
  resized to the configured size, the same way in training and serving.
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

import base64
import binascii
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from kerasflow.errors import BadInputError
from kerasflow.progress import report_progress

IMAGE_INPUT = "image"
IMAGE_COLUMN = "image"
PATH_COLUMN = "path"
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
CHANNEL_NAMES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}
MAX_ROWS_NAMED = 20
MAX_FILES_SHOWN = 10  # per-file lists in messages and logs: the first ten, and a count of the rest
MAX_PROBLEMS_SHOWN = 30


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
        lines = "\n".join(f"  - {p}" for p in capped(self.problems, "problems", MAX_PROBLEMS_SHOWN))
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"image data {where} has {len(self.problems)} {noun}:\n{lines}")


def capped(lines: list[str], noun: str = "", limit: int = MAX_FILES_SHOWN) -> list[str]:
    """Returns the first `limit` lines of a per-file list, and one line counting the rest.

    Args:
        lines: One line per file (or problem).
        noun: What the lines are about, for the count (e.g. `files`). Default none.
        limit: Lines kept. Default 10.

    Returns:
        At most `limit + 1` lines.
    """
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"... and {len(lines) - limit} more{f' {noun}' if noun else ''}"]


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
        streamed: Training and evaluation read the files from disk batch
            by batch (`kerasflow.training.image_stream`) instead of
            decoding every image into memory (`files` layout; chosen from
            `data.image.in_memory`). Serving decodes its rows either way.
            Default false.
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
    streamed: bool = False
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
            report_progress("decode images", pos + 1, len(df), "image")
        if problems:
            raise ImageDataError("input", problems)
        return out


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
                raise ValueError(f"image has {found} channels ({CHANNEL_NAMES.get(found, img.mode)}), "
                                 f"the model expects {channels} ({CHANNEL_NAMES[channels]})")
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
        shown = missing if len(missing) <= MAX_ROWS_NAMED else [*missing[:MAX_ROWS_NAMED], "..."]
        raise ImageDataError("input", [f"missing {len(missing)} of the {len(columns)} pixel columns: {shown}"])
    values = df[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float32", na_value=np.nan)
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    if bad.size:
        raise ImageDataError("input", [f"{_row_name(int(p), df.index[p])}: missing or non-numeric pixel values "
                                       f"in {', '.join(np.asarray(columns)[np.isnan(values[p])][:5])}"
                                       for p in bad[:MAX_ROWS_NAMED]])
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


def _row_name(position: int, index: Any, path: Any = None) -> str:
    text = f"row {position}" if index == position else f"row {position} (index {index!r})"
    return f"{text} ({Path(str(path)).name})" if path is not None else text
