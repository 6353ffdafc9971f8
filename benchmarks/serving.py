"""`mlflow models serve` of a kerasflow model against the same network in the plain `mlflow.tensorflow` flavor.

It trains one small network with the pipeline (`kerasflow run` on the
breast_cancer table, a few epochs, registered as `bench-serving`), logs the
same Keras model again with the plain `mlflow.tensorflow` flavor (its pyfunc
runs `model.predict(frame.values)` per request, as `mlflow.keras`'s does;
both flavors demand a tensor signature, so the plain model declares a
float64 `(-1, 30)` tensor, which MLflow fills from the same
`dataframe_split` request, and it is given kerasflow's custom layers as
`custom_objects`), and starts both with `mlflow models serve --env-manager
local` on free ports of 127.0.0.1, one worker each.

Both servers get the same payload, 10 raw rows in `dataframe_split` JSON.
The load is bounded: at 1, 10 and 50 concurrent clients, 300 requests per
server, sent in rounds of 100 that alternate between the servers so that
a busy machine slows both alike. It prints, per server and client count,
req/s, p50 and p99 latency and errors, and the ratio kerasflow/plain of
req/s (goal: >= 3x at 1 and 10 clients, 0 errors at 50). The latency of
each server's first request is printed too (the kerasflow predictor warms
its model up at load).

Then (`--profile`) it loads both models in this process with
`mlflow.pyfunc.load_model` and times `predict` on the same 10 rows, which
separates the predict path (within kerasflow's control) from the HTTP
server and MLflow's JSON parsing and schema checks, and prints a cProfile
of the kerasflow predict path.

Usage: python benchmarks/serving.py [--requests 300] [--rows 10] [--clients 1 10 50] [--epochs 3]
       [--store sqlite:///.../mlflow.db --model-uri models:/bench-serving/1]  (reuse a trained model)
       [--profile]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from kerasflow.runtime.processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
NAME = "bench-serving"
ROUND = 100  # requests per server before switching to the other

# logs the kerasflow model's Keras network again with the plain flavor; prints the new model's URI
PLAIN = """
import sys, mlflow, mlflow.tensorflow, keras
import kerasflow.features.layers  # registers kerasflow's custom layers, which the network uses
from kerasflow.data.load import load_frame
pyfunc = mlflow.pyfunc.load_model(sys.argv[1])
model = pyfunc.unwrap_python_model().predictor.model
rows = load_frame("breast_cancer").drop(columns="target").head(20).to_numpy("float64")
signature = mlflow.models.infer_signature(rows, model.predict(rows, verbose=0))
with mlflow.start_run(run_name="plain-flavor"):
    info = mlflow.tensorflow.log_model(model, name="plain", signature=signature, custom_objects={
        k.split(">")[-1]: v for k, v in keras.saving.get_custom_objects().items() if k.startswith("kerasflow>")})
print(info.model_uri)
"""


def train(env: dict[str, str], epochs: int) -> str:
    """Trains and registers the small network with the pipeline; returns its model URI."""
    cmd = [PY, "-m", "kerasflow.runtime.cli", "run", "configs/breast_cancer.yaml", "--set",
           f"training.epochs={epochs}", "--set", f"registry.model_name={NAME}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise SystemExit(f"training failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return f"models:/{NAME}/latest"


def log_plain(env: dict[str, str], uri: str) -> str:
    """Logs the same network with the plain `mlflow.tensorflow` flavor; returns its model URI."""
    out = subprocess.run([PY, "-c", PLAIN, uri], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def serve(uri: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """Starts `mlflow models serve` for a model on a free loopback port; returns the process and its URL."""
    port = free_port()
    bin_dir = str(Path(PY).parent)  # MLflow execs `uvicorn` from PATH
    server_env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    cmd = [PY, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1",
           "-p", str(port), "-w", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: stopping it stops uvicorn's children
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    """Stops a server's process group: SIGTERM, then SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class Load:
    """Sends requests from `clients` threads, each with its own keep-alive session; collects latencies."""

    def __init__(self, clients: int) -> None:
        self.pool = ThreadPoolExecutor(clients)
        self.local = threading.local()

    def one(self, url: str, body: bytes) -> float | None:
        """Posts one request; returns its latency in seconds, or None for an error."""
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        start = time.perf_counter()
        try:
            response = session.post(f"{url}/invocations", data=body, timeout=120,
                                    headers={"Content-Type": "application/json"})
        except requests.RequestException:
            return None
        return time.perf_counter() - start if response.status_code == 200 else None

    def burst(self, url: str, body: bytes, count: int) -> tuple[float, list[float | None]]:
        """Sends `count` requests; returns the wall seconds and the latencies."""
        start = time.perf_counter()
        latencies = list(self.pool.map(lambda _: self.one(url, body), range(count)))
        return time.perf_counter() - start, latencies


def measure(urls: dict[str, str], body: bytes, clients: int, total: int) -> dict[str, tuple[float, float, float, int]]:
    """Runs the alternating bounded load; returns req/s, p50 ms, p99 ms and errors per server."""
    load = Load(clients)
    walls = {name: 0.0 for name in urls}
    latencies: dict[str, list[float | None]] = {name: [] for name in urls}
    for name, url in urls.items():  # untimed: opens the sessions, as a long-running client would have
        load.burst(url, body, clients)
    sent = 0
    while sent < total:
        count = min(ROUND, total - sent)
        for name, url in urls.items():
            wall, got = load.burst(url, body, count)
            walls[name] += wall
            latencies[name] += got
        sent += count
    load.pool.shutdown()
    results = {}
    for name, got in latencies.items():
        ok = sorted(x for x in got if x is not None)
        p99 = ok[min(len(ok) - 1, int(0.99 * len(ok)))] * 1000 if ok else float("nan")
        results[name] = (len(got) / walls[name], statistics.median(ok) * 1000 if ok else float("nan"), p99,
                         len(got) - len(ok))
    return results


def first_request(url: str, body: bytes) -> float:
    """Milliseconds of a server's very first prediction."""
    start = time.perf_counter()
    response = requests.post(f"{url}/invocations", data=body, timeout=120, headers={"Content-Type": "application/json"})
    response.raise_for_status()
    return (time.perf_counter() - start) * 1000


def payload(rows: int) -> bytes:
    """The request: `rows` raw breast_cancer rows as `dataframe_split` JSON."""
    from kerasflow.data.load import load_frame

    frame = load_frame("breast_cancer").drop(columns="target").sample(rows, random_state=0)
    return ('{"dataframe_split": ' + frame.to_json(orient="split", index=False) + "}").encode()


PROFILE = """
import cProfile, pstats, sys, time, json
import mlflow, pandas as pd
body = json.loads(open(sys.argv[3]).read())["dataframe_split"]
frame = pd.DataFrame(body["data"], columns=body["columns"])
for label, uri in (("kerasflow", sys.argv[1]), ("plain", sys.argv[2])):
    model = mlflow.pyfunc.load_model(uri)
    model.predict(frame)
    start = time.perf_counter()
    for _ in range(200):
        model.predict(frame)
    print(f"in-process pyfunc predict, {label:<10}{(time.perf_counter() - start) / 200 * 1000:8.2f} ms per request")
    if label == "kerasflow":
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(200):
            model.predict(frame)
        profiler.disable()
        kerasflow_stats = pstats.Stats(profiler)
print("\\ncProfile of 200 kerasflow pyfunc predicts (cumulative, top 20):")
kerasflow_stats.sort_stats("cumulative").print_stats(20)
"""


def main() -> None:
    """Trains (or reuses) the model, serves both flavors, runs the load and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per server and client count")
    parser.add_argument("--rows", type=int, default=10, help="rows per request")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50], help="concurrent clients")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the small network")
    parser.add_argument("--store", help="an MLflow tracking URI holding --model-uri (skips training)")
    parser.add_argument("--model-uri", help="the kerasflow model to serve (with --store)")
    parser.add_argument("--profile", action="store_true", help="time and profile predict in-process too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kf-serving-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "MLFLOW_TRACKING_URI": args.store or f"sqlite:///{tmp}/mlflow.db",
               "TF_CPP_MIN_LOG_LEVEL": "3", "PREFECT_HOME": str(tmp / "prefect"),
               "KERASFLOW_PREFECT_PORT": str(free_port()), "KERASFLOW_HOME": str(tmp),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        for key in ("PREFECT_API_URL", "KERASFLOW_PREFECT_SERVER"):
            env.pop(key, None)
        servers: list[subprocess.Popen] = []
        try:
            uri = args.model_uri if args.store else train(env, args.epochs)
            plain = log_plain(env, uri)
            print(f"kerasflow model {uri}, plain mlflow.tensorflow model {plain}")
            urls = {}
            for name, model in (("kerasflow", uri), ("plain", plain)):
                proc, url = serve(model, env, tmp / f"{name}.log")
                servers.append(proc)
                urls[name] = url
            for (name, url), proc in zip(urls.items(), servers):
                wait_healthy(f"{url}/ping", proc.poll, tmp / f"{name}.log", timeout=300)
            body = payload(args.rows)
            for name, url in urls.items():
                print(f"first request, {name:<10}{first_request(url, body):8.1f} ms")
            print(f"\n{args.requests} requests of {args.rows} rows per server and client count, "
                  f"alternating in rounds of {ROUND}")
            print(f"{'clients':>7}  {'server':<10}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}")
            for clients in args.clients:
                results = measure(urls, body, clients, args.requests)
                ratio = results["kerasflow"][0] / results["plain"][0]
                for name, (rate, p50, p99, errors) in results.items():
                    shown = f"{ratio:7.2f}x" if name == "kerasflow" else ""
                    print(f"{clients:>7}  {name:<10}{rate:8.1f}{p50:9.1f}{p99:9.1f}{errors:8d}{shown:>8}")
            if args.profile:
                (tmp / "body.json").write_bytes(body)
                for proc in servers:  # the servers' cores go to the in-process timing
                    stop(proc)
                out = subprocess.run([PY, "-c", PROFILE, uri, plain, str(tmp / "body.json")], cwd=ROOT, env=env,
                                     check=True, capture_output=True, text=True)
                shown = [line for line in out.stdout.splitlines() if "/step" not in line]  # plain's progress bars
                print("\n" + "\n".join(line for line in shown if line.strip()))
        finally:
            for proc in servers:
                stop(proc)
            if not args.store:
                subprocess.run([PY, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env,
                               capture_output=True)


if __name__ == "__main__":
    main()
