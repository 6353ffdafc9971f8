"""Pipeline overhead against a bare Keras script doing the same job.

Two measurements, each the pipeline (`kerasflow run` in a fresh process)
side by side with a bare script (fresh process too) on the same data, model
and epochs, and each printed as a ratio pipeline/bare:

1. a small whole job: breast_cancer, 20 epochs, with validation, split,
   z-scoring, training, evaluation and saving the model (goal <= 2x, peak
   memory < 1 GB). It is measured three ways: with the shared local Prefect
   server kerasflow keeps running between runs (the default), with a
   temporary server per run (`KERASFLOW_PREFECT_SERVER=temporary`), and
   against a separately started `prefect server start` (`PREFECT_API_URL`);
   and with `KERASFLOW_LOW_MEMORY=0` (TensorFlow imported alongside validation);
2. a training of about a minute: digits, `--long-epochs` epochs (goal <= 1.10x).

Both sides get one untimed warm-up run first (the pipeline's creates the
MLflow store, Prefect's database and the shared server; its time is printed
as the first-run cost), then each measurement is the median of `--repeats`
runs. Peak memory is the sum over the command's process tree; the shared
server is not part of that tree and is printed on its own.

Then it breaks the fixed cost down: imports, the temporary Prefect server,
MLflow store set-up, Great Expectations validation, and model logging.
Each row also prints the CPU seconds of both process trees: on a shared
machine they move less with the load than the wall times do (but still
some: the same code measured 30.0 CPU-s at load 20-26 and 33.8 at 23-33).

Steps beside each other (the baseline beside the training, the evaluation
beside registration and infra validation; 2026-12-07 12:21-12:30,
`--skip-long --repeats 3 --no-variants`, medians): main (load 6.9) bare
18.1 s, pipeline 54.5 s, 3.01x, CPU-s 10.2 / 32.3; branch (load 5.7) bare
16.4 s, pipeline 52.8 s, 3.23x, CPU-s 9.4 / 30.1; peak 1,796 / 1,798 MB.
Second pair, 12:42-12:48, load 3.8: main bare 10.1 s, pipeline 26.5 s,
2.62x, CPU-s 8.3 / 26.7; branch bare 9.5 s, pipeline 23.7 s, 2.50x,
CPU-s 8.1 / 24.9.

Quiet machine, 2026-12-07 (`--skip-long --repeats 3 --no-variants`, medians):
start of the session (d045a16, load 1.6) bare 8.9 s, pipeline 20.8 s, 2.33x,
CPU-s 9.1 / 28.2; end (7acc618, with the cuts below, load 1.1) bare 7.8 s,
pipeline 17.3 s, 2.22x, CPU-s 8.1 / 24.5.

Profiled again 2026-12-07 05:50-07:15 (issue 25, item 4; load 17-25 throughout,
so the figures below are CPU seconds, read from psutil samples of the
process tree at each output line, and py-spy samples of every thread):

| process | CPU-s (load 22) | what |
|---|---|---|
| main: start to flow run | 3.9 | Python, kerasflow, Prefect, MLflow imports; server check |
| main: read-config, open the MLflow run | 1.9 | SQLAlchemy store import and schema check, sweep, config |
| main: load-data | 1.4 | scikit-learn import (the built-in set), contract, dataset |
| main: lint, validate-data, split, preprocess | 0.5 | (matplotlib and metrics prefetched meanwhile) |
| main: train-model | 8.6 | TensorFlow import about 3 (sklearn already in), 20 epochs about 5.4 |
| main: baseline, evaluate, register, infra wait, bless+card+end | 2.9 | 0.4, 0.8, 0.7, 0.3, 0.7 |
| main process, whole run | 19.2 | (the main thread 16.4; Prefect's threads, the package map about 2) |
| GX worker | 4.0 | GX import 3.3-3.5, warm-up 0.9-1.0, the suite on 569 rows 0.7 |
| infra-validation process | 9.8 | MLflow + Keras/TF (+ sklearn, via keras.wrappers) imports about 7; load and score about 2.4 |
| tree (rusage) | 33.2 | bare script at the same time: 10.5 |

What was looked for and not found: no step runs twice, no process starts
twice, no busy loop (py-spy: 97% of `fit_model`'s samples are Keras's
own loop: train steps, validation, the epoch iterator; kerasflow's
callbacks and the time-spaced checkpoints under 3%; `log_model` about 1 s), the package map is built once per process (the
thread only moved it earlier; the infra process needs its own for
`load_model`), and none of the commits since the last session adds work
to this job (its config writes `split`, `model` and `training`, so the
data-driven defaults, the family k-fold threshold and the default
tuning space do not apply). The CPU seconds of the same code move with
the load: bare 9.1 (load 1.6) / 10.5 (17.8); kerasflow 28.2 / 32.2 / 33.2
(22) / 36.3 (22, with two benchmarks beside it, where the GX worker's
unchanged code also went 4.0 -> 4.7). The 23.5 CPU-s quoted from last
session is not reproducible against these and is more likely the
measurement than a regression. In this environment PYTHONDONTWRITEBYTECODE
is set, so each process compiles the kerasflow modules it imports from
source on every run (0.3 CPU-s of the main process's imports; the logged
model's code copy is compiled in any environment).

Cut on this branch (small): the heartbeat sleeps until a line could be
due instead of waking every 0.25 s (each wake-up takes the GIL from the
training or an import; py-spy saw it runnable 4.7 s of a 90 s run at
load 16), and the model card lists only the folders it reads (6 listings
instead of the whole artifact tree, 12).

What is left: 28-33 CPU-s on 2 cores cannot finish under 14-17 s, so
1.5x of the bare script's 8.9 s (13.4 s) needs CPU taken out, not only
overlapped. The big items are three heavy interpreters: the infra
process's MLflow + TensorFlow import (about 7 CPU-s, the price of a
fresh process), the GX worker (about 4.5), and the main process's own
imports (Prefect, MLflow, SQLAlchemy store, sklearn, TensorFlow: about
9 of its 19).

Benchmark, main (d045a16) and this branch run side by side, so both saw
the same load (`--skip-long --repeats 3 --no-variants`, medians):

| | bare s | pipeline s | ratio | pipe MB | bare CPU-s | pipe CPU-s | load |
|---|---|---|---|---|---|---|---|
| main, 05:49-06:15 (beside profiled runs) | 119.2 | 270.5 | 2.27x | 2707 | 10.5 | 32.2 | 17.8 |
| main, 06:26-07:07 | 182.6 | 421.8 | 2.31x | 1792 | 12.2 | 35.6 | 20.5 |
| this branch, 06:26-07:07 | 171.4 | 417.2 | 2.43x | 1792 | 11.9 | 35.2 | 20.0 |

(The branch's CPU-s are 0.4 lower, within the noise of these loads; the
ratio's 2.31x -> 2.43x is the bare side's 11 s of noise. Neither cut is
measurable at load 20; both remove work that is pure overhead.)

The previous session, 2026-12-07 02:36-03:53, on the same 2-core machine (issue 25,
item 4; `--skip-long --repeats 3 --no-variants`, medians):

| | bare s | pipeline s | ratio | pipe MB | bare CPU-s | pipe CPU-s | load |
|---|---|---|---|---|---|---|---|
| quiet machine, 02:36 (main) | 8.2 | 18.6 | 2.26x | 1786 | | | quiet |
| before (main, 03:04-03:45) | 97.7 | 381.4 | 3.90x | 1798 | 10.1 | 33.2 | 32 |
| after (this branch, 03:21-03:53) | 94.2 | 209.9 | 2.23x | 2718 | 9.6 | 31.6 | 21 |

(The after run overlapped the end of the before run, so the two ran under
different loads: the ratio's fall from 3.90x to 2.23x is mostly the load,
the CPU seconds' 33.2 -> 31.6 is closer to what changed. The after peak of
2718 MB is one sample of the median run and was not seen in a profiled
run, where each process's peak matched the before run's: main 965 MB, GX
worker 291 MB, infra process 830 MB, never alive together; not explained.)

Per step of one `kerasflow run` (Prefect task lines; wall s / CPU-s of the
main process; the tree's CPU adds the GX worker, about 4 CPU-s in
validate-data and before the flow, and the infra-validation process, about
9 CPU-s: its imports during train-model, the load and scoring in
validate-infra):

| step | before wall | before CPU | after wall | after CPU |
|---|---|---|---|---|
| start to flow run (Prefect, MLflow imports) | 34.4 | 3.3 | 121.5 | 4.2 |
| open the MLflow run | 17.7 | 1.5 | 53.6 | 2.1 |
| load-data | 10.9 | 1.0 | 29.3 | 1.4 |
| validate-data (GX worker) | 7.0 | 0.4 | 18.2 | 0.5 |
| train-model (TensorFlow import, 20 epochs) | 61.5 | 6.9 | 153.6 | 8.0 |
| fit-baseline | 6.7 | 0.8 | 5.2 | 0.3 |
| evaluate-model | 6.6 | 0.7 | 11.0 | 0.9 |
| register-model (log_model) | 7.5 | 0.9 | 9.0 | 0.6 |
| validate-infra (wait for the fresh process) | 20.0 | 0.4 | 41.3 | 0.4 |
| bless, card, end | 6.0 | 0.5 | 9.2 | 0.6 |
| whole run: wall / main CPU / tree CPU | 179.8 | 16.7 / 30.0 | 457.7 | 19.2 / 33.8 |

(before at load 20-26, after at load 23-33: the loads differ, so do the
CPU seconds of code this branch does not touch: the GX worker 4.0 -> 4.5,
the infra process 8.9 -> 9.8.) What the branch changed, each measured on
its own: training checkpoints by time (`KERASFLOW_CHECKPOINT_SECONDS`, 5 s)
instead of every epoch: a 20-epoch breast_cancer fit 4.1-4.6 CPU-s with a
checkpoint per epoch, 3.7-3.8 with the interval, 3.4-3.7 with none; MLflow's
map of the installed packages (the requirements check `log_model` makes,
0.2-0.5 CPU-s but about 3 s of file reads on a busy disk) built in a
background thread while the command imports.

Usage: python benchmarks/overhead.py [--long-epochs N] [--repeats N] [--long-repeats N] [--skip-long | --skip-small]
                                     [--no-variants]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import psutil
from common import measure  # benchmarks/common.py, beside this script

from kerasflow.runtime.processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

BARE = r'''
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.metrics import accuracy_score
name, epochs, batch, lr, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
units = [int(u) for u in sys.argv[6].split(",")]
data = getattr(datasets, "load_" + name)()
x, y = data.data.astype("float32"), data.target
x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=42)
x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.1 / 0.8, stratify=y_rest, random_state=42)
keras.utils.set_random_seed(42)
norm = keras.layers.Normalization()
norm.adapt(x_train)
inputs = keras.Input(shape=(x.shape[1],))
h = norm(inputs)
for u in units:
    h = keras.layers.Dense(u, activation="relu", kernel_initializer="he_normal",
                           kernel_regularizer=keras.regularizers.L2(1e-4))(h)
    h = keras.layers.Dropout(0.1)(h)
classes = len(np.unique(y))
outputs = keras.layers.Dense(classes, activation="softmax")(h)
model = keras.Model(inputs, outputs)
model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch, verbose=0)
model.evaluate(x_test, y_test, verbose=0)
print("accuracy", accuracy_score(y_test, model.predict(x_test, verbose=0).argmax(1)))
model.save(out)
'''


def compare(label: str, dataset: str, config: str, epochs: int, batch: int, lr: float, units: list[int],
            env: dict[str, str], tmp: Path, repeats: int = 3, bare: tuple[float, float, float] | None = None,
            ) -> tuple[float, float, float, float, float, float]:
    """Times the bare script and the pipeline on one job (median of `repeats`) and prints the ratio.

    Args:
        bare: A bare measurement (seconds, MB, CPU seconds) to reuse instead of timing the script again.

    Returns:
        Bare seconds, peak MB and CPU seconds, then the pipeline's.
    """
    script = tmp / "bare.py"
    script.write_text(BARE)
    bare_cmd = [PY, str(script), dataset, str(epochs), str(batch), str(lr), str(tmp / "bare.keras"),
                ",".join(map(str, units))]
    overrides = [f"training.epochs={epochs}", "training.early_stopping.enabled=false",
                 f"training.batch_size={batch}", f"training.optimizer.learning_rate={lr}",
                 f"model.hidden_units={units}", "split.val_fraction=0.1", "model.batch_norm=false",
                 "model.dropout=0.1", "model.l2=0.0001", "model.initializer.name=he_normal",
                 "training.reduce_lr.enabled=false"]
    pipe_cmd = [PY, "-m", "kerasflow.runtime.cli", "run", config] + [x for o in overrides for x in ("--set", o)]
    bare_runs, pipe_runs = [], []
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits both sides alike
        if bare is None:
            bare_runs.append(_timed(bare_cmd, env))
        pipe_runs.append(_timed(pipe_cmd, env))
    bare_s, bare_mb, bare_cpu = bare or _median(bare_runs)
    pipe_s, pipe_mb, pipe_cpu = _median(pipe_runs)
    print(f"{label:<44}{bare_s:>8.1f}{pipe_s:>11.1f}{pipe_s / bare_s:>9.2f}x{bare_mb:>9.0f}{pipe_mb:>9.0f}"
          f"{bare_cpu:>9.1f}{pipe_cpu:>9.1f}   (load {os.getloadavg()[0]:.1f})")
    return bare_s, bare_mb, bare_cpu, pipe_s, pipe_mb, pipe_cpu


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak MB and CPU seconds of a command's process tree.

    The CPU seconds (user + system of the command and every child it
    waited for: the validation worker, the infra-validation process; not
    the shared Prefect server, which outlives it) are what a busy machine
    does not distort, unlike the wall time.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak, _ = measure(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, peak, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _median(samples: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Median seconds, and the peak memory and CPU seconds of the run with that time."""
    return sorted(samples)[len(samples) // 2]


def warm_up(config: str, env: dict[str, str]) -> float:
    """One untimed pipeline run: creates the MLflow store and starts the shared Prefect server.

    Returns:
        Its wall time (a first run on a fresh machine).
    """
    return measure([PY, "-m", "kerasflow.runtime.cli", "run", config, "--set", "training.epochs=1"], env)[0]


def server_rss(env: dict[str, str]) -> float:
    """Resident MB of the shared local Prefect server of `env`'s PREFECT_HOME (0 if none)."""
    pid_file = Path(env["PREFECT_HOME"]) / "server.pid"  # written by `prefect server start --background`
    try:
        return psutil.Process(int(pid_file.read_text().strip())).memory_info().rss / 2**20
    except (OSError, ValueError, psutil.Error):
        return 0.0


def stop_shared_server(env: dict[str, str]) -> None:
    """Stops the shared Prefect server the benchmark's PREFECT_HOME started."""
    subprocess.run([PY, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env, capture_output=True)


@contextlib.contextmanager
def prefect_server(env: dict[str, str], tmp: Path) -> Iterator[dict[str, str]]:
    """Runs a long-lived `prefect server start` on 127.0.0.1; yields env pointing at it."""

    port = free_port()
    server_env = {**env, "PREFECT_HOME": str(tmp / "prefect-server")}
    log = tmp / "prefect-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([PY, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=server_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(f"{url}/health", proc.poll, log)
        yield {**env, "PREFECT_API_URL": url}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def breakdown(env: dict[str, str], tmp: Path) -> None:
    """Times the pipeline's fixed costs one by one, each in a fresh process."""
    probes = {
        "import tensorflow+keras": "import tensorflow, keras",
        "import mlflow": "import mlflow, mlflow.pyfunc",
        "import prefect": "import prefect, prefect.flows",
        "import great_expectations": "import great_expectations",
        "prefect temporary server start+stop": (
            "from prefect.server.api.server import SubprocessASGIServer as S\n"
            "s = S(); s.start(timeout=120); s.stop()"),
        "kerasflow shared server boot (1st run only)": (
            "from kerasflow.runtime.prefect_server import ensure_shared_server, stop_shared_server\n"
            "ensure_shared_server().wait_ready(); stop_shared_server()"),
        "validation worker: spawn, GX import, warm-up": (
            "from kerasflow.data.expectations.run import start_validator, stop_validator\n"
            "start_validator(); stop_validator()"),
        "mlflow sqlite store set-up": (
            f"import mlflow; c = mlflow.MlflowClient('sqlite:///{tmp}/probe.db'); c.create_experiment('x')"),
        "great expectations validation": (
            "from kerasflow.data.load import load_frame\n"
            "from kerasflow.data.expectations.run import validate_frame\n"
            "from kerasflow.data.expectations.suites import load_suite\n"
            "validate_frame(load_frame('breast_cancer'), load_suite('schemas/suites/breast_cancer.json'))"),
    }
    print("\nfixed costs (fresh process each; the import is inside the timed region)")
    for label, code in probes.items():
        timed = f"import time; t = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
        probe_env = ({**env, "PREFECT_HOME": str(tmp / "prefect-probe"), "KERASFLOW_PREFECT_PORT": str(free_port())}
                     if "shared server" in label else env)
        out = subprocess.run([PY, "-c", timed], cwd=ROOT, env=probe_env, capture_output=True, text=True, check=True)
        print(f"  {label:<40}{float(out.stdout.strip().splitlines()[-1]):>7.2f} s")


def main() -> None:
    """Runs both comparisons and the breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-epochs", type=int, default=250, help="epochs of the ~1 minute training")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is printed")
    parser.add_argument("--long-repeats", type=int, default=3, help="runs of the ~1 minute training; the median is printed")
    parser.add_argument("--skip-long", action="store_true", help="only the small whole job")
    parser.add_argument("--skip-small", action="store_true", help="only the ~1 minute training")
    parser.add_argument("--no-variants", action="store_true",
                        help="the small job with the shared server only: no server variants, no breakdown")
    args = parser.parse_args()
    small = ("breast_cancer", "configs/breast_cancer.yaml", 20, 16, 0.003, [32, 16])
    with tempfile.TemporaryDirectory(prefix="kf-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "TF_CPP_MIN_LOG_LEVEL": "3",
               "PREFECT_HOME": str(tmp / "prefect"), "KERASFLOW_PREFECT_PORT": str(free_port()),
               # every run computes every step, as the bare script does: the step cache would reuse them
               "KERASFLOW_CACHE_DAYS": "0", "KERASFLOW_HOME": str(tmp)}
        for key in ("PREFECT_API_URL", "KERASFLOW_PREFECT_SERVER"):
            env.pop(key, None)
        try:
            first = warm_up(small[1], env)
            print(f"first run on a fresh machine (new MLflow store, Prefect database and shared server, 1 epoch): "
                  f"{first:.1f} s\n")
            print(f"{'job (median of runs)':<44}{'bare s':>8}{'pipeline s':>11}{'ratio':>10}"
                  f"{'bare MB':>9}{'pipe MB':>9}{'bare CPU':>9}{'pipe CPU':>9}")
            eager = {**env, "KERASFLOW_LOW_MEMORY": "0"}
            if not args.skip_small:
                bare = compare("breast_cancer, 20 epochs (goal <=2x, <1 GB)", *small, env, tmp, args.repeats)
                print(f"  (+ the shared Prefect server, resident once for all runs: {server_rss(env):.0f} MB)")
            if not args.skip_small and not args.no_variants:
                temporary = {**env, "KERASFLOW_PREFECT_SERVER": "temporary"}
                compare("  same, temporary Prefect server per run", *small, temporary, tmp, args.repeats,
                        bare=bare[:3])
                compare("  same, KERASFLOW_LOW_MEMORY=0", *small, eager, tmp, args.repeats, bare=bare[:3])
                with prefect_server(env, tmp) as served:
                    compare("  same, own server via PREFECT_API_URL", *small, served, tmp, args.repeats,
                            bare=bare[:3])
            if not args.skip_long:
                long = ("digits", "configs/digits.yaml", args.long_epochs, 32, 0.001, [128, 64])
                bare_long = compare(f"digits, {args.long_epochs} epochs (goal <=1.10x)", *long, env, tmp,
                                    args.long_repeats)
                compare("  same, KERASFLOW_LOW_MEMORY=0", *long, eager, tmp, args.long_repeats, bare=bare_long[:3])
            if not args.skip_small and not args.no_variants:
                breakdown(env, tmp)
        finally:
            stop_shared_server(env)


if __name__ == "__main__":
    main()
