"""The Great Expectations worker never outlives its job: real processes, real signals, a real step cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER_MARK = "kerasflow.data.expectations.worker"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [pid for pid in pids if not _gone(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if not _gone(pid)]


def _workers_of(parent: int) -> list[int]:
    """The validation workers started by process `parent` (its pid is on their command line), wherever they are."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(WORKER_MARK in part for part in cmdline) and cmdline[-1:] == [str(parent)]:
            found.append(proc.info["pid"])
    return found


def _prefect_servers() -> set[int]:
    servers = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any("prefect" in part for part in proc.info["cmdline"] or []):
            servers.add(proc.info["pid"])
    return servers


def test_a_cache_hit_validation_stops_the_warm_worker(prefect_harness, mlflow_store: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, validator_per_job) -> None:
    from prefect import flow

    from kerasflow.data.expectations import run as gx_run
    from kerasflow.flows.prepare import prepare_data
    from kerasflow.schemas.config import load_config
    from kerasflow.tasks.runs import open_pipeline_run

    monkeypatch.setenv("KERASFLOW_CACHE_DAYS", "7")  # the session turns the step cache off
    monkeypatch.setenv("KERASFLOW_HOME", str(tmp_path))
    config = load_config(str(ROOT / "configs/wine.yaml"), ["name=wine-gx-worker"])

    @flow(name="prepare-only")
    def prepare_only() -> None:
        with open_pipeline_run(config, "validate") as run:
            prepare_data(run, config)

    prepare_only()  # fills the step cache
    gx_run.start_validator()  # warm, as the CLI does before the flow
    pid = gx_run.validator_pid()
    assert pid is not None and not _gone(pid)
    prepare_only()  # validation is a cache hit: the worker is never used
    assert gx_run.validator_pid() is None
    assert _gone(pid), "the warm worker must be stopped once validation is reused from the cache"


def test_the_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from kerasflow.data.expectations.run import start_validator, validator_pid
        start_validator()
        print(validator_pid(), flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        worker = int(parent.stdout.readline())
        assert not _gone(worker) and _workers_of(parent.pid) == [worker]
        time.sleep(1.0)  # importing Great Expectations: a busy worker
    finally:
        parent.kill()
        parent.wait()
    assert _wait_gone([worker], 5) == [], "the worker outlived its parent's kill -9"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_group_during_a_job_stops_the_worker_quietly(signum: int) -> None:
    script = textwrap.dedent("""
        import signal, sys, time
        from kerasflow.data.expectations.run import run_validation, start_validator, validator_pid
        # both unwind, as the CLI's handlers do (set here: a SIGINT ignored by the test runner is inherited)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        start_validator()
        print(validator_pid(), flush=True)
        try:
            run_validation(time.sleep, 120)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            sys.exit(130)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True)  # a group of its own, as a terminal's job
    try:
        worker = int(proc.stdout.readline())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and psutil.Process(worker).status() != psutil.STATUS_SLEEPING:
            time.sleep(0.1)
        time.sleep(1.0)  # the job is running: the worker sleeps in it
        os.killpg(proc.pid, signum)  # the whole group, as Ctrl-C does
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, err) == (130, "stopped\n")  # no traceback of the worker, no leaked semaphore
    assert _wait_gone([worker], 5) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_a_validating_command_leaves_no_process_and_one_line(
        tmp_path: Path, mlflow_store: str, signum: int) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "KERASFLOW_SIGNAL_GRACE_SECONDS": "20"}
    command = [sys.executable, "-m", "kerasflow.runtime.cli", "validate", "configs/wine.yaml",
               "--set", "name=wine-gx-signal"]
    # A session of its own, so the signal goes to the whole process group, as a terminal's Ctrl-C does.
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
            if any("Task run 'load-data" in line for line in lines):  # the validate step runs now
                break
            time.sleep(0.05)
        assert proc.poll() is None and _workers_of(proc.pid), "".join(lines)
        seen |= {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
        seen -= _prefect_servers()  # the shared local Prefect server stays up for the next runs, by design
        os.killpg(proc.pid, signum)
        out = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = "".join(lines)
    assert proc.returncode == 128 + signum, err
    for noise in ("Traceback", "SpawnProcess", "leaked semaphore", "KeyboardInterrupt"):
        assert noise not in out + err, err
    assert "stopped by" in err
    assert _wait_gone(sorted(seen), 5) == [], "a child of the command outlived it"
    assert _workers_of(proc.pid) == []


def test_a_kept_worker_serves_many_jobs_and_is_replaced_or_killed_when_it_must() -> None:
    from kerasflow.data.expectations.run import (
        keep_validator,
        release_validator,
        run_validation,
        start_validator,
        validator_pid,
    )

    assert keep_validator(True) is True  # the session keeps it (tests/conftest.py)
    start_validator()
    pid = validator_pid()
    assert run_validation(abs, -2) == 2 and validator_pid() == pid
    release_validator()  # a step that did not validate: a kept worker stays
    with pytest.raises(ValueError):
        run_validation(int, "x")  # the job's own error: the worker answered, it stays
    assert validator_pid() == pid
    os.kill(pid, signal.SIGKILL)  # died while idle: replaced by the next job
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # it has ended (all its threads), left for the worker to reap
    assert run_validation(abs, -3) == 3
    fresh = validator_pid()
    assert fresh not in (None, pid)

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_validation(time.sleep, 120, while_waiting=interrupt)  # a job interrupted: its worker is killed
    assert validator_pid() is None and _gone(fresh)
    start_validator()
    kept = validator_pid()
    keep_validator(False)  # not kept any more: stopped at once
    assert validator_pid() is None and _gone(kept)
    keep_validator(True)
