"""Test quality of kerasflow's configs against scikit-learn baselines on the same split.

For every bundled dataset it runs, in-process (one temporary Prefect
server, a temporary MLflow store, step caching on in a temporary folder):

- the **defaults-only** config: the bundled config's `name` and `data`
  sections alone, so every other section takes kerasflow's data-driven
  defaults (`kerasflow.lint.defaults`);
- the **bundled** config (`configs/`);
- the **tuned** config, where one exists;

and, on the bundled run's own split (its cached `split.json`, train and
validation rows for fitting, the same test rows for scoring):

- scikit-learn's `LogisticRegression` / `Ridge` on standardized numeric and
  one-hot categorical columns (TF-IDF of words and word pairs for text,
  scaled pixels for images);
- `HistGradientBoostingClassifier` / `Regressor` on the same columns.

It prints accuracy (MAE for diabetes) per dataset and whether the goals
hold: bundled-or-tuned >= the best baseline, defaults-only >= the linear
baseline. Then, on diabetes with a 5-fold split, the two final models
after k-fold (`split.final: refit` and `ensemble`) against the
cross-validated estimate.

Usage: python benchmarks/quality.py [DATASET ...] [--skip-kfold]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# dataset: bundled config, tuned config (or None), metric, higher is better; a second bundled config of the
# same dataset (iris_kfold) is listed in ALTERNATIVES and the better of the two counts as "bundled".
DATASETS: dict[str, tuple[str, str | None, str, bool]] = {
    "digits": ("configs/digits.yaml", None, "accuracy", True),
    "breast_cancer": ("configs/breast_cancer.yaml", None, "accuracy", True),
    "wine": ("configs/wine.yaml", "configs/wine_tuned.yaml", "accuracy", True),
    "iris": ("configs/iris.yaml", None, "accuracy", True),
    "diabetes": ("configs/diabetes.yaml", None, "mae", False),
    "penguins": ("configs/penguins.yaml", None, "accuracy", True),
    "fine_foods": ("configs/fine_foods_bow.yaml", None, "accuracy", True),
    "digits_folder": ("configs/digits_folder.yaml", None, "accuracy", True),
}
ALTERNATIVES = {"iris": "configs/iris_kfold.yaml", "digits": "configs/digits_cnn.yaml"}


def defaults_only(bundled: str, folder: Path) -> str:
    """Writes a config holding only the bundled config's name and data sections; returns its path."""
    raw = yaml.safe_load((ROOT / bundled).read_text())
    path = folder / f"{raw['name']}-defaults.yaml"
    path.write_text(yaml.safe_dump({"name": f"{raw['name']}-defaults", "data": raw["data"]}))
    return str(path)


def cached_split(name: str) -> tuple[pd.DataFrame, Any]:
    """The raw rows (without the columns the data contract dropped) and the split a run of `name` used."""
    from kerasflow.data.split import Split
    from kerasflow.tasks.caching import steps_root

    root = steps_root() / name
    raw = max((root / "load-data").glob("*/raw.parquet"), key=lambda p: p.stat().st_mtime)
    split = max((root / "split-data").glob("*/split.json"), key=lambda p: p.stat().st_mtime)
    from kerasflow.data.contract import dropped_columns

    return pd.read_parquet(raw).drop(columns=dropped_columns(str(raw)), errors="ignore"), Split.load(split)


def baseline_features(config: Any, frame: pd.DataFrame) -> tuple[Any, Any]:
    """Returns `(X, transformer)` for the scikit-learn baselines: columns, text or pixels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from kerasflow.features.tabular import select_columns

    d = config.data
    if d.image is not None:
        return pixels(frame, d.image.size, Path(d.source)), make_pipeline(StandardScaler())
    if config.model.kind == "text":
        return frame[config.model.column].fillna("").astype(str), TfidfVectorizer(ngram_range=(1, 2), min_df=2)
    numeric, categorical = select_columns(frame, d.target, d.features, d.categorical)
    transformer = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")), categorical),
    ], sparse_threshold=0)
    return frame[numeric + categorical], transformer


def pixels(frame: pd.DataFrame, size: tuple[int, int], root: Path) -> np.ndarray:
    """Decodes an image listing's files (paths relative to the folder `root`) to flat grayscale pixels in [0, 1]."""
    from PIL import Image

    from kerasflow.data.images import FILE_COLUMN

    rows = [np.asarray(Image.open(root / path).convert("L").resize(tuple(size)), dtype="float32").ravel() / 255.0
            for path in frame[FILE_COLUMN]]
    return np.stack(rows)


def score_baselines(config: Any, frame: pd.DataFrame, split: Any, higher: bool) -> dict[str, float | None]:
    """Fits the linear and gradient-boosting baselines on train+val rows and scores the test rows."""
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_absolute_error
    from sklearn.pipeline import make_pipeline

    x, transformer = baseline_features(config, frame)
    y = frame[config.data.target]
    fit_rows, test_rows = sorted(split.train + split.val), list(split.test)
    take = (lambda rows: x.iloc[rows]) if hasattr(x, "iloc") else (lambda rows: x[rows])
    classify = higher
    models = {"linear": LogisticRegression(max_iter=5000, C=1.0) if classify else Ridge(alpha=1.0)}
    if config.model.kind != "text":
        models["boosting"] = (HistGradientBoostingClassifier(random_state=0) if classify
                              else HistGradientBoostingRegressor(random_state=0))
    scores: dict[str, float | None] = {"boosting": None}
    for name, estimator in models.items():
        model = make_pipeline(clone(transformer), estimator)
        target = y.astype(str) if classify else y.astype(float)
        model.fit(take(fit_rows), target.iloc[fit_rows])
        predicted = model.predict(take(test_rows))
        truth = target.iloc[test_rows]
        scores[name] = float(accuracy_score(truth, predicted) if classify else mean_absolute_error(truth, predicted))
    return scores


def run(config_path: str, overrides: list[str] | None = None) -> tuple[dict[str, float], str, float]:
    """Runs the training flow; returns the test metrics, the MLflow run id and the wall seconds."""
    from kerasflow.flows.train import train_flow

    start = time.perf_counter()
    result = train_flow(config_path, overrides or [])
    return result["metrics"], result["run_id"], time.perf_counter() - start


def better(a: float | None, b: float | None, higher: bool) -> bool:
    """True when `a` is at least as good as `b` (or `b` is missing)."""
    if b is None:
        return True
    if a is None:
        return False
    return a >= b - 1e-9 if higher else a <= b + 1e-9


def compare_datasets(names: list[str], folder: Path) -> list[dict[str, Any]]:
    """Runs every selected dataset's configs and baselines; returns one row each."""
    from kerasflow.schemas.config import load_config

    rows = []
    for name in names:
        bundled, tuned, metric, higher = DATASETS[name]
        config = load_config(ROOT / bundled)
        metrics, _, seconds = run(str(ROOT / bundled))
        frame, split = cached_split(config.name)
        if name in ALTERNATIVES:  # the other bundled config of the dataset, on the same data and test share
            other = run(str(ROOT / ALTERNATIVES[name]))[0]
            if better(other[metric], metrics[metric], higher):
                metrics = other
        baselines = score_baselines(config, frame, split, higher)
        defaults, _, _ = run(defaults_only(bundled, folder))
        tuned_metrics = run(str(ROOT / tuned), [f"tuning.directory={folder / 'tuning'}"])[0] if tuned else None
        row = {"dataset": name, "metric": metric, "higher": higher, "bundled": metrics[metric],
               "tuned": tuned_metrics[metric] if tuned_metrics else None, "defaults": defaults[metric],
               **baselines, "seconds": seconds}
        rows.append(row)
        print_row(row, header=len(rows) == 1)
    return rows


def print_row(row: dict[str, Any], header: bool = False) -> None:
    """Prints one dataset's line (and the header first)."""
    if header:
        print(f"\n{'dataset':<15}{'metric':<10}{'defaults':>9}{'bundled':>9}{'tuned':>9}{'linear':>9}"
              f"{'boosting':>9}  goals (best config >= best baseline; defaults >= linear)")

    def fmt(value: float | None) -> str:
        return f"{value:>9.4f}" if value is not None else f"{'-':>9}"

    higher = row["higher"]
    best = row["bundled"] if better(row["bundled"], row["tuned"], higher) else row["tuned"]
    best_baseline = row["linear"] if better(row["linear"], row["boosting"], higher) else row["boosting"]
    goal_1 = "met" if better(best, best_baseline, higher) else f"missed by {abs(best - best_baseline):.4f}"
    goal_2 = "met" if better(row["defaults"], row["linear"], higher) else \
        f"missed by {abs(row['defaults'] - row['linear']):.4f}"
    print(f"{row['dataset']:<15}{row['metric']:<10}{fmt(row['defaults'])}{fmt(row['bundled'])}{fmt(row['tuned'])}"
          f"{fmt(row['linear'])}{fmt(row['boosting'])}  {goal_1}; {goal_2}", flush=True)


def compare_kfold_finals() -> None:
    """Diabetes, 5 folds: the refit and the ensemble final models against the cross-validated MAE."""
    import mlflow

    print(f"\n{'diabetes, 5-fold':<22}{'test MAE':>10}{'CV MAE':>10}{'gap':>8}")
    for final in ("refit", "ensemble"):
        metrics, run_id, _ = run(str(ROOT / "configs/diabetes.yaml"),
                                 ["split.kind=kfold", "split.folds=5", f"split.final={final}",
                                  f"name=diabetes_kfold_{final}", f"registry.model_name=diabetes-kfold-{final}"])
        cv = mlflow.MlflowClient().get_run(run_id).data.metrics["cv/mae.mean"]
        print(f"{final:<22}{metrics['mae']:>10.3f}{cv:>10.3f}{(metrics['mae'] - cv) / cv:>+8.1%}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help=f"Datasets to run (default all): {', '.join(DATASETS)}.")
    parser.add_argument("--skip-kfold", action="store_true", help="Skip the k-fold final-model comparison.")
    args = parser.parse_args()

    from kerasflow.heavy import import_tensorflow
    from kerasflow.quiet import silence

    silence()
    folder = Path(tempfile.mkdtemp(prefix="kf-quality-"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
    os.environ["KERASFLOW_HOME"] = str(folder)
    os.environ["KERASFLOW_CACHE_DAYS"] = "1"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import_tensorflow()
    os.chdir(ROOT)
    compare_datasets(args.datasets or list(DATASETS), folder)
    if not args.skip_kfold:
        compare_kfold_finals()


if __name__ == "__main__":
    main()
