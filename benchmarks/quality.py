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

# name: (config, metric, goal, higher_is_better)
ENTRIES: dict[str, tuple[str, str, float | None, bool]] = {
    "digits": ("configs/digits.yaml", "accuracy", 0.97, True),
    "breast_cancer": ("configs/breast_cancer.yaml", "accuracy", 0.96, True),
    "wine": ("configs/wine.yaml", "accuracy", 0.97, True),
    "iris": ("configs/iris.yaml", "accuracy", None, True),
    "penguins": ("configs/penguins.yaml", "accuracy", 0.97, True),
    "diabetes": ("configs/diabetes.yaml", "mae", None, False),
}


def main(names: list[str]) -> None:
    """Runs the selected entries and prints one row each."""
    from kerasflow.quiet import import_tensorflow, silence

    silence()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='kf-quality-')}/mlflow.db")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import_tensorflow()
    from flows.train import train_flow

    os.chdir(ROOT)
    rows = []
    for name in names or list(ENTRIES):
        config, metric, goal, higher = ENTRIES[name]
        start = time.perf_counter()
        result = train_flow(config)
        seconds = time.perf_counter() - start
        value = result["metrics"][metric]
        ratio = (value / goal if higher else goal / value) if goal else None
        rows.append((name, metric, value, goal, ratio, seconds))
    print(f"\n{'pipeline':<22}{'metric':<10}{'test':>8}{'goal':>8}{'ratio':>8}{'wall s':>9}")
    for name, metric, value, goal, ratio, seconds in rows:
        goal_text = f"{goal:.2f}" if goal else "-"
        ratio_text = f"{ratio:.3f}" if ratio else "-"
        print(f"{name:<22}{metric:<10}{value:>8.4f}{goal_text:>8}{ratio_text:>8}{seconds:>9.1f}")
    print("ratio = test/goal for scores (>= 1 meets the goal), goal/test for errors")


if __name__ == "__main__":
    main(sys.argv[1:])
