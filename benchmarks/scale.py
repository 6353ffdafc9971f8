"""Scale: kerasflow against a bare Keras script on a large table, paired in one run.

The job (issue 12): `make_classification(n, 20 features, 10 informative,
4 redundant, 3 classes, random_state=0)` as float32, plus two random string
columns (4 and 3 levels), written as CSV; a dense 64-32 network, 3 epochs,
batch 1024, an 80/10/10 split, no thresholds.

- **bare**: the same job with pandas, scikit-learn and Keras in one script
  (`read_csv`, `train_test_split`, one-hot, `Normalization`, `fit`,
  `predict`, `classification_report`, `model.save`);
- **kerasflow**: `kerasflow run` of the same job in a fresh process, in a
  temporary project folder, against the shared local Prefect server (started
  by an untimed warm-up run, as on a machine that ran kerasflow before).
  It validates, checks the data contract, logs the dataset, splits,
  preprocesses, trains, evaluates and registers the model.

Both run in fresh processes, bare first, on the same CSV (in the page cache
for both). For each size it prints wall time, peak RSS of the process tree
and the ratios, then kerasflow's seconds per task as Prefect recorded them
(`total_run_time` of each task run). Goals: at 1M rows <= 2x the bare wall
time and <= 1.3x its peak memory; from 100k to 1M rows the time grows
<= 10x.

With `--streaming` it measures streaming mode instead (`data.streaming:
true`): the same table written as Parquet shards of 1M rows (the 1M-row
table repeated), read batch by batch at 1M and 10M rows. It prints wall time,
peak RSS, seconds per million rows and per-task seconds for each size, and
the ratios between them. Goals: peak at 10M rows <= 1.25x the peak at 1M;
time per row within 1.3x.

With `--suite` each kerasflow run validates a Great Expectations suite:
`kerasflow suite init` drafts it from the same CSV (untimed, once per size),
and the timed `kerasflow run` validates the data with it (`validation.suite`),
against the same bare script. Goal at 1M rows: <= 2x bare, peak <= 1.3x.

Each line also prints the CPU seconds (user + system) of both process
trees and their ratio, and the 1-minute load average: on a shared machine
the load stretches wall time (the queue), CPU seconds much less.
`--data DIR` keeps each kerasflow run's output beside the CSVs
(`kerasflow-<rows>[-suite].log`).

Measured with `--suite --sizes 100000 1000000` on the shared 2-core machine
(docs/scaling.md, "A million rows with a suite"), at 1M rows:

- before (early infra process importing TensorFlow beside the training,
  PyArrow's pool kept, the baseline copying every training row): 295.0 s
  against 60.7 s (4.86x), peak 3,537 MB against 1,577 MB (**2.24x**), CPU
  57.0 s against 14.5 s (3.94x), load 22.6;
- after: 688.5 s against 137.2 s (5.02x), peak 1,947 MB against 1,583 MB
  (**1.23x**), CPU 64.1 s against 16.3 s (3.93x), load 30.6; again at
  load 13.5: 214.9 s against 88.2 s (2.44x), peak 2,000 MB against 1,584 MB
  (1.26x), CPU 55.3 s against 16.8 s (3.29x).

At a load of 13-30 on 2 cores the wall ratios are largely the queue's;
the quiet-machine time ratio (goal <= 2x) is still to be measured.
Measured on a quiet machine at the end of that session (7acc618, load
1.5): 38.4 s against 13.5 s (2.85x), peak 1,993 MB against 1,583 MB
(1.26x), CPU 45.5 s against 14.4 s (3.16x); per task (wall/CPU s) load
2.3/2.8, validate 1.3/1.9, split 1.3/1.3, preprocessing 2.7/3.0, train
11.3/12.9, baseline 5.7/5.8, evaluate 2.3/3.2, register 0.5/0.6, infra
5.7/6.0, card 0.2/0.2: the baseline and the infra process, serial after
training, are 11.4 s of the 24.9 s over bare.

The per-task line gives each task's wall seconds (Prefect's) and the CPU
seconds of the process tree during it (work beside a task, such as the early
infra process, counts in it), then the tasks running at the memory peak.
2026-12-07, `--suite --sizes 1000000`, CPU seconds per task:

- main (load 15.4): 312.4 s against 73.5 s (4.25x), peak 1,968 MB against
  1,584 MB (1.24x), CPU 64.8 s against 18.7 s (3.45x); load 3.7,
  validate 2.1, split 1.7, preprocessing 1.9, train 18.8, baseline 8.6,
  evaluate 4.8, register 3.3, infra 8.4, card 1.0;
- registration reading no rows (the drift reference computed by the
  preprocessing) and the evaluation copying the training rows only for
  slices (load 10.5, tests running beside it): 296.4 s against 61.7 s
  (4.81x), peak 1,983 MB against 1,580 MB (1.25x, at infra validation),
  CPU 65.7 s against 18.7 s (3.52x); load 3.4, validate 2.7, split 1.9,
  preprocessing 3.1, train 22.4, baseline 7.4, evaluate 3.5, register 0.7,
  infra 9.4, card 0.4;
- interleaved, main then this branch, a quieter machine: main (load 7.3)
  141.0 s against 33.7 s (4.19x), peak 1,973 MB against 1,577 MB (1.25x),
  CPU 62.3 s against 15.9 s (3.92x); load 3.2, validate 2.0, split 1.6,
  preprocessing 2.3, train 20.2, baseline 7.9, evaluate 4.4, register 2.4,
  infra 7.9; after (load 11.9) 138.0 s against 30.8 s (4.47x), peak
  2,012 MB against 1,577 MB (1.28x), CPU 58.8 s against 17.3 s (3.40x);
  load 3.7, validate 2.3, split 1.6, preprocessing 2.9, train 18.7,
  baseline 6.7, evaluate 3.9, register 0.6, infra 8.0;
- the baseline in a thread beside evaluation and registration (tried,
  reverted): peak 2,254-2,300 MB (1.42-1.46x bare, at the baseline and the
  evaluation together), so it stays serial;
- the baseline, the evaluation and the canary rows reading only the rows
  they use (`holdout.rows_at`), interleaved main (900cd92) then this branch,
  4 pairs at load 10.3/8.3/10.8/5.8 (main) and 8.9/7.7/10.6/4.8 (branch):
  main CPU 48.4/53.6/54.2/51.1 s against 13.9-15.1 s bare (3.49x, 3.56x,
  3.75x, 3.54x), peak 1.27/1.25/1.24/1.64x (the last at register-model,
  likely a `git` child of the 1.2 GB process counted before it execs, as
  joblib's `lscpu` child was at the baseline); branch CPU
  50.0/46.8/52.3/48.1 s (3.48x, 3.30x, 3.40x, 3.35x), peak
  1.27/1.25/1.26/1.30x (the last at train-model, which this change does
  not touch). Mean CPU 51.8 -> 49.3 s; per task, main -> branch: baseline 6.4 -> 6.05,
  evaluate 3.7 -> 3.5, infra 7.5 -> 6.4 (wall times at these loads are
  mostly the queue's); the quietest pair (load 5-6):
  main 94.6 s against 18.1 s (5.23x), branch 50.4 s against 21.9 s (2.30x;
  per task wall/CPU load 3.0/2.8, validate 1.9/1.9, split 1.4/1.3,
  preprocessing 3.1/2.9, train 15.7/14.3, baseline 6.1/5.9, evaluate
  2.7/3.7, register 0.5/0.5, infra 6.0/6.1, card 0.2/0.2).

Steps beside each other (issue 25; the per-task line now ends each task
with the peak MB of the process tree in its window), 2026-12-07 12:07-12:21,
`--suite --sizes 1000000`, interleaved main then branch, load 5-6: main
73.7 / 91.3 s against 21.3 / 31.0 s, peak 1.25 / 1.26x (at validate-infra;
train-model 1,889 / 1,940 MB), CPU 49.7 / 60.6 s; branch 73.8 / 100.0 s
against 21.6 / 25.1 s, peak 1.29x (evaluation beside registration, since
dropped) / 1.25x, CPU 49.9 / 56.7 s. Overlaps tried at 1M rows: the
baseline beside train-model 1.32x (2,082 MB), the evaluation beside
validate-infra 1.31x (2,069 MB); so from `LARGE_ROWS` raw rows the steps
stay serial (docs/scaling.md, "Steps beside each other").

Usage:

    python benchmarks/scale.py [--sizes 100000 1000000] [--data DIR] [--suite]
    python benchmarks/scale.py --streaming [--sizes 1000000 10000000] [--data DIR]
    python benchmarks/scale.py --images [--sizes 5000 50000] [--modes false true] [--data DIR]
      (image folders, in memory and streamed: benchmarks/scale_images.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import PEAK_AT, cpu_between, cpu_seconds, measure, peak_between  # benchmarks/common.py, beside this script

from kerasflow.runtime.processes import free_port

PY = sys.executable

BARE = r'''
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import pandas as pd, keras
from sklearn.model_selection import train_test_split
from sklearn.metrics import classification_report
source, out = sys.argv[1], sys.argv[2]
df = pd.read_csv(source)
y = df.pop("label").to_numpy()
x = pd.get_dummies(df, columns=["color", "size"], dtype="float32").to_numpy(dtype="float32")
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.1, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=1 / 9, stratify=y_rest, random_state=0)
keras.utils.set_random_seed(0)
norm = keras.layers.Normalization()
norm.adapt(x_train)
inputs = keras.Input(shape=(x.shape[1],))
h = norm(inputs)
for units in (64, 32):
    h = keras.layers.Dense(units, activation="relu")(h)
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=3, batch_size=1024, verbose=0)
pred = model.predict(x_test, batch_size=1024, verbose=0).argmax(1)
print(classification_report(y_test, pred, digits=4))
model.save(out)
'''


def write_data(rows: int, path: Path) -> Path:
    """Writes the job's table of `rows` rows as CSV (once; an existing file is reused)."""
    if path.exists():
        return path
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, n_redundant=4, n_classes=3,
                               random_state=0)
    frame = pd.DataFrame(x.astype("float32"), columns=[f"f{i:02d}" for i in range(20)])
    rng = np.random.default_rng(0)
    frame["color"] = rng.choice(["red", "green", "blue", "gray"], rows)
    frame["size"] = rng.choice(["S", "M", "L"], rows)
    frame["label"] = y
    frame.to_csv(path, index=False)
    return path


def write_shards(rows: int, data: Path) -> Path:
    """Writes a `rows`-row table as Parquet shards of 1M rows (the 1M-row table repeated); returns their folder."""
    import pandas as pd

    folder = data / f"shards_{rows}"
    if folder.exists():
        return folder
    base = min(rows, 1_000_000)
    frame = pd.read_csv(write_data(base, data / f"scale_{base}.csv"))
    folder.mkdir()
    for shard in range(rows // base):
        frame.to_parquet(folder / f"part-{shard:03d}.parquet", index=False)
    return folder


def write_config(source: Path, folder: Path, streaming: bool = False, suite: Path | None = None) -> Path:
    """Writes the kerasflow config of the job for `source` (validated with `suite` when given)."""
    config = {"name": "scale", "data": {"source": str(source), "target": "label", "streaming": streaming},
              "split": {"test_fraction": 0.1, "val_fraction": 0.1, "seed": 0},
              "model": {"hidden_units": [64, 32]},
              "training": {"epochs": 3, "batch_size": 1024, "early_stopping": {"enabled": False}},
              "registry": {"model_name": "scale-dense"}}
    if suite is not None:
        config["validation"] = {"suite": str(suite)}
    path = folder / f"scale-{source.stem}{'-streaming' if streaming else ''}{'-suite' if suite else ''}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def draft_suite(source: Path, folder: Path, env: dict[str, str], project: Path) -> Path:
    """Drafts the suite of `source` with `kerasflow suite init` (untimed); returns its path."""
    path = folder / f"{source.stem}.suite.json"
    measure([PY, "-m", "kerasflow.runtime.cli", "suite", "init", str(source), "--target", "label", "--out", str(path)],
            env, cwd=project)
    return path


def task_seconds(output: str, env: dict[str, str]) -> dict[str, Any]:
    """Seconds and CPU seconds per task of the flow run named in a `kerasflow run` output.

    The seconds are Prefect's (`total_run_time` of each task run, from its API);
    the CPU seconds and the peak RSS (MB) are the run's process tree's during
    the task's window (`common.cpu_between`, `common.peak_between`), so work
    beside the task (the early infra process, a step running beside it)
    counts in it too. Under `"peak during"`: the tasks
    running when the process tree's memory peaked.
    """
    found = re.search(r"flow-run/([0-9a-f-]{36})", output)
    if not found:
        return {}
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{env['KERASFLOW_PREFECT_PORT']}/api"  # the shared server
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[found.group(1)])))
        ordered = sorted(runs, key=lambda r: r.start_time or r.expected_start_time)
        return {run.name.rsplit("-", 1)[0]: (run.total_run_time.total_seconds(),
                                             *((cpu_between(run.start_time.timestamp(), run.end_time.timestamp()),
                                                peak_between(run.start_time.timestamp(), run.end_time.timestamp()))
                                               if run.start_time and run.end_time else (float("nan"),) * 2))
                for run in ordered} | {"peak during": [run.name.rsplit("-", 1)[0] for run in ordered
                                                       if run.start_time and run.end_time
                                                       and run.start_time.timestamp() <= PEAK_AT[0]
                                                       <= run.end_time.timestamp()]}

    return asyncio.run(read())


def task_line(tasks: dict[str, Any]) -> str:
    """The per-task line: `name wall/cpu` seconds, then the tasks running when the memory peaked."""
    during = tasks.pop("peak during", [])
    return ("           kerasflow tasks (wall s/CPU s/peak MB): "
            + ", ".join(f"{k} {w:.1f}/{c:.1f}/{m:.0f}" for k, (w, c, m) in tasks.items())
            + f"\n           peak memory during: {', '.join(during) or 'no task'}")


def stream(sizes: list[int], data: Path, tmp: Path, project: Path, env: dict[str, str]) -> None:
    """Runs the job in streaming mode at each size and prints memory and time per row against the smallest."""
    cli = [PY, "-m", "kerasflow.runtime.cli"]
    results = {}
    print(f"{'rows':>12}{'kf s':>9}{'s per 1M':>10}{'peak MB':>9}   (streaming)")
    for rows in sizes:
        config = write_config(write_shards(rows, data), tmp, streaming=True)
        seconds, peak, out = measure([*cli, "run", str(config), "--no-lint"], env, cwd=project)
        results[rows] = (seconds, peak)
        print(f"{rows:>12,}{seconds:>9.1f}{seconds / rows * 1e6:>10.1f}{peak:>9.0f}", flush=True)
        print(task_line(task_seconds(out, env)), flush=True)
    small, large = min(results), max(results)
    per_row = (results[large][0] / large) / (results[small][0] / small)
    print(f"\n{small:,} -> {large:,} rows: peak {results[large][1] / results[small][1]:.2f}x (goal <= 1.25x), "
          f"time per row {per_row:.2f}x (goal <= 1.3x)")


def main() -> None:
    """Runs the job at each size, bare and with kerasflow, and prints the comparison."""
    if "--images" in sys.argv[1:]:  # image folders: benchmarks/scale_images.py, with the other options
        from scale_images import main as images

        return images([arg for arg in sys.argv[1:] if arg != "--images"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="rows per run (default 100000 1000000; with --streaming 1000000 10000000)")
    parser.add_argument("--streaming", action="store_true", help="measure streaming mode on Parquet shards")
    parser.add_argument("--suite", action="store_true", help="validate with a suite drafted by `kerasflow suite init`")
    parser.add_argument("--data", type=Path, default=None, help="folder to keep the generated CSVs in (reused)")
    args = parser.parse_args()
    sizes = args.sizes or ([1_000_000, 10_000_000] if args.streaming else [100_000, 1_000_000])
    with tempfile.TemporaryDirectory(prefix="kf-scale-") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or tmp
        data.mkdir(parents=True, exist_ok=True)
        project = tmp / "project"
        project.mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(tmp / "prefect"),
               "KERASFLOW_PREFECT_PORT": str(free_port()), "KERASFLOW_HOME": str(project)}
        env.pop("MLFLOW_TRACKING_URI", None)
        script = tmp / "bare.py"
        script.write_text(BARE)
        cli = [PY, "-m", "kerasflow.runtime.cli"]
        try:
            warm = write_config(write_data(2_000, data / "scale_2000.csv"), tmp)
            measure([*cli, "run", str(warm), "--no-lint"], env, cwd=project)  # starts the shared server
            if args.streaming:
                stream(sizes, data, tmp, project, env)
                return
            results = {}
            print(f"{'rows':>10}{'bare s':>9}{'kf s':>9}{'ratio':>8}{'bare MB':>10}{'kf MB':>9}{'ratio':>8}"
                  f"{'bare cpu':>10}{'kf cpu':>9}{'ratio':>8}{'load':>6}"
                  + ("   (kerasflow with a suite from `suite init`)" if args.suite else ""))
            for rows in sizes:
                source = write_data(rows, data / f"scale_{rows}.csv")
                bare_s, bare_mb, _ = measure([PY, str(script), str(source), str(tmp / "bare.keras")], env)
                bare_cpu = cpu_seconds()
                suite = draft_suite(source, tmp, env, project) if args.suite else None
                config = write_config(source, tmp, suite=suite)
                kf_s, kf_mb, out = measure([*cli, "run", str(config), "--no-lint"], env, cwd=project)
                kf_cpu = cpu_seconds()
                (data / f"kerasflow-{rows}{'-suite' if args.suite else ''}.log").write_text(out)  # kept beside the CSV
                results[rows] = (bare_s, kf_s)
                print(f"{rows:>10,}{bare_s:>9.1f}{kf_s:>9.1f}{kf_s / bare_s:>7.2f}x{bare_mb:>10.0f}{kf_mb:>9.0f}"
                      f"{kf_mb / bare_mb:>7.2f}x{bare_cpu:>10.1f}{kf_cpu:>9.1f}{kf_cpu / bare_cpu:>7.2f}x"
                      f"{os.getloadavg()[0]:>6.1f}", flush=True)
                print(task_line(task_seconds(out, env)), flush=True)
            sizes = sorted(results)
            if len(sizes) > 1:
                small, large = sizes[0], sizes[-1]
                print(f"\n{small:,} -> {large:,} rows ({large / small:.0f}x): kerasflow time grows "
                      f"{results[large][1] / results[small][1]:.1f}x, bare {results[large][0] / results[small][0]:.1f}x")
        finally:
            measure([*cli, "server", "stop"], env, cwd=project)


if __name__ == "__main__":
    main()
