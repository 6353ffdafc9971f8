"""`kerasflow ui` with real processes: the URL once it answers, MLflow's output in a log, and a stop that ends all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from kerasflow.runtime.processes import free_port
from kerasflow.runtime.stack import port_in_use
from kerasflow.runtime.ui import ui_workers

ROOT = Path(__file__).resolve().parents[1]


def test_worker_count_fits_the_machine() -> None:
    assert [ui_workers(n) for n in (1, 2, 3, 4, 8, 64)] == [1, 1, 1, 2, 4, 4]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_ui(tmp_path: Path, port: int) -> subprocess.Popen:
    """Starts `kerasflow ui` on a fresh store in `tmp_path`; returns once it has printed its URL."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "KERASFLOW_HOME": str(tmp_path)}
    # A session of its own: SIGINT goes to its whole process group, as a terminal's Ctrl-C does.
    proc = subprocess.Popen([sys.executable, "-m", "kerasflow.runtime.cli", "ui", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    first = proc.stdout.readline()
    assert str(tmp_path / ".kerasflow" / "logs" / "mlflow-ui.log") in first, first
    ready = proc.stdout.readline()  # printed only once the server answers
    while ready.startswith("  still starting the MLflow UI ("):  # progress meanwhile
        ready = proc.stdout.readline()
    assert ready.strip() == f"MLflow UI on http://127.0.0.1:{port}; Ctrl-C stops it", ready
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        assert response.status == 200
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_every_process_and_closes_the_port(tmp_path: Path, signum: int) -> None:
    port = free_port()
    log = tmp_path / ".kerasflow" / "logs" / "mlflow-ui.log"
    proc = None
    try:
        proc = _start_ui(tmp_path, port)
        children = psutil.Process(proc.pid).children(recursive=True)
        commands = [" ".join(command) for command in map(_command, children) if command]
        assert any("uvicorn" in c and "--workers 1" in c for c in commands) or ui_workers() > 1, commands
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C
        else:
            proc.send_signal(signum)  # a service manager's stop, to the command alone
        out, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped the MLflow UI" in out and "Traceback" not in out + err
    assert "Uvicorn running" not in out + err and "Uvicorn running" in log.read_text()  # MLflow's output: the log
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(child.pid) for child in children):
        time.sleep(0.1)
    assert [child.pid for child in children if _alive(child.pid)] == []
    assert not port_in_use(port)


@pytest.mark.slow
def test_a_killed_ui_command_leaves_no_process_and_no_open_port(tmp_path: Path) -> None:
    """`kill -9` of `kerasflow ui` skips its stop: the guard leading the server's group stops it instead."""
    port = free_port()
    proc = _start_ui(tmp_path, port)
    children = psutil.Process(proc.pid).children(recursive=True)
    try:
        assert any("kerasflow/runtime/guard.py" in " ".join(_command(child)) for child in children), children
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 10  # the guard notices within 0.25 s; uvicorn then ends within its grace
        while time.monotonic() < deadline and (any(_alive(child.pid) for child in children) or port_in_use(port)):
            time.sleep(0.1)
        assert [(child.pid, _command(child)) for child in children if _alive(child.pid)] == []
        assert not port_in_use(port)
    finally:
        for child in children:
            if _alive(child.pid):
                child.kill()


def test_the_guard_ends_as_its_command_does() -> None:
    from kerasflow.runtime.guard import guarded

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(guarded([sys.executable, "-c", "import sys; print('ran'); sys.exit(3)"]), env=env,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, "ran\n"), done.stderr
    killed = subprocess.run(guarded([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]),
                            env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGTERM, killed.stderr


def test_a_busy_port_is_refused_without_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
               "KERASFLOW_HOME": str(tmp_path)}
        proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "ui", "--port", str(port)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"port {port}" in proc.stderr and "already in use" in proc.stderr
    assert "MLflow UI on http" not in proc.stdout


def _command(process: psutil.Process) -> list[str]:
    """A process's command line; empty for one that has exited (a zombie not reaped yet, e.g. a short helper)."""
    try:
        return process.cmdline()
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return []
