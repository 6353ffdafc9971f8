"""Scale of image folders: a large synthetic folder against a small one, decoded in memory and streamed.

The job (issue 25, item 5): a folder of 32x32 RGB PNG files in 10 class
subfolders (each class a colour with noise, written with NumPy and Pillow),
trained by `kerasflow run` in a fresh process: a small CNN (filters 8-16,
dense 32), 2 epochs, batch 128, an 80/10/10 split, evaluated and registered.
It runs at each size (default 5,000 and 50,000 images) and each reading of
the images (`data.image.in_memory`):

- **true**: every image decoded into memory once (the path before streaming);
- **false**: streamed from disk with `tf.data` batch by batch
  (`kerasflow.training.image_stream`), the default (`auto`) above 256 MiB
  of decoded images.

For each it prints wall time, seconds per 1,000 images (of the whole run,
and of the steps that read the images: load, validate, split, preprocess,
train, evaluate, as Prefect timed them) and peak RSS of the process tree,
then per mode the ratios of the largest size to the smallest. The whole
run's time per image falls with size (registration, the serving check and
the process start are fixed costs); the steps' time per image is the
figure that shows whether reading the images scales.
Goal for the streamed path: peak <= 1.25x and time per image <= 1.3x.

Usage:

    python benchmarks/scale_images.py [--sizes 5000 50000] [--modes false true] [--data DIR]
    python benchmarks/scale.py --images [same options]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml
from common import measure  # benchmarks/common.py, beside this script

PY = sys.executable
CLASSES = 10
SIDE = 32
DATA_STEPS = ("load-data", "validate-data", "split-data", "fit-preprocessing", "train-model", "evaluate-model")


def write_folder(images: int, folder: Path) -> Path:
    """Writes `images` 32x32 RGB PNGs into `folder/<class>/` (reused when it exists); returns the folder."""
    import numpy as np
    from PIL import Image

    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 216, size=(CLASSES, 3))
    for label in range(CLASSES):
        (folder / f"c{label}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        label = i % CLASSES
        noise = rng.normal(0, 40, size=(SIDE, SIDE, 3))
        pixels = np.clip(colours[label] + noise, 0, 255).astype("uint8")
        Image.fromarray(pixels, "RGB").save(folder / f"c{label}" / f"img_{i:06d}.png")
    done.write_text(str(images))
    return folder


def write_config(source: Path, folder: Path, in_memory: str) -> Path:
    """Writes the kerasflow config of the job for the folder `source` and one reading of its images."""
    config = {"name": "scale-images",
              "data": {"source": str(source), "target": "label",
                       "image": {"size": [SIDE, SIDE], "channels": 3, "in_memory": yaml.safe_load(in_memory)}},
              "split": {"test_fraction": 0.1, "val_fraction": 0.1, "seed": 0},
              "model": {"kind": "cnn", "filters": [8, 16], "dense_units": [32]},
              "training": {"epochs": 2, "batch_size": 128, "early_stopping": {"enabled": False}},
              "registry": {"model_name": "scale-images-cnn"}}
    path = folder / f"scale-{source.name}-{in_memory}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main(argv: list[str] | None = None) -> None:
    """Runs the job at each size and reading, and prints time per image and peak memory with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 50_000], help="images per folder")
    parser.add_argument("--modes", nargs="+", default=["false", "true"], choices=["false", "true", "auto"],
                        help="data.image.in_memory values to run (default: false true)")
    parser.add_argument("--data", type=Path, default=None, help="folder to keep the generated image folders in (reused)")
    args = parser.parse_args(argv)
    from scale import task_seconds  # benchmarks/scale.py: seconds per task from the Prefect API

    from kerasflow.runtime.processes import free_port

    with tempfile.TemporaryDirectory(prefix="kf-scale-images-") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or tmp
        data.mkdir(parents=True, exist_ok=True)
        project = tmp / "project"
        project.mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(tmp / "prefect"),
               "KERASFLOW_PREFECT_PORT": str(free_port()), "KERASFLOW_HOME": str(project)}
        env.pop("MLFLOW_TRACKING_URI", None)
        cli = [PY, "-m", "kerasflow.runtime.cli"]
        try:
            warm = write_config(write_folder(500, data / "images_500"), tmp, "false")
            measure([*cli, "run", str(warm), "--no-lint"], env, cwd=project)  # starts the shared server
            results: dict[tuple[str, int], tuple[float, float, float]] = {}
            print(f"{'images':>8}{'in_memory':>11}{'s':>8}{'s/1k img':>10}{'data s/1k':>11}{'peak MB':>9}")
            for mode in args.modes:
                for images in args.sizes:
                    source = write_folder(images, data / f"images_{images}")
                    config = write_config(source, tmp, mode)
                    seconds, peak, out = measure([*cli, "run", str(config), "--no-lint"], env, cwd=project)
                    tasks = task_seconds(out, env)
                    steps = sum(tasks.get(name, 0.0) for name in DATA_STEPS)
                    results[(mode, images)] = (seconds, peak, steps)
                    print(f"{images:>8,}{mode:>11}{seconds:>8.1f}{seconds / images * 1e3:>10.2f}"
                          f"{steps / images * 1e3:>11.2f}{peak:>9.0f}", flush=True)
                    print("          tasks: " + ", ".join(f"{k} {v:.1f}" for k, v in tasks.items()), flush=True)
            small, large = min(args.sizes), max(args.sizes)
            for mode in args.modes:
                (s_small, m_small, d_small), (s_large, m_large, d_large) = results[(mode, small)], results[(mode, large)]
                per_image = (s_large / large) / (s_small / small)
                per_step = (d_large / large) / (d_small / small) if d_small and d_large else float("nan")
                print(f"in_memory {mode}: {small:,} -> {large:,} images: peak {m_large / m_small:.2f}x "
                      f"(goal <= 1.25x), time per image {per_image:.2f}x (goal <= 1.3x), "
                      f"in the steps that read images {per_step:.2f}x")
        finally:
            measure([*cli, "server", "stop"], env, cwd=project)


if __name__ == "__main__":
    main()
