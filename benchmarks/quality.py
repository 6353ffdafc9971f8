"""Offline quality benchmark: kerasflow's defaults and a small search against scikit-learn, on the same rows.

The one command (fetches what it needs: Debian's `r-cran-modeldata` and
`r-cran-mlbench` via `apt-get download`, read with `pip install rdata`;
see `benchmarks/datasets.py`):

    python benchmarks/quality.py --out quality.json

Sets (`benchmarks/quality_sets.py`): 13 real tables from the Debian R data
packages, scikit-learn's 6 bundled sets, the fine-food reviews (text) and
the digit image folder. Each seed is its own stratified 80/20 train/test
split, written to files: kerasflow reads the test file as
`data.test_source`, so every method is scored on exactly the same test rows
(10 seeds below 500 rows, 3 below 4,000, 1 above, unless `--seeds`). Methods:

- `defaults`: a config with only `name` and `data`; kerasflow chooses the rest;
- `tuned`: the same plus a `tuning` section without a `space`, a small
  random search (`--trials`, default 6) over the default space of the model
  family the defaults choose (`Family.default_space`: for tables the
  learning rate, depth, width, dropout, weight decay and numeric encoding),
  as a user gets it, seeded by the split's seed (`tuning.seed`; before
  session 18 every seed searched with `tuning.seed: 0`);
- `hgb`, `linear`: `HistGradientBoosting` with default settings and
  `LogisticRegression`/`Ridge` (`benchmarks/quality_baselines.py`);
- `bundled`: the bundled hand-written config of the text and image sets.

All runs share one temporary MLflow SQLite store and one Prefect test
server; TensorFlow and the baselines use `--threads` cores (default 2).
Each run prints a progress line (set, seed, method, score, seconds) and
is appended to `--out` at once, so an interrupted run resumes where it
stopped. At the end (or with `--report FILE` alone) it prints per set
mean ± sd of accuracy (MAE for regression, `--metric rmse` for RMSE), the
mean rank of each method per set and overall, and whether the goals of
issue 23 hold (`benchmarks/quality_report.py`).

Usage: python benchmarks/quality.py [--sets a,b] [--seeds N] [--methods defaults,hgb]
       [--quick] [--trials 6] [--threads 2] [--out FILE] [--report FILE] [--list]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_report as report  # noqa: E402
import quality_sets as sets  # noqa: E402

METHODS = ("defaults", "tuned", "hgb", "linear", "bundled")
NETWORKS = ("defaults", "tuned", "bundled")


def limit_threads(threads: int) -> None:
    """Bounds OpenMP/BLAS (HistGradientBoosting, NumPy) and TensorFlow threads; call before importing them."""
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS"):
        os.environ[key] = str(threads)


def prepare_environment(folder: Path, threads: int) -> None:
    """Quiet libraries, a temporary MLflow store, step cache and Prefect home, and TensorFlow on `threads` cores."""
    from kerasflow.quiet import silence

    silence()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    os.environ["KERASFLOW_HOME"] = str(folder)
    os.environ["KERASFLOW_CACHE_DAYS"] = "1"
    os.environ["PREFECT_HOME"] = str(folder / "prefect")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ.pop("PREFECT_API_URL", None)  # the benchmark's own test server, never a configured one
    from kerasflow.heavy import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def write_config(config: dict[str, Any], folder: Path) -> Path:
    """Writes one run's config as YAML; returns its path."""
    path = folder / "configs" / f"{config['name']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def network_config(method: str, item: sets.QualitySet, split: sets.SeedSplit, name: str, folder: Path,
                   trials: int, seed: int = 0) -> tuple[dict[str, Any], str]:
    """The config of one kerasflow run and what its search searches (`family default`, or `-`).

    Args:
        method: `defaults`, `tuned` or `bundled`.
        item: The set.
        split: The seed's split.
        name: The run's config name.
        folder: The benchmark's work folder.
        trials: `tuning.max_trials`.
        seed: The split's seed, also the search's (`tuning.seed`): each seed draws its own trials, so
            the seeds average over the search's luck too, as over the split's. Default 0.
    """
    if method == "bundled":
        config = yaml.safe_load((ROOT / item.bundled).read_text())
        config.pop("validation", None)  # its suite describes the bundled files' rows, not this split's
        config.get("split", {}).pop("test_fraction", None)  # the seed's test file is the test set
        config.update(name=name, data=split.data, registry={**config.get("registry", {}), "model_name": name})
        return config, "-"
    config = {"name": name, "data": split.data}
    if method == "defaults":
        return config, "-"
    # No `space`: the defaults step chooses the family's default space, as for a user's config.
    config["tuning"] = {"tuner": "random", "max_trials": trials, "seed": seed,
                        "directory": str(folder / "tuning" / name)}
    return config, "family default"


def run_network(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Runs kerasflow's training flow in-process, its output to a log file; returns the metrics and model kind."""
    import mlflow

    from kerasflow.flows.train import train_flow

    path = write_config(config, folder)
    log = folder / "logs" / f"{config['name']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        result = train_flow(str(path), [])
    params = mlflow.MlflowClient().get_run(result.run_id).data.params
    return {"metrics": {k: float(v) for k, v in result.metrics.items() if k in ("accuracy", "mae", "rmse")},
            "model": params.get("model.kind", "?"), "split": params.get("split.kind", "?")}


def run_one(method: str, item: sets.QualitySet, split: sets.SeedSplit, seed: int, folder: Path,
            trials: int) -> dict[str, Any]:
    """Runs one method on one seed's split; returns its record (an error is recorded, not raised)."""
    from quality_baselines import run_baseline

    name = f"q-{item.name}-s{seed}-{method}"
    record: dict[str, Any] = {"set": item.name, "kind": item.kind, "seed": seed, "method": method, "task": split.task,
                              "train_rows": len(split.train), "test_rows": len(split.test)}
    start = time.perf_counter()
    try:
        if method in NETWORKS:
            config, searched = network_config(method, item, split, name, folder, trials, seed)
            record.update(run_network(config, folder), **({"searched": searched} if method == "tuned" else {}))
        else:
            record["metrics"] = run_baseline(method, item.kind, split, item.text)
    except Exception as exc:  # one failed run is reported and recorded; the benchmark goes on
        record["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        with open(folder / "logs" / f"{name}.log", "a") as out:
            out.write(traceback.format_exc())
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def planned(names: list[str], methods: list[str], seeds: int | None) -> list[tuple[sets.QualitySet, Any, str, list]]:
    """Loads every selected set once; returns `(set, rows, target, [(seed, method), ...])` per set."""
    catalogue = sets.all_sets()
    plan = []
    for name in names:
        item = catalogue[name]
        frame, target = sets.load_rows(item)
        runs = [(seed, method) for seed in sets.seeds_for(len(frame), seeds) for method in methods
                if method != "bundled" or item.bundled]
        plan.append((item, frame, target, runs))
    return plan


def pending(plan: list, results: report.Results) -> int:
    """How many planned runs `results` does not hold yet (without an error)."""
    return sum(not results.done(item.name, seed, method) for item, _, _, runs in plan for seed, method in runs)


def run_benchmark(plan: list, folder: Path, results: report.Results, trials: int, metric: str) -> None:
    """Runs every planned run not yet in `results`, printing a progress line and saving after each."""
    todo = pending(plan, results)
    count = 0
    for item, frame, target, runs in plan:
        splits: dict[int, sets.SeedSplit] = {}
        for seed, method in runs:
            if results.done(item.name, seed, method):
                continue
            if seed not in splits:
                splits[seed] = sets.materialize(item, frame, target, seed, folder / "sets" / item.name / f"s{seed}")
            count += 1
            record = run_one(method, item, splits[seed], seed, folder, trials)
            results.add(record)
            print(report.progress_line(record, count, todo, metric), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", help="comma-separated sets (default all; --list shows them)")
    parser.add_argument("--seeds", type=int, help="splits per set (default 10 below 500 rows, 3 below 4,000, else 1)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--quick", action="store_true", help=f"1 seed on {', '.join(sets.QUICK_SETS)}")
    parser.add_argument("--trials", type=int, default=6, help="search trials of the tuned method (default 6)")
    parser.add_argument("--threads", type=int, default=2, help="cores for TensorFlow and the baselines (default 2)")
    parser.add_argument("--out", default="quality-results.json", help="results file, resumed if it exists")
    parser.add_argument("--report", metavar="FILE", help="only print the tables of a results file")
    parser.add_argument("--metric", choices=("mae", "rmse"), default="mae", help="regression metric (default mae)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs, MLflow store)")
    parser.add_argument("--list", action="store_true", help="list the sets and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    catalogue = sets.all_sets()
    if args.list:
        print("\n".join(f"{item.name:<20}{item.kind:<7}{item.origin:<9}{item.source}" for item in catalogue.values()))
        return
    if args.report:
        report.print_report(report.Results(Path(args.report)).records, args.metric)
        return
    names = args.sets.split(",") if args.sets else list(sets.QUICK_SETS if args.quick else catalogue)
    methods = args.methods.split(",")
    unknown = [n for n in names if n not in catalogue] + [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown sets or methods: {', '.join(unknown)} (sets: --list; methods: {', '.join(METHODS)})")
    limit_threads(args.threads)
    results = report.Results(Path(args.out).resolve())  # the runs chdir to the repository root
    plan = planned(names, methods, 1 if args.quick and args.seeds is None else args.seeds)
    folder = Path(tempfile.mkdtemp(prefix="kf-quality-")) if pending(plan, results) else None
    print(f"results: {args.out} ({len(results.records)} runs there, {pending(plan, results)} to run); "
          f"work folder: {folder}", flush=True)
    if pending(plan, results):
        run_in_harness(plan, folder, results, args)
    report.print_report(results.records, args.metric, only={item.name for item, *_ in plan})


def run_in_harness(plan: list, folder: Path, results: report.Results, args: argparse.Namespace) -> None:
    """Runs the pending runs under one Prefect test server and one MLflow store, then removes the work folder."""
    prepare_environment(folder, args.threads)
    os.chdir(ROOT)
    from prefect.testing.utilities import prefect_test_harness

    started = time.perf_counter()
    try:
        with prefect_test_harness(server_startup_timeout=120):
            run_benchmark(plan, folder, results, args.trials, args.metric)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nwall time {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
