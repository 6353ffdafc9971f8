"""Renders the README's pictures from a real run: the MLflow run page, the compare view, the Prefect flow run.

It trains the bundled iris config twice (20 and 40 epochs) against a
temporary MLflow store and the shared local Prefect server of a temporary
PREFECT_HOME, starts `mlflow server` on that store, and has headless
Chromium (Debian's `chromium` package) render each page into
`docs/images/`. Everything it starts is stopped at the end.

Usage: python scripts/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_pipeline(env: dict[str, str], epochs: int) -> tuple[str, str]:
    """Runs `kerasflow run configs/iris.yaml`; returns the MLflow run id and the Prefect flow-run URL."""
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "run", "configs/iris.yaml",
                           "--set", f"training.epochs={epochs}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    run_id = re.search(r"MLflow run:\s+([0-9a-f]{32})", proc.stdout).group(1)
    flow_url = re.search(r"Prefect UI:\s+(\S+)", proc.stdout).group(1)
    return run_id, flow_url


def wait_for(url: str, timeout: float = 90) -> None:
    """Waits until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def screenshot(chromium: str, url: str, path: Path, size: str = "1440,900", wait_ms: int = 12000) -> None:
    """Renders `url` into a PNG with headless Chromium, giving the page's scripts `wait_ms` to draw."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size}",
                        f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  <- {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit("headless Chromium is needed: apt-get install chromium")

    from kerasflow.runtime.processes import free_port

    work = Path(tempfile.mkdtemp(prefix="kf-shots-"))
    store = f"sqlite:///{work / 'mlflow.db'}"
    mlflow_port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PREFECT_HOME": str(work / "prefect"),
           "KERASFLOW_PREFECT_PORT": str(free_port()), "KERASFLOW_HOME": str(work),
           "KERASFLOW_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}"}
    env.pop("PREFECT_API_URL", None)
    server = None
    try:
        first, _ = run_pipeline(env, 20)
        second, flow_url = run_pipeline(env, 40)
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                   "--artifacts-destination", str(work / "mlruns"), "--host", "127.0.0.1",
                                   "--port", str(mlflow_port), "--workers", "1"], cwd=ROOT,
                                  env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        ui = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{ui}/health")
        import mlflow

        experiment = mlflow.MlflowClient(store).get_run(second).info.experiment_id
        args.out.mkdir(parents=True, exist_ok=True)
        screenshot(args.chromium, f"{ui}/#/experiments/{experiment}/runs/{second}", args.out / "mlflow-run.png")
        runs, experiments = json.dumps([first, second]), json.dumps([experiment])
        screenshot(args.chromium, f"{ui}/#/compare-runs?runs={urllib.parse.quote(runs)}"
                                  f"&experiments={urllib.parse.quote(experiments)}", args.out / "mlflow-compare.png")
        screenshot(args.chromium, flow_url, args.out / "prefect-flow-run.png", wait_ms=15000)
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env,
                       capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
