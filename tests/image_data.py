"""Real image files for the image tests: scikit-learn digits written as PNGs with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from kerasflow.data.load import load_frame


def digit_png(pixels: np.ndarray, size: int = 16, mode: str = "L") -> bytes:
    """Encodes one 8x8 digits image (values 0-16) as a `size` x `size` PNG in a Pillow mode."""
    img = Image.fromarray((np.asarray(pixels).reshape(8, 8) * 15.9).astype("uint8")).resize((size, size))
    buffer = io.BytesIO()
    img.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def write_digit_folder(root: Path, classes: tuple[int, ...] = (0, 1, 2), per_class: int = 8) -> Path:
    """Writes the first `per_class` digits of each class as PNGs into `root/<class>/`."""
    frame = load_frame("digits")
    for label in classes:
        rows = frame[frame["target"] == label].drop(columns="target").to_numpy()[:per_class]
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(rows):
            (root / str(label) / f"img_{i:03d}.png").write_bytes(digit_png(pixels))
    return root
