"""Measures what a hyperparameter search buys over each bundled config's defaults.

For each dataset it runs, in one process against one temporary Prefect
server and MLflow store:

* the untuned pipeline `configs/<name>.yaml` (the baseline of this run),
* the same pipeline with a `tuning` section (a Bayesian search over layers,
  units, dropout, optimizer and learning rate; `--trials` trials),
* for the datasets in `--cv` (default wine), the same search scored by
  3-fold cross-validation of the non-test rows (`tuning.cv_folds: 3`),

and prints the best validation score of the search, the test accuracy of the
tuned and untuned models and their ratio, and trials per minute. Usage:

    python benchmarks/tuning.py [--trials N] [--cv NAME ...] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = ("wine", "breast_cancer", "digits")
SPACE = {
    "model.layers": {"type": "int", "min": 1, "max": 3},
    "model.units": {"type": "int", "min": 16, "max": 128, "step": 16},
    "model.use_dropout": {"type": "boolean"},
    "model.dropout": {"type": "float", "min": 0.1, "max": 0.5, "parent": "model.use_dropout", "parent_values": [True]},
    "training.optimizer.learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
    "training.optimizer.name": {"type": "choice", "values": ["adam", "rmsprop", "sgd"]},
}


def tuned_config(name: str, trials: int, cv_folds: int | None, workdir: Path) -> Path:
    """Writes `configs/<name>.yaml` plus a tuning section to `workdir` and returns its path."""
    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    raw["name"] = f"{name}_tuned" + (f"_cv{cv_folds}" if cv_folds else "")
    raw.setdefault("registry", {})["model_name"] = raw["name"]
    raw["tuning"] = {"tuner": "bayesian", "objective": {"name": "val_accuracy", "direction": "max"},
                     "max_trials": trials, "refit": "train", "cv_folds": cv_folds, "seed": 42,
                     "directory": str(workdir / "tuning"), "space": SPACE}
    path = workdir / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def search_stats(run_id: str) -> tuple[float, int, float]:
    """Returns the best validation score, the trial count and the search's wall minutes from MLflow."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    trials = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    start = min(t.info.start_time for t in trials)
    end = max(t.info.end_time or t.info.start_time for t in trials)
    return run.data.metrics["tune/best_score"], len(trials), (end - start) / 60000.0


def main() -> None:
    """Runs the comparison and prints one row per pipeline variant."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets to run (default: {' '.join(DATASETS)})")
    parser.add_argument("--trials", type=int, default=20, help="search budget per dataset (default 20)")
    parser.add_argument("--cv", nargs="*", default=["wine"], metavar="NAME",
                        help="datasets also tuned with 3-fold CV scoring (default: wine)")
    args = parser.parse_args()
    unknown = sorted(set(args.names + args.cv) - set(DATASETS))
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {list(DATASETS)}")

    from kerasflow.quiet import import_tensorflow, silence

    silence()
    workdir = Path(tempfile.mkdtemp(prefix="kf-tuning-"))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir}/mlflow.db")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import_tensorflow()
    from kerasflow.flows.train import train_flow

    os.chdir(ROOT)
    rows = []
    for name in args.names or DATASETS:
        base = train_flow(str(ROOT / "configs" / f"{name}.yaml"))["metrics"]["accuracy"]
        for cv in [None, *([3] if name in args.cv else [])]:
            start = time.perf_counter()
            result = train_flow(str(tuned_config(name, args.trials, cv, workdir)), fresh=True)
            seconds = time.perf_counter() - start
            best, trials, minutes = search_stats(result["run_id"])
            tuned = result["metrics"]["accuracy"]
            rows.append((name, "3-fold" if cv else "holdout", best, tuned, base, tuned / base,
                         trials / minutes if minutes else float("nan"), trials, seconds))
    print(f"\n{'dataset':<15}{'scoring':<9}{'best val':>9}{'test tuned':>11}{'untuned':>9}{'ratio':>7}"
          f"{'trials/min':>11}{'trials':>7}{'wall s':>8}")
    for name, scoring, best, tuned, base, ratio, rate, trials, seconds in rows:
        print(f"{name:<15}{scoring:<9}{best:>9.4f}{tuned:>11.4f}{base:>9.4f}{ratio:>7.3f}{rate:>11.2f}"
              f"{trials:>7}{seconds:>8.1f}")
    print("best val = the search's best val_accuracy (mean over folds with 3-fold scoring); test accuracy is on "
          "the untouched test split; ratio = tuned / untuned test accuracy (same split, same run)")


if __name__ == "__main__":
    main()
