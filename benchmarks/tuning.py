"""Measures what a hyperparameter search buys over each bundled config's defaults.

For each dataset it runs, in one process against one temporary Prefect
server and MLflow store:

* the untuned pipeline `configs/<name>.yaml` (the baseline of this run),
* the same pipeline with a `tuning` section (a Bayesian search over layers,
  units, dropout, optimizer and learning rate; `--trials` trials),
* for the datasets in `--cv` (default wine), the same search scored by
  3-fold cross-validation of the non-test rows (`tuning.cv_folds: 3`),

and prints the best validation score of the search, the test accuracy of the
tuned and untuned models and their ratio, and trials per minute.

With `--overhead` it instead measures what a trial costs besides training,
paired in one run: a bare keras-tuner script (the wine split, a
`Normalization` layer, the same search space, `BayesianOptimization` with the
same seed, trials and epochs, no early stopping) against `kerasflow tune` of
the same search, both in fresh processes. It prints seconds per trial of each
search (the bare `tuner.search` call; kerasflow's first trial start to last
trial end, from the nested MLflow runs) and their ratio (goal <= 1.3x).

With `--dask` it measures trials per minute of the same wine search run
locally (one trial at a time) and on a Dask `LocalCluster` of 2 workers
(`runner.kind: dask`), each `kerasflow tune` in a fresh process; the rate
is trials over the first trial's start to the last trial's end (MLflow).

Usage:

    python benchmarks/tuning.py [--trials N] [--cv NAME ...] [NAME ...]
    python benchmarks/tuning.py --overhead [--trials N] [--epochs N]
    python benchmarks/tuning.py --dask [--trials N] [--epochs N]
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


BARE_TUNER = r'''
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras, keras_tuner as kt
from sklearn import datasets
from sklearn.model_selection import train_test_split
trials, epochs, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
data = datasets.load_wine()
x, y = data.data.astype("float32"), data.target
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.15 / 0.8, stratify=y_rest, random_state=42)
norm = keras.layers.Normalization()
norm.adapt(x_train)

def build(hp):
    inputs = keras.Input(shape=(x.shape[1],))
    h = norm(inputs)
    units = hp.Int("units", 16, 128, step=16)
    for i in range(hp.Int("layers", 1, 3)):
        h = keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")(h)
        if hp.Boolean("use_dropout"):
            with hp.conditional_scope("use_dropout", [True]):
                h = keras.layers.Dropout(hp.Float("dropout", 0.1, 0.5))(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
                 "sgd": keras.optimizers.SGD}[hp.Choice("optimizer", ["adam", "rmsprop", "sgd"])](lr)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

class Bare(kt.BayesianOptimization):
    # keras-tuner's default run_trial imports tensorboard, which is not installed; this is its documented override
    def run_trial(self, trial, *args, **kwargs):
        return self.hypermodel.build(trial.hyperparameters).fit(*args, **kwargs)

tuner = Bare(build, objective="val_accuracy", max_trials=trials, seed=42, directory=folder,
                                project_name="bare", overwrite=True)
start = time.perf_counter()
tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=16, verbose=0)
print("search_seconds", time.perf_counter() - start, "trials", len(tuner.oracle.trials))
'''


def isolated_env(prefix: str) -> tuple[Path, dict[str, str]]:
    """A temporary folder and an environment whose MLflow store, Prefect home and port, and project are in it.

    This process reads the same MLflow store (`search_stats`).
    """
    from kerasflow.runtime.processes import free_port

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db",
           "PREFECT_HOME": str(workdir / "prefect"), "KERASFLOW_PREFECT_PORT": str(free_port()),
           "KERASFLOW_HOME": str(workdir)}
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    return workdir, env


def trial_overhead(trials: int, epochs: int) -> None:
    """Times seconds per trial of a bare keras-tuner search and of `kerasflow tune`, paired, and prints them."""
    from common import measure  # benchmarks/common.py, beside this script

    workdir, env = isolated_env("kf-trials-")
    script = workdir / "bare_tuner.py"
    script.write_text(BARE_TUNER)
    config = tuned_config("wine", trials, None, workdir)
    raw = yaml.safe_load(config.read_text())
    raw["training"].update(epochs=epochs, early_stopping={"enabled": False}, reduce_lr={"enabled": False})
    raw["model"].update(l2=0.0)
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    cli = [sys.executable, "-m", "kerasflow.runtime.cli"]
    try:
        measure([*cli, "validate", str(config)], env)  # starts the shared Prefect server (not timed)
        bare_out = measure([sys.executable, str(script), str(trials), str(epochs), str(workdir / "bare")], env)[2]
        bare = float(bare_out.split("search_seconds")[1].split()[0]) / trials
        out = measure([*cli, "tune", str(config), "--fresh"], env)[2]
        run_id = out.split("MLflow run:")[1].split()[0]
        _, count, minutes = search_stats(run_id)
        kf = minutes * 60 / count
        print(f"\nwine, {trials} Bayesian trials of {epochs} epochs (no early stopping), seconds per trial:")
        print(f"  bare keras-tuner {bare:.2f}   kerasflow {kf:.2f}   ratio {kf / bare:.2f}x (goal <= 1.3x)")
    finally:
        measure([*cli, "server", "stop"], env)


def dask_rates(trials: int, epochs: int) -> None:
    """Prints trials per minute of one search run locally and on 2 Dask workers."""
    from common import measure  # benchmarks/common.py, beside this script

    workdir, env = isolated_env("kf-dask-trials-")
    config = tuned_config("wine", trials, None, workdir)
    cli = [sys.executable, "-m", "kerasflow.runtime.cli"]
    common = ["--fresh", "--no-lint", "--set", f"training.epochs={epochs}", "--set", "tuning.tuner=random"]
    try:
        measure([*cli, "validate", str(config)], env)  # starts the shared Prefect server (not timed)
        print(f"\nwine, {trials} random trials of up to {epochs} epochs: trials per minute")
        for label, extra in (("local, 1 at a time", []), ("Dask, 2 workers", ["--set", "runner.kind=dask",
                                                                              "--set", "runner.n_workers=2"])):
            seconds, _, out = measure([*cli, "tune", str(config), *common, *extra,
                                       "--set", f"tuning.directory={workdir / label.split(',')[0]}"], env)
            _, count, minutes = search_stats(out.split("MLflow run:")[1].split()[0])
            print(f"  {label:<20}{count / minutes:>7.1f} trials/min   ({count} trials, command {seconds:.0f} s)",
                  flush=True)
    finally:
        measure([*cli, "server", "stop"], env)


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
    parser.add_argument("--overhead", action="store_true",
                        help="time seconds per trial against a bare keras-tuner script instead")
    parser.add_argument("--dask", action="store_true",
                        help="time trials per minute locally and on 2 Dask workers instead")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per trial with --overhead or --dask (default 30)")
    args = parser.parse_args()
    if args.overhead:
        trial_overhead(args.trials, args.epochs)
        return
    if args.dask:
        dask_rates(args.trials, args.epochs)
        return
    unknown = sorted(set(args.names + args.cv) - set(DATASETS))
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {list(DATASETS)}")

    from kerasflow.heavy import import_tensorflow
    from kerasflow.quiet import silence

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
