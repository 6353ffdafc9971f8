"""Measures test quality of the bundled configs against the goals in the issues.

Runs each config's whole pipeline (in-process, one temporary Prefect server,
a temporary MLflow store) and prints the test metric, the goal and their
ratio. Usage:

    python benchmarks/quality.py [NAME ...]

With names, only those entries run (e.g. `digits penguins`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (config, metric, goal, higher_is_better); the goal "majority" is the accuracy of always
# predicting the most frequent class of the config's test rows, measured in the same run.
ENTRIES: dict[str, tuple[str, str, float | str | None, bool]] = {
    "digits": ("configs/digits.yaml", "accuracy", 0.97, True),
    "digits_cnn": ("configs/digits_cnn.yaml", "accuracy", 0.98, True),
    "digits_folder": ("configs/digits_folder.yaml", "accuracy", None, True),
    "breast_cancer": ("configs/breast_cancer.yaml", "accuracy", 0.96, True),
    "wine": ("configs/wine.yaml", "accuracy", 0.97, True),
    "iris": ("configs/iris.yaml", "accuracy", None, True),
    "penguins": ("configs/penguins.yaml", "accuracy", 0.97, True),
    "diabetes": ("configs/diabetes.yaml", "mae", None, False),
    "fine_foods_bow": ("configs/fine_foods_bow.yaml", "accuracy", "majority", True),
    "fine_foods_conv1d": ("configs/fine_foods_conv1d.yaml", "accuracy", "majority", True),
    "fine_foods_gru": ("configs/fine_foods_gru.yaml", "accuracy", "majority", True),
    "fine_foods_functional": ("configs/fine_foods_functional.yaml", "score.accuracy", "majority", True),
}


def majority_baseline(config_path: str) -> float:
    """Returns the test accuracy of always predicting the most frequent class.

    The test rows are the config's `data.test_source`; the majority class
    is the most frequent one of its `data.source` (training) rows.
    """
    from kerasflow.data.load import load_frame
    from kerasflow.schemas.config import load_config

    data = load_config(config_path).data
    if not data.test_source:
        raise ValueError(f"{config_path}: a majority baseline needs data.test_source")
    majority = load_frame(data.source)[data.target].astype(str).value_counts().idxmax()
    return float((load_frame(data.test_source)[data.target].astype(str) == majority).mean())


def main(names: list[str]) -> None:
    """Runs the selected entries and prints one row each."""
    from kerasflow.quiet import import_tensorflow, silence

    silence()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='kf-quality-')}/mlflow.db")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import_tensorflow()
    from kerasflow.flows.train import train_flow

    os.chdir(ROOT)
    rows = []
    for name in names or list(ENTRIES):
        config, metric, goal, higher = ENTRIES[name]
        if goal == "majority":
            goal = majority_baseline(config)
        start = time.perf_counter()
        result = train_flow(config)
        seconds = time.perf_counter() - start
        value = result["metrics"][metric]
        ratio = (value / goal if higher else goal / value) if goal else None
        rows.append((name, metric, value, goal, ratio, seconds))
    print(f"\n{'pipeline':<22}{'metric':<16}{'test':>8}{'goal':>8}{'ratio':>8}{'wall s':>9}")
    for name, metric, value, goal, ratio, seconds in rows:
        goal_text = f"{goal:.2f}" if goal else "-"
        ratio_text = f"{ratio:.3f}" if ratio else "-"
        print(f"{name:<22}{metric:<16}{value:>8.4f}{goal_text:>8}{ratio_text:>8}{seconds:>9.1f}")
    print("ratio = test/goal for scores (>= 1 meets the goal), goal/test for errors")


if __name__ == "__main__":
    main(sys.argv[1:])
