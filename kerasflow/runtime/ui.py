"""`kerasflow ui`: the MLflow UI on the local store, as one process group that stops as a whole.

`mlflow ui` runs uvicorn, which forks its workers, beside MLflow's job
runner; each job that runner starts leads a session of its own and ends
when orphaned. `UIServer` starts `mlflow ui` in a process group of its own
(so a Ctrl-C reaches this process only, which then stops the group in
order), with its output in a log file, and a worker count fit for the
machine; `stop` sends the group SIGTERM, then SIGKILL to what is left after
a grace period, so the port is closed when it returns. The group's leader
is a guard (`kerasflow.runtime.guard`) that stops the group by itself
within a few seconds when this process dies without stopping it (`kill -9`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

from kerasflow.runtime.guard import guarded
from kerasflow.runtime.processes import LOCALHOST, stop_group, wait_healthy

LOG_NAME = "mlflow-ui.log"
BOOT_TIMEOUT = 120.0


class UIError(RuntimeError):
    """The MLflow UI did not come up (its log's last lines are in the message)."""


def ui_workers(cpus: int | None = None) -> int:
    """The uvicorn worker count for a machine: half its usable cores, 1 to 4 (MLflow's default is 4).

    Args:
        cpus: Usable cores. Default: those this process may run on.
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cpus // 2))


def ui_log() -> Path:
    """Where the UI's output goes: `.kerasflow/logs/mlflow-ui.log` under `KERASFLOW_HOME`, else the working folder."""
    home = os.environ.get("KERASFLOW_HOME")
    return (Path(home).expanduser() if home else Path.cwd()).resolve() / ".kerasflow" / "logs" / LOG_NAME


class UIServer:
    """`mlflow ui` on 127.0.0.1, in a process group of its own.

    Args:
        store: The tracking store URI.
        port: The port.
        workers: uvicorn workers. Default `ui_workers()`.
        log: Its output file. Default `ui_log()`.
    """

    def __init__(self, store: str, port: int, workers: int | None = None, log: Path | None = None) -> None:
        self.store, self.port = store, port
        self.workers = workers or ui_workers()
        self.log = log or ui_log()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The UI's address."""
        return f"http://{LOCALHOST}:{self.port}"

    def start(self, timeout: float = BOOT_TIMEOUT, progress: Callable[[float], None] | None = None) -> None:
        """Starts the UI and waits until its health endpoint answers.

        Args:
            timeout: Seconds to wait for it. Default 120.
            progress: Called with the seconds waited, every 5 s until it answers.

        Raises:
            UIError: It exited or did not answer within `timeout` seconds
                (it is stopped; its log's last lines are in the message).
        """
        from kerasflow.runtime.stack import port_in_use

        if port_in_use(self.port):
            raise UIError(f"port {self.port} on {LOCALHOST} is already in use: stop what runs there or pass --port")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # GenAI job runners: 8 processes, ~19 CPU s
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.store, "--host", LOCALHOST,
               "--port", str(self.port), "--workers", str(self.workers)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(guarded(cmd), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_healthy(f"{self.url}/health", self.process.poll, self.log, timeout=timeout, error=UIError,
                         progress=progress)
        except BaseException:
            self.stop()
            raise

    def wait(self) -> int:
        """Blocks until the UI exits on its own (or a signal interrupts); returns its exit status.

        The guard ends as the UI does, with the same status.
        """
        assert self.process is not None, "start() first"
        return self.process.wait()

    def stop(self, grace: float = 10.0) -> None:
        """Stops the whole group: SIGTERM, then SIGKILL after `grace` seconds to anything left; reaps the server.

        Safe to call twice, and from a `finally` after an interrupt.
        """
        proc, self.process = self.process, None
        if proc is not None:
            stop_group(proc, grace)  # uvicorn's workers finish too


