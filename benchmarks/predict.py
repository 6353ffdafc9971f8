"""Batch scoring: `kerasflow predict` against a bare scoring script, paired in one run.

The model: the scale job's dense 64-32 network (`benchmarks/common.py`:
20 float32 features, two string columns, 3 classes), trained once by
`kerasflow run` on 20,000 rows with a suite from `kerasflow suite init`,
so `kerasflow predict` checks the rows against the suite, as in issue 25.
The files scored are those 20,000 rows repeated to each size.

- **bare**: one script that loads the registered model
  (`mlflow.pyfunc.load_model("models:/scale-dense/1")`), reads the
  CSV with pandas, calls `predict` and writes the rows with their
  predictions as CSV;
- **kerasflow**: `kerasflow predict models:/scale-dense/1 FILE` in a
  fresh process, against the shared local Prefect server (started by the
  training run): the row policy, the suite's checks, an MLflow run of kind
  `predict`, the output CSV.

Both run in fresh processes, bare first, on the same CSV (in the page
cache for both). For each size it prints wall time and peak RSS of the
process tree of each, and their ratios. Goals (issue 25): <= 1.3x bare
at 100k rows; kerasflow's peak memory flat from 1M to 10M rows (the
last lines compare the largest size's peak with the smallest's).

Measured on the shared 2-core machine (load 9-20, so seconds are noisy; each
ratio is one pair): before (GX worker on the whole file, no chunks) 100k rows
1.44x bare (92.7 s vs 133.9 s), peak 1,027 MB; 1M rows 1.15x, peak 1,658 MB
(1.61x the 100k peak). After (chunks, vectorized counts, the model loading
while the flow starts): 100k rows 1.16x bare (59.5 s vs 68.9 s; a busier
pair gave 0.74x), peak 972 MB; 1M rows peak 1,021 MB (1.05x the 100k peak);
10M rows (run with `--sizes 1000000 10000000 --no-bare`, load 13-29): 1M rows
1,003 MB, 10M rows 1,015 MB (peak 1.01x, goal flat), time per row 1.15x
(186.9 s and 2,150.9 s).

Usage:

    python benchmarks/predict.py [--sizes 100000 1000000] [--data DIR] [--project DIR] [--no-bare]

`--project` keeps the trained model's project folder (store, Prefect home)
between runs: a folder that has a store is reused without training.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml
from common import measure  # benchmarks/common.py, beside this script
from scale import write_config, write_data  # the scale job's table and config

from kerasflow.runtime.processes import free_port

PY = sys.executable
MODEL = "models:/scale-dense/1"

BARE = r'''
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import mlflow.pyfunc, pandas as pd
uri, source, out = sys.argv[1:4]
model = mlflow.pyfunc.load_model(uri)
df = pd.read_csv(source)
pred = model.predict(df.drop(columns=["label"]))
pd.concat([df, pred.reset_index(drop=True)], axis=1).to_csv(out, index=False)
print(len(pred), "rows")
'''


TRAIN_ROWS = 20_000


def tiled(rows: int, data: Path) -> Path:
    """Writes the training table repeated to `rows` rows as CSV (once; reused): new rows the suite accepts.

    `make_classification` places its classes anew for each `n`, so a fresh
    table of another size would fail the suite drafted from the training rows.
    """
    path = data / f"predict_{rows}.csv"
    if path.exists():
        return path
    header, _, body = write_data(TRAIN_ROWS, data / f"scale_{TRAIN_ROWS}.csv").read_bytes().partition(b"\n")
    lines = body.splitlines(keepends=True)
    with open(path, "wb") as out:
        out.write(header + b"\n")
        for _ in range(rows // TRAIN_ROWS):
            out.write(body)
        out.writelines(lines[:rows % TRAIN_ROWS])
    return path


def train(data: Path, tmp: Path, project: Path, env: dict[str, str]) -> None:
    """Trains and registers the model, with a suite drafted from its training rows."""
    cli = [PY, "-m", "kerasflow.runtime.cli"]
    source = write_data(TRAIN_ROWS, data / f"scale_{TRAIN_ROWS}.csv")
    suite = tmp / "scale-suite.json"
    measure([*cli, "suite", "init", str(source), "--target", "label", "--out", str(suite)], env, cwd=project)
    config = write_config(source, tmp)
    settings = yaml.safe_load(config.read_text())
    settings["validation"] = {"suite": str(suite)}
    config.write_text(yaml.safe_dump(settings))
    measure([*cli, "run", str(config), "--no-lint"], env, cwd=project)


def main() -> None:
    """Trains the model once, then scores each size bare and with kerasflow, and prints the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="rows per file (default 100000)")
    parser.add_argument("--data", type=Path, default=None, help="folder to keep the generated CSVs in (reused)")
    parser.add_argument("--project", type=Path, default=None, help="project folder to keep (and reuse) the model in")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare script (memory scaling only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-predict-") as tmp_name:
        tmp = Path(tmp_name)
        data = args.data or tmp
        data.mkdir(parents=True, exist_ok=True)
        project = (args.project or tmp / "project").resolve()
        project.mkdir(parents=True, exist_ok=True)
        trained = (project / "mlruns" / "mlflow.db").exists()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(project / ".prefect"),
               "KERASFLOW_PREFECT_PORT": str(free_port()), "KERASFLOW_HOME": str(project),
               "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"}
        script = tmp / "bare.py"
        script.write_text(BARE)
        cli = [PY, "-m", "kerasflow.runtime.cli"]
        try:
            if not trained:
                train(data, tmp, project, env)
            results = {}
            print(f"{'rows':>11}{'bare s':>9}{'kf s':>9}{'ratio':>8}{'bare MB':>10}{'kf MB':>9}{'ratio':>8}")
            for rows in args.sizes:
                source = tiled(rows, data)
                bare_s, bare_mb = (float("nan"),) * 2
                if not args.no_bare:
                    bare_s, bare_mb, _ = measure([PY, str(script), MODEL, str(source), str(tmp / "bare.csv")], env)
                kf_s, kf_mb, _ = measure([*cli, "predict", MODEL, str(source), "--out", str(tmp / "kf.csv")], env,
                                         cwd=project)
                results[rows] = (kf_s, kf_mb)
                print(f"{rows:>11,}{bare_s:>9.1f}{kf_s:>9.1f}{kf_s / bare_s:>7.2f}x{bare_mb:>10.0f}{kf_mb:>9.0f}"
                      f"{kf_mb / bare_mb:>7.2f}x", flush=True)
            small, large = min(results), max(results)
            if large > small:
                print(f"\n{small:,} -> {large:,} rows: kerasflow peak {results[large][1] / results[small][1]:.2f}x "
                      f"(goal: flat), time per row {(results[large][0] / large) / (results[small][0] / small):.2f}x")
        finally:
            measure([*cli, "server", "stop"], env, cwd=project)


if __name__ == "__main__":
    main()
