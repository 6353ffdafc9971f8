"""Renders the README's pictures from a real run: the MLflow run page, the compare view, the Prefect flow run.

It trains the bundled iris config twice (20 and 40 epochs) against a
temporary MLflow store and the shared local Prefect server of a temporary
PREFECT_HOME, starts `mlflow server` on that store, and has headless
Chromium (Debian's `chromium` package), driven over the DevTools protocol,
render each page into `docs/images/` once it has drawn what the picture
is for:

- `mlflow-run.png`: the second run's page, its description expanded (the
  outcome, the Prefect flow run's link, the registered version, the gate
  decision), its metrics, tags and registered model;
- `mlflow-compare.png`: the experiment's chart view of both runs, a
  section per step (`baseline`, `infra`, `test` folded, `train` open with
  the per-epoch curves);
- `prefect-flow-run.png`: the second flow run, with its outcome tag
  (`kerasflow:promoted`), task graph, artifacts and logs.

Everything it starts is stopped at the end.

Usage: python scripts/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


class Chromium:
    """Headless Chromium driven over the DevTools protocol (with `websockets`, which Prefect depends on).

    A page is opened, waited for until a condition holds (a JavaScript
    expression), arranged (a panel closed, a tab clicked) and captured, so
    a picture never shows a page that has not finished drawing.

    Args:
        binary: The Chromium executable.
        size: The window's width and height in pixels.
    """

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", "--remote-debugging-port=0"]

    def __init__(self, binary: str, size: tuple[int, int] = (1440, 900)) -> None:
        from websockets.sync.client import connect

        self.profile = Path(tempfile.mkdtemp(prefix="kf-chromium-"))  # a fresh profile every time
        self.proc = subprocess.Popen([binary, *self.FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={size[0]},{size[1]}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{binary} did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self.ids = itertools.count(1)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})

    def call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        """Sends one DevTools command; returns its result (events meanwhile are skipped)."""
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        return result.get("result", {}).get("value")

    def open(self, url: str, ready: str, timeout: float = 120) -> None:
        """Opens `url` and waits until the JavaScript expression `ready` is true."""
        self.call("Page.navigate", {"url": url})
        self.wait(ready, timeout, url)

    def wait(self, condition: str, timeout: float = 60, what: str = "") -> None:
        """Waits until the JavaScript expression `condition` is true in the page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(condition):
            if time.monotonic() > deadline:
                raise SystemExit(f"{what or 'the page'}: `{condition}` still false after {timeout:.0f} s")
            time.sleep(0.5)

    def shoot(self, path: Path, settle: float = 2.0) -> None:
        """Captures the window into a PNG, after `settle` seconds for animations to end."""
        time.sleep(settle)
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    def close(self) -> None:
        """Ends Chromium and deletes its profile."""
        self.ws.close()
        os.killpg(self.proc.pid, 15)
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


def page_text(needle: str) -> str:
    """A JavaScript condition: the page's visible text contains `needle`."""
    return f"document.body && document.body.innerText.includes({json.dumps(needle)})"


def open_mlflow(browser: Chromium, ui: str, url: str, ready: str) -> None:
    """Opens an MLflow UI page with its assistant panel closed (it would cover a quarter of the window)."""
    browser.open(f"{ui}/health", "document.readyState === 'complete'")  # the UI's origin, for its local storage
    browser.evaluate("localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
                     "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false')")
    browser.open(url, ready, timeout=240)


def shoot_run_page(chromium: str, ui: str, experiment: str, run_id: str, path: Path) -> None:
    """The run's Overview: its description (outcome, Prefect link, version, gate decision) expanded, metrics, tags."""
    browser = Chromium(chromium, (1440, 1100))
    try:
        open_mlflow(browser, ui, f"{ui}/#/experiments/{experiment}/runs/{run_id}", page_text("Prefect flow run"))
        browser.evaluate("document.querySelector('[aria-label=\"Expand description\"]')?.click()")
        browser.wait(page_text("Gate decision"), what="the expanded description")
        browser.shoot(path)
    finally:
        browser.close()


def shoot_compare(chromium: str, ui: str, experiment: str, path: Path) -> None:
    """The experiment's chart view of its two runs: one section per step, the `train` one open (per-epoch curves)."""
    browser = Chromium(chromium, (1440, 1200))
    try:
        open_mlflow(browser, ui, f"{ui}/#/experiments/{experiment}/runs?compareRunsMode=CHART",
                    page_text("Add section"))
        browser.evaluate("""[...document.querySelectorAll('div[aria-expanded="true"]')]
            .filter(header => !header.innerText.startsWith('train\\n')).forEach(header => header.click())""")
        browser.wait(page_text("train/val_loss"), what="the train section")
        browser.wait("document.querySelectorAll('.js-plotly-plot').length >= 6", 120, "the train charts")
        browser.shoot(path, settle=6)
    finally:
        browser.close()


def shoot_flow_run(chromium: str, flow_url: str, path: Path) -> None:
    """The Prefect flow run: its outcome tag (`kerasflow:<outcome>`), task graph, artifacts and logs."""
    browser = Chromium(chromium, (1440, 1000))
    try:
        browser.open(flow_url, f"{page_text('kerasflow:')} && {page_text('Task Runs')}", timeout=240)
        browser.shoot(path, settle=8)  # the graph is drawn on a canvas, animated in
    finally:
        browser.close()


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
        run_pipeline(env, 20)  # the first of the two runs the chart view compares
        second, flow_url = run_pipeline(env, 40)
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                   "--artifacts-destination", str(work / "mlruns"), "--host", "127.0.0.1",
                                   "--port", str(mlflow_port), "--workers", "1"], cwd=ROOT,
                                  env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        ui = f"http://127.0.0.1:{mlflow_port}"
        wait_for(f"{ui}/health", timeout=300)
        import mlflow

        experiment = mlflow.MlflowClient(store).get_run(second).info.experiment_id
        args.out.mkdir(parents=True, exist_ok=True)
        shoot_run_page(args.chromium, ui, experiment, second, args.out / "mlflow-run.png")
        shoot_compare(args.chromium, ui, experiment, args.out / "mlflow-compare.png")
        shoot_flow_run(args.chromium, flow_url, args.out / "prefect-flow-run.png")
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env,
                       capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
