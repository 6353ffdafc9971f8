"""Loading a registered version in a fresh process, as `mlflow models serve` does, and scoring requests.

The fresh process is `python -c PROBE`: it imports nothing of this process
but MLflow, so the model must load from what was logged with it (its code,
its artifacts, its requirements as installed). It loads the version with
`mlflow.pyfunc.load_model("models:/NAME/VERSION")`, parses each request
(`{"dataframe_split": ...}`, JSON as a client sends to the scoring server)
with the scoring server's own parser and the model's input schema, predicts,
and writes the outputs as Parquet (exact numbers) with its timings as JSON.
"""

from __future__ import annotations

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
request = json.loads(open(sys.argv[1]).read())
model = mlflow.pyfunc.load_model(request["uri"])
result = {"load_seconds": time.perf_counter() - started, "rows": {}, "predict_seconds": 0.0}
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
        out.reset_index(drop=True).to_parquet(f"{sys.argv[2]}.{name}.parquet")
open(sys.argv[2], "w").write(json.dumps(result))
"""


@dataclass
class ProbeResult:
    """What the fresh process did.

    Args:
        error: Why it failed (the last lines of its stderr), or None.
        load_seconds: From the process's start to a loaded model (imports included).
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
        env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "MLFLOW_REGISTRY_URI": store_uri}
        started = time.perf_counter()
        with subprocess.Popen([sys.executable, "-c", PROBE, str(request), str(result)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
            try:
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
