"""The team stack's cost against the one-machine stack, measured in the same run.

Starts both stacks for real on free loopback ports, in temporary folders:

- baseline: `kerasflow serve` (Prefect and MLflow on SQLite, deployments run
  in the project folder);
- team: `kerasflow serve --team` (PostgreSQL, MLflow with proxied
  artifacts, Prefect on PostgreSQL, deployments that `git_clone` a bare
  clone of this repository into every flow run).

It times the start of each stack, then runs the same `retrain/nightly`
deployment (iris, a few epochs) `--runs` times on each with `prefect
deployment run --watch`, and prints the median seconds per flow run, the
servers' resident memory (sum over their process trees) and the ratios
team / baseline.

    python benchmarks/team.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kerasflow.runtime.prefect_server import background_server  # noqa: E402
from kerasflow.runtime.processes import free_port  # noqa: E402
from kerasflow.runtime.stack import Stack, StackSettings  # noqa: E402
from kerasflow.runtime.team import TeamSettings, TeamStack, git_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["training.epochs=5", "registry.model_name=iris-bench",
             "registry.gate.thresholds=[{metric: accuracy, min: 0.0}]"]


def server_memory(stack: Stack) -> float:
    """Resident MB of the stack's servers and their children (the worker and flow runs left out)."""
    pids = [proc.pid for name, proc in stack.children.items() if name != "worker"]
    if isinstance(stack, TeamStack):
        pids.append(int((stack.postgres.data / "postmaster.pid").read_text().split()[0]))
    else:
        server = background_server()  # the shared Prefect server this stack started
        pids += [server.pid] if server is not None and server.pid else []
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            continue
    return total / 2**20


def time_runs(stack: Stack, runs: int) -> list[float]:
    """Seconds of each `retrain/nightly` flow run, from `prefect deployment run` to its final state."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = stack.prefect("deployment", "run", "retrain/nightly", "--param", "config_path=configs/iris.yaml",
                             "--param", f"overrides={json.dumps(OVERRIDES)}", "--watch", "--watch-interval", "1",
                             "--watch-timeout", "600", check=False, timeout=700)
        if proc.returncode:
            raise SystemExit(f"the deployment run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_stack(stack: Stack, runs: int) -> dict[str, float]:
    """Starts a stack, times its runs and samples its servers' memory, and stops it."""
    try:
        start = time.perf_counter()
        stack.start()
        started = time.perf_counter() - start
        seconds = time_runs(stack, runs)
        return {"start": started, "run": statistics.median(seconds), "memory": server_memory(stack)}
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Flow runs per stack. Default 3.")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="kerasflow-bench-team-"))
    state.chmod(0o755)  # under root PostgreSQL runs as `postgres`, which must reach its folder
    os.environ["PREFECT_HOME"] = str(state / "prefect-home")  # the baseline's shared server: a private one
    try:
        origin = state / "origin.git"
        subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(origin)], check=True)
        common = {"home": ROOT, "deployments": ["nightly"], "worker_poll_seconds": 1}
        baseline = Stack(StackSettings(**common, prefect_port=free_port(), mlflow_port=free_port(),
                                       state_dir=state / "local",
                                       tracking_uri=f"sqlite:///{state / 'local' / 'mlflow.db'}"), echo=lambda _: None)
        team = TeamStack(TeamSettings(**common, prefect_port=free_port(), mlflow_port=free_port(),
                                      postgres_port=free_port(), state_dir=state / "team",
                                      repository=f"file://{origin}", branch=git_source(ROOT).get("branch")),
                         echo=lambda _: None)
        results = {"sqlite stack": measure_stack(baseline, args.runs), "team stack": measure_stack(team, args.runs)}
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"{'':14} {'start s':>9} {'s per run':>10} {'servers MB':>11}")
    for name, r in results.items():
        print(f"{name:14} {r['start']:9.1f} {r['run']:10.1f} {r['memory']:11.0f}")
    base, mine = results["sqlite stack"], results["team stack"]
    print(f"{'ratio':14} {mine['start'] / base['start']:8.2f}x {mine['run'] / base['run']:9.2f}x "
          f"{mine['memory'] / base['memory']:10.2f}x")


if __name__ == "__main__":
    main()
