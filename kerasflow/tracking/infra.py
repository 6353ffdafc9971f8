"""Loading a registered version in a fresh process, as `mlflow models serve` does, and scoring requests.

The fresh process is `python -c PROBE`: it imports nothing of this process
but MLflow, so the model must load from what was logged with it (its code,
its artifacts, its requirements as installed). It reads its request's
paths as one line on standard input, so it can be started early
(`start_probe`, while the model trains): it then imports MLflow and the
Keras flavor's TensorFlow (MLflow alone for a run of many rows) before the version exists, maps the installed
packages and opens a SQLite store (what `load_model` would otherwise do
after registration: seconds), so the wait for it after registration is
only the load and the requests. It loads the version with
`mlflow.pyfunc.load_model("models:/NAME/VERSION")`, parses each request
(`{"dataframe_split": ...}`, JSON as a client sends to the scoring server)
with the scoring server's own parser and the model's input schema, predicts,
and writes the outputs as Parquet (exact numbers) with its timings as JSON.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

ERROR_LINES = 6  # lines of the fresh process's stderr quoted when it fails
TICK_SECONDS = 3.0  # a progress line at least this often while the fresh process works

PROBE = r"""
import json, sys, time
started = time.perf_counter()
import mlflow.pyfunc
from mlflow.pyfunc.scoring_server import infer_and_parse_data
if "--early" in sys.argv:  # started before the version exists: the Keras flavor's libraries meanwhile
    if "--light" not in sys.argv:  # (a large run's: not beside its training rows, `load_model` imports them)
        try:
            import keras, tensorflow
        except ImportError:
            pass
    try:  # and what `load_model` does first: map the installed packages (its requirements check) and open
        # a SQLite store (a schema check of seconds); a server's store is left alone, it may be away
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches
        warn_dependency_requirement_mismatches(["mlflow"])
        if mlflow.get_tracking_uri().startswith("sqlite:"):
            client = mlflow.MlflowClient()
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except Exception:  # a cold start only costs time; the load reports any real error
        pass
imported = time.perf_counter() - started
line = sys.stdin.readline()  # the request's and the result's paths; none: the parent let go of this process
if not line.strip():
    sys.exit(0)
request_path, result_path = json.loads(line)
begun = time.perf_counter()
request = json.loads(open(request_path).read())
model = mlflow.pyfunc.load_model(request["uri"])
result = {"load_seconds": imported + time.perf_counter() - begun, "rows": {}, "predict_seconds": 0.0}
if request["query"]:
    schema = model.metadata.get_input_schema()
    payloads = {"canary": request["canary"]}
    example = model.input_example
    if example is not None:
        payloads["example"] = {"dataframe_split": json.loads(example.to_json(orient="split", double_precision=15))}
    for name, payload in payloads.items():
        if payload is None:
            continue
        frame = infer_and_parse_data(payload, schema)
        begun = time.perf_counter()
        out = model.predict(frame)
        result["predict_seconds"] += time.perf_counter() - begun
        result["rows"][name] = len(frame)
        out.reset_index(drop=True).to_parquet(f"{result_path}.{name}.parquet")
open(result_path, "w").write(json.dumps(result))
"""
_early: list[tuple[str, subprocess.Popen]] = []  # the probe `start_probe` started: (its store, the process)
_early_cleanup: list[Any] = []  # `stop_probe` registered with `atexit`, once


@dataclass
class ProbeResult:
    """What the fresh process did.

    Args:
        error: Why it failed (the last lines of its stderr), or None.
        load_seconds: From the process's start to a loaded model (imports included; an early
            process's wait for its request left out).
        predict_seconds: Seconds spent in `predict`, all requests together.
        wall_seconds: The whole process, as this process waited for it.
        outputs: The predictions by request (`example`, `canary`).
        rows: Rows scored by request.
        meanwhile: What `meanwhile` returned.
    """

    error: str | None
    load_seconds: float | None = None
    predict_seconds: float = 0.0
    wall_seconds: float = 0.0
    outputs: dict[str, pd.DataFrame] | None = None
    rows: dict[str, int] | None = None
    meanwhile: Any = None


def probe_version(model_uri: str, store_uri: str, canary: pd.DataFrame | None, query: bool,
                  timeout: float, meanwhile: Callable[[], Any] | None = None,
                  tick: Callable[[float], None] | None = None) -> ProbeResult:
    """Loads a model in a fresh Python process and (with `query`) scores its input example and `canary`.

    Args:
        model_uri: The registry URI, e.g. `models:/iris/3`.
        store_uri: The tracking and registry store the URI resolves in.
        canary: Raw rows in the model's serving format (its input columns),
            or None.
        query: Score the requests; else only load.
        timeout: Seconds the process may take.
        meanwhile: Work for this process while the fresh one loads (its
            result is `ProbeResult.meanwhile`). Default none.
        tick: Called with the seconds waited, every `TICK_SECONDS` the
            fresh process is still working (a progress line). Default none.

    Returns:
        A `ProbeResult`; `error` says why the process failed, if it did.
    """
    with tempfile.TemporaryDirectory(prefix="kerasflow-infra-") as folder:
        request, result = Path(folder) / "request.json", Path(folder) / "result.json"
        payload = None
        if query and canary is not None and len(canary):
            payload = {"dataframe_split": json.loads(canary.to_json(orient="split", index=False,
                                                                    double_precision=15))}
        request.write_text(json.dumps({"uri": model_uri, "query": query, "canary": payload}))
        started = time.perf_counter()
        with _take_probe(store_uri) as process:
            try:
                _send(process, json.dumps([str(request), str(result)]) + "\n")
                extra = meanwhile() if meanwhile is not None else None
                stderr = _wait(process, started, timeout, tick)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                return ProbeResult(error=f"the fresh process did not load and score within {timeout:g} s",
                                   wall_seconds=time.perf_counter() - started)
            except BaseException:  # an interrupt or a failure of `meanwhile`: never leave the process behind
                process.kill()
                raise
        wall = time.perf_counter() - started
        if process.returncode != 0 or not result.exists():
            return ProbeResult(error=_failure(process.returncode, stderr), wall_seconds=wall, meanwhile=extra)
        data = json.loads(result.read_text())
        outputs = {name: pd.read_parquet(f"{result}.{name}.parquet") for name in data["rows"]}
    return ProbeResult(error=None, load_seconds=data["load_seconds"], predict_seconds=data["predict_seconds"],
                       wall_seconds=wall, outputs=outputs, rows=data["rows"], meanwhile=extra)


def start_probe(store_uri: str, libraries: bool = True) -> None:
    """Starts the fresh process of the next `probe_version` on `store_uri` now, so its imports overlap other work.

    It waits for its request on standard input; `stop_probe` (or this
    process's end, which closes that input) ends it unused. A second call
    while one waits does nothing.

    Args:
        store_uri: The tracking and registry store the version will be registered in.
        libraries: Import the Keras flavor's libraries (TensorFlow: about 600 MB
            resident) while waiting, too. Default true; false for a run whose
            training holds many rows, so that TensorFlow's memory in the fresh
            process does not add to the training's peak (`load_model` imports
            it once the version exists).
    """
    if not _early:
        if not _early_cleanup:
            _early_cleanup.append(atexit.register(stop_probe))
        _early.append((store_uri, _spawn(store_uri, early=True, light=not libraries)))


def stop_probe() -> None:
    """Ends the process `start_probe` started, if `probe_version` did not use it."""
    while _early:
        _, process = _early.pop()
        if process.poll() is None:
            process.kill()
        process.communicate()


def _spawn(store_uri: str, early: bool = False, light: bool = False) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "MLFLOW_REGISTRY_URI": store_uri}
    flags = [*(["--early"] if early else []), *(["--light"] if light else [])]
    return subprocess.Popen([sys.executable, "-c", PROBE, *flags], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _send(process: subprocess.Popen, line: str) -> None:
    """Writes the request line; a process that already died is judged by its exit status and stderr."""
    try:
        process.stdin.write(line)
        process.stdin.flush()  # `communicate` closes the input, which the process does not read again
    except (BrokenPipeError, OSError):
        pass


def _take_probe(store_uri: str) -> subprocess.Popen:
    """The early process for `store_uri` if one is waiting, alive; else a new one."""
    while _early:
        uri, process = _early.pop()
        if uri == store_uri and process.poll() is None:
            return process
        process.kill()
        process.communicate()
    return _spawn(store_uri)


def _wait(process: subprocess.Popen, started: float, timeout: float, tick: Callable[[float], None] | None) -> str:
    """Waits for the fresh process (at most `timeout` from `started`), calling `tick` every `TICK_SECONDS`.

    Returns:
        Its standard error.

    Raises:
        subprocess.TimeoutExpired: It did not finish in time.
    """
    while True:
        left = timeout - (time.perf_counter() - started)
        try:
            return process.communicate(timeout=max(0.1, min(left, TICK_SECONDS)))[1]
        except subprocess.TimeoutExpired:  # retrying communicate loses no output (subprocess docs)
            if left <= TICK_SECONDS:
                raise
            if tick is not None:
                tick(time.perf_counter() - started)


def _failure(code: int, stderr: str) -> str:
    """Names the error that ended the process (a traceback's last line) and quotes the lines before it."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return f"the fresh process exited with status {code} and no error output"
    before = " | ".join(lines[-ERROR_LINES:-1])
    return f"the fresh process exited with status {code}: {lines[-1][:1000]}" + (f" (after: {before[-1500:]})"
                                                                                  if before else "")
