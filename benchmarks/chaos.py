"""Chaos: kill `kerasflow` at a random moment of a train, tune or retrain, rerun it, and count what is left.

Each round starts one of the three commands on tiny configs (real `kerasflow`
processes, a temporary store, step cache and Prefect home of its own),
sends SIGKILL or SIGTERM at a random moment of it (seeded; the moment is
drawn from 5-95 % of the duration of the last clean run of that command),
then reruns the same command to its end. After every round it counts:

- reruns that exited 0;
- runs left RUNNING (all experiments, after the rerun);
- registered versions whose run is not FINISHED;
- whether `@champion` (v1 of the first train, then what retrains promote) points to a version that cannot be loaded
  (`mlflow.pyfunc.load_model("models:/NAME@champion")`, in a fresh process);
- leftover processes: descendants of the killed command still alive
  `--settle` seconds after it ended (psutil).

The goal is every rerun clean and 0 in every other count. Measured on the
shared 2-core machine (load 5-20): `--rounds 20 --seed 13`, 16 of the 20
commands actually interrupted (4 ended before their signal), 20/20 clean
reruns, 0 runs left RUNNING, 0 versions whose run is not FINISHED, 0
unloadable `@champion`, 0 leftover processes. Usage:

    python benchmarks/chaos.py [--rounds 20] [--seed 7] [--settle 15]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IRIS = ["name=chaos_iris", "registry.model_name=chaos-iris", "training.epochs=15",
        "training.early_stopping.patience=30"]
WINE = ["name=chaos_wine", "registry.model_name=chaos-wine", "tuning.max_trials=3", "tuning.tuner=random",
        "training.epochs=5", "training.early_stopping.patience=30"]
COMMANDS = {
    "train": ["run", "configs/iris.yaml", *sum((["-s", o] for o in IRIS), [])],
    "retrain": ["retrain", "configs/iris.yaml", "--force", *sum((["-s", o] for o in IRIS), [])],
    "tune": ["tune", "configs/wine_tuned.yaml", *sum((["-s", o] for o in WINE), [])],
}
MODELS = ("chaos-iris",)


@dataclass
class Tally:
    """The counts over all rounds."""

    rounds: int = 0
    clean_reruns: int = 0
    left_running: int = 0
    versions_not_finished: int = 0
    champion_unloadable: int = 0
    leftover_processes: int = 0
    notes: list[str] = field(default_factory=list)


def kerasflow(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Starts `kerasflow ARGS` as a real console process (its own session, as a scheduler starts it)."""
    code = "from kerasflow.runtime.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def watch_tree(proc: subprocess.Popen, seen: dict[int, float], stop: threading.Event) -> None:
    """Records every descendant of `proc` (pid -> create time) until `stop` is set."""
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            for child in root.children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        stop.wait(0.2)


def leftovers(seen: dict[int, float]) -> list[str]:
    """The recorded descendants still alive (same pid and create time), as `pid name` lines."""
    alive = []
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {proc.name()} {' '.join(proc.cmdline()[:4])[:120]}")
        except psutil.Error:
            continue
    return alive


def killed_round(kind: str, signum: int, delay: float, env: dict[str, str], settle: float) -> tuple[object, list[str]]:
    """Runs `kind`, sends `signum` after `delay` s (unless it ended), waits; returns its status and leftovers."""
    proc = kerasflow(COMMANDS[kind], env)
    seen: dict[int, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_tree, args=(proc, seen, stop), daemon=True)
    watcher.start()
    drain = threading.Thread(target=proc.communicate, daemon=True)  # keep its pipe from filling
    drain.start()
    signalled = False
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signum)
        signalled = True
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
        seen[-1] = 0.0  # marks the hang
    stop.set()
    watcher.join()
    deadline = time.monotonic() + settle
    while leftovers(seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = leftovers(seen)
    for line in left:  # never carried into the next round
        try:
            psutil.Process(int(line.split()[0])).kill()
        except psutil.Error:
            pass
    hung = ["the command did not end within 90 s of the signal"] if -1 in seen else []
    return (code if signalled else f"{code} (ended before the signal)"), left + hung


def rerun(kind: str, env: dict[str, str]) -> tuple[int, float, str]:
    """Runs `kind` to its end; returns its status, seconds and output tail."""
    started = time.monotonic()
    proc = kerasflow(COMMANDS[kind], env)
    out, _ = proc.communicate(timeout=1800)
    return proc.returncode, time.monotonic() - started, out[-1500:]


def store_counts(uri: str, env: dict[str, str]) -> tuple[int, int, int, list[str]]:
    """(runs RUNNING, versions whose run is not FINISHED, @champion unloadable (0/1), notes) of the store."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri, registry_uri=uri)
    notes = []
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=1000)
    notes += [f"RUNNING: {r.info.run_id} {r.data.tags.get('kerasflow.kind')}" for r in running]
    unfinished = 0
    for model in MODELS:
        for version in client.search_model_versions(f"name = '{model}'"):
            status = client.get_run(version.run_id).info.status if version.run_id else "NONE"
            if status != "FINISHED":
                unfinished += 1
                notes.append(f"{model} v{version.version}: its run {version.run_id} is {status}")
    unloadable = 0
    for model in MODELS:
        try:
            champion = client.get_model_version_by_alias(model, "champion")
        except MlflowException:
            continue
        load = subprocess.run([sys.executable, "-c", "import sys, mlflow; mlflow.set_registry_uri(sys.argv[1]); "
                               "mlflow.pyfunc.load_model(sys.argv[2])", uri, f"models:/{model}@champion"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if load.returncode:
            unloadable += 1
            notes.append(f"{model}@champion (v{champion.version}) does not load: {load.stderr.strip()[-300:]}")
    return len(running), unfinished, unloadable, notes


def main() -> None:
    """Runs the rounds and prints one line each, then the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--settle", type=float, default=15.0, help="Seconds a killed command's children may take.")
    args = parser.parse_args()
    from kerasflow.runtime.processes import child_environment, free_port

    home = Path(tempfile.mkdtemp(prefix="kf-chaos-"))
    uri = f"sqlite:///{home / 'mlflow.db'}"
    env = child_environment({**os.environ, "KERASFLOW_HOME": str(home), "MLFLOW_TRACKING_URI": uri,
                             "PREFECT_HOME": str(home / "prefect"), "KERASFLOW_PREFECT_PORT": str(free_port()),
                             "KERASFLOW_CACHE_DAYS": "7", "KERASFLOW_INFRA_VALIDATION": "off"})
    env.pop("PREFECT_API_URL", None)
    rng = random.Random(args.seed)
    tally = Tally()
    print(f"chaos: {args.rounds} rounds, seed {args.seed}, state in {home}", flush=True)
    subprocess.run([sys.executable, "-c", "from kerasflow.runtime.cli import main; main()", "server", "start"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    try:
        durations = {}
        for kind in ("train", "tune"):  # the baseline durations, and a first champion for retrain
            code, seconds, out = rerun(kind, env)
            if code:
                raise SystemExit(f"the first {kind} failed ({code}):\n{out}")
            durations[kind] = seconds
        durations["retrain"] = durations["train"]
        cli = [sys.executable, "-c", "from kerasflow.runtime.cli import main; main()"]
        for model in MODELS:  # a champion from the start: retrains challenge it, and the check loads it
            subprocess.run([*cli, "promote", model, "1"], cwd=ROOT, env=env, check=True, capture_output=True)
        print("baseline: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()), flush=True)
        for index in range(1, args.rounds + 1):
            kind = rng.choice(sorted(COMMANDS))
            signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
            delay = rng.uniform(0.05, 0.95) * durations[kind]
            code, left = killed_round(kind, signum, delay, env, args.settle)
            again, seconds, out = rerun(kind, env)
            if again == 0:
                durations[kind] = seconds
            running, unfinished, unloadable, notes = store_counts(uri, env)
            tally.rounds += 1
            tally.clean_reruns += again == 0
            tally.left_running += running
            tally.versions_not_finished += unfinished
            tally.champion_unloadable += unloadable
            tally.leftover_processes += len(left)
            tally.notes += [f"round {index}: {n}" for n in notes + left]
            if again:
                tally.notes.append(f"round {index}: rerun exited {again}: {out[-600:]}")
            print(f"round {index:2d}: {kind:7s} {signal.Signals(signum).name:7s} at {delay:5.1f} s -> exit {code}; "
                  f"rerun exit {again} ({seconds:.0f} s); RUNNING {running}, versions not FINISHED {unfinished}, "
                  f"champion unloadable {unloadable}, leftover processes {len(left)}", flush=True)
    finally:
        subprocess.run([sys.executable, "-c", "from kerasflow.runtime.cli import main; main()", "server", "stop"],
                       cwd=ROOT, env=env, capture_output=True)
    print(f"\nclean reruns {tally.clean_reruns}/{tally.rounds}; runs left RUNNING {tally.left_running}; "
          f"versions whose run is not FINISHED {tally.versions_not_finished}; @champion unloadable "
          f"{tally.champion_unloadable}; leftover processes {tally.leftover_processes}")
    for note in tally.notes:
        print(f"  {note}")


if __name__ == "__main__":
    main()
