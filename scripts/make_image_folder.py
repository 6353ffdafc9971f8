"""Writes scikit-learn's digits as a folder of PNG files, one subfolder per class.

The bundled `data/images/` folder (used by `configs/digits_folder.yaml` and
the quality benchmark) was made with the defaults: the first 60 images of
each digit, upscaled from 8x8 to 16x16 (bilinear), 8-bit grayscale. Usage:

    python scripts/make_image_folder.py data/images --size 16 --per-class 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    """Parses arguments and writes the folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (class subfolders are created)")
    parser.add_argument("--size", type=int, default=16, help="side of the square images in pixels (default 16)")
    parser.add_argument("--per-class", type=int, default=60, help="images per digit (default 60)")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from kerasflow.data.load import load_frame

    frame = load_frame("digits")
    out = Path(args.out)
    written = 0
    for label, rows in frame.groupby("target", sort=True):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for index, pixels in rows.drop(columns="target").head(args.per_class).iterrows():
            gray = np.clip(pixels.to_numpy(dtype="float64").reshape(8, 8) * 255.0 / 16.0, 0, 255).astype("uint8")
            image = Image.fromarray(gray).resize((args.size, args.size), Image.Resampling.BILINEAR)
            image.save(folder / f"digit_{index:04d}.png", optimize=True)
            written += 1
    print(f"wrote {written} PNG files of {args.size}x{args.size} pixels under {out}/<digit>/")


if __name__ == "__main__":
    main()
