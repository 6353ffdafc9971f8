"""A sample of an image folder's file headers: the size and channels to infer, and mismatches to catch early.

Pillow's `Image.open` is lazy: it reads a file's header (format, size,
mode, palette) and decodes no pixel until asked. A bounded sample of a
folder's files, spread evenly over its classes, is read this way in well
under a second, before the load step decodes every file:

- `infer_image_shape` chooses `data.image.size` (the most common size) and
  `channels` (1 when every sampled file is grayscale, else 3) for a config
  that leaves them out;
- `sample_channel_problems` names sampled files whose channel count is not
  the configured one, so a folder that cannot pass the full check is
  refused at once, in a few lines.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kerasflow.data.images import list_class_files
from kerasflow.features.images import CHANNEL_NAMES, ImageDataError, capped, channel_count

SAMPLE_FILES = 200
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
SAMPLE_COLUMNS = ("file", "label", "width", "height", "channels", "mode", "gray")


@dataclass(frozen=True)
class InferredShape:
    """The image shape read from a sample of file headers.

    Args:
        size: `(height, width)`: the most common size of the sampled files.
        channels: 1 when every sampled file is grayscale, else 3.
        sampled: Files whose header was read.
        files: Image files in the folder (by extension).
        size_share: Share of the sampled files that have `size`.
    """

    size: tuple[int, int]
    channels: int
    sampled: int
    files: int
    size_share: float

    def describe(self) -> str:
        """A few words for the run's log, e.g. `image size 16x16, 1 channel (grayscale) from 200 of 600 files`."""
        noun = "channel" if self.channels == 1 else "channels"
        share = "" if self.size_share == 1 else f", {self.size_share:.0%} of them at that size"
        return (f"image size {self.size[0]}x{self.size[1]}, {self.channels} {noun} "
                f"({CHANNEL_NAMES[self.channels]}) from the headers of {self.sampled} of {self.files} files{share}")


def sample_image_headers(root: str | Path, extensions: list[str], limit: int = SAMPLE_FILES,
                         prefix: str = "") -> pd.DataFrame:
    """Lists a folder of class subfolders and reads the headers of at most `limit` of its image files.

    The sampled files are spread evenly over the listing (which is in
    class order), so every class is sampled.

    Args:
        root: The folder.
        extensions: Lower-case extensions read as images, with the dot.
        limit: Most headers read. Default 200.
        prefix: Put before each file name (`test_source/` for a test folder). Default none.

    Returns:
        One row per image file (by extension): `file` (relative to the
        root), `label`, and for the sampled files whose header Pillow reads,
        `width`, `height`, `channels` (as the full check counts them),
        `mode` and `gray` (missing for the others); `sampled` is true for
        every file whose header was read.

    Raises:
        ImageDataError: `root` is not a folder.
    """
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise ImageDataError(str(root), [f"{base} is not a folder"])
    files = [(path, name) for path, name in list_class_files(base)[1] if path.suffix.lower() in extensions]
    step = max(1.0, len(files) / limit)
    picked = {int(i * step) for i in range(min(limit, len(files)))}
    rows = [{"file": f"{prefix}{path.relative_to(base).as_posix()}", "label": name,
             **(_header(path) if i in picked else {})} for i, (path, name) in enumerate(files)]
    frame = pd.DataFrame(rows, columns=[*SAMPLE_COLUMNS])
    frame["sampled"] = frame["width"].notna()
    return frame


def sampled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a listing whose header was read (`sample_image_headers`)."""
    return frame[frame["sampled"].fillna(False).astype(bool)] if "sampled" in frame.columns else frame.head(0)


def infer_image_shape(sample: pd.DataFrame) -> InferredShape | None:
    """Chooses `data.image.size` and `channels` from a header sample (`sample_image_headers`).

    Args:
        sample: A listing with sampled headers (`sample_image_headers`).

    Returns:
        The `InferredShape`, or None when no sampled file is a readable image.
    """
    files, sample = len(sample), sampled(sample)
    if sample.empty:
        return None
    sizes = Counter(zip(sample["height"].astype(int), sample["width"].astype(int)))
    (size, count), = sizes.most_common(1)
    channels = 1 if bool(sample["gray"].astype(bool).all()) else 3
    return InferredShape(size=(int(size[0]), int(size[1])), channels=channels, sampled=len(sample), files=files,
                         size_share=count / len(sample))


def sample_channel_problems(sample: pd.DataFrame, channels: int, above: float = 0.0) -> list[str]:
    """Names the sampled files whose channel count is not `channels` (the first ten, and how many).

    Any such file fails the full check under `on_channel_mismatch: fail`,
    so a folder can be refused from the sample, before anything is decoded.

    Args:
        sample: A listing with sampled headers (`sample_image_headers`).
        channels: `data.image.channels`.
        above: Report only when more than this share of the sampled files
            has another count. Default 0: any.

    Returns:
        No problems when the sampled files fit; else one, which names up to
        ten of the files on lines of their own and counts the rest.
    """
    files, sample = len(sample), sampled(sample)
    wrong = sample[sample["channels"] != channels]
    if wrong.empty or len(wrong) <= above * len(sample):
        return []
    found = ", ".join(f"{n} with {int(c)} ({CHANNEL_NAMES.get(int(c), '?')})"
                      for c, n in wrong["channels"].value_counts().sort_index().items())
    fix = f"set data.image.channels: {int(wrong['channels'].mode()[0])}" if len(wrong) == len(sample) \
        else "set data.image.channels to the files' count"
    lines = [f"data.image.channels is {channels} ({CHANNEL_NAMES[channels]}), but {len(wrong)} of "
             f"{len(sample)} files sampled from {files} have another channel "
             f"count: {found}; {fix}, or data.image.on_channel_mismatch: convert to convert them; for example:"]
    lines += capped([f"{row.file}: {_count(int(row.channels), 'channel')} ({row.mode})" for row in wrong.itertuples()],
                    "sampled files")
    return ["\n      ".join(lines)]


def _header(path: Path) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError  # heavy: only when a folder is sampled

    try:
        with Image.open(path) as img:  # lazy: reads the header (size, mode, palette), decodes nothing
            return {"width": img.size[0], "height": img.size[1], "channels": channel_count(img), "mode": img.mode,
                    "gray": _gray(img)}
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError):
        return {}  # the full check names unreadable files


def _gray(img: Any) -> bool:
    if img.mode in GRAY_MODES:
        return True
    if img.mode not in ("P", "PA") or img.palette is None:
        return False
    raw = bytes(img.palette.palette)  # the palette chunk is part of the header: nothing is decoded
    width = len(img.palette.mode) if img.palette.mode in ("RGB", "RGBA") else 3
    if not raw or len(raw) % width:
        return False
    return all(raw[i] == raw[i + 1] == raw[i + 2] for i in range(0, len(raw), width))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
