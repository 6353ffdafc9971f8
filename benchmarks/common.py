"""What the benchmark scripts share: running a command while sampling its memory."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
LAST_CPU = [0.0]  # CPU seconds (user + sys) of the last measured command's process tree
CPU_TRACE: list[tuple[float, float]] = []  # (epoch seconds, CPU seconds of the tree so far) of the last command
PEAK_AT = [0.0]  # when (epoch seconds) the last measured command's tree reached its peak RSS
RSS_TRACE: list[tuple[float, float]] = []  # (epoch seconds, RSS MB of the tree) of the last command


def children_cpu() -> float:
    """CPU seconds (user + sys) of every finished child process this process waited for, and their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds() -> float:
    """CPU seconds (user + sys) of the process tree of the last command `measure` ran.

    Load on a shared machine stretches wall time but hardly CPU time, so this is the figure to compare
    between runs on a busy machine. It counts the processes the command waited for (a detached server,
    such as the shared Prefect server, is not counted).
    """
    return LAST_CPU[0]


def cpu_between(start: float, end: float) -> float:
    """CPU seconds (user + sys) the last measured command's process tree used from `start` to `end` (epoch seconds).

    From the samples `measure` takes every 50 ms (`CPU_TRACE`); a process's CPU counts
    until its last sample, so a short-lived child may be missed.
    """
    def at(moment: float) -> float:
        before = [cpu for when, cpu in CPU_TRACE if when <= moment]
        return before[-1] if before else 0.0

    return at(end) - at(start)


def peak_between(start: float, end: float) -> float:
    """The highest RSS (MB) of the last measured command's process tree sampled from `start` to `end` (epoch s)."""
    return max((rss for when, rss in RSS_TRACE if start <= when <= end), default=float("nan"))


def measure(cmd: list[str], env: dict[str, str], cwd: str | Path = ROOT) -> tuple[float, float, str]:
    """Runs a command; returns wall seconds, peak RSS (MB) of its process tree, and its output.

    The CPU seconds of its process tree are then read with `cpu_seconds()`, and
    those of a time window with `cpu_between`.

    Args:
        cmd: The command.
        env: Its environment.
        cwd: Its working folder. Default the repository root.

    Raises:
        SystemExit: The command failed; the end of its output is shown.
    """
    start, cpu_before = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]
    CPU_TRACE.clear()
    RSS_TRACE.clear()
    used: dict[int, float] = {}  # CPU seconds of every process of the tree at its last sample

    def poll() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
                RSS_TRACE.append((time.time(), rss))
                if rss > peak[0]:
                    peak[0], PEAK_AT[0] = rss, time.time()
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        times = p.cpu_times()
                        used[p.pid] = max(used.get(p.pid, 0.0), times.user + times.system)
                CPU_TRACE.append((time.time(), sum(used.values())))
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    LAST_CPU[0] = children_cpu() - cpu_before
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}")
    return seconds, peak[0], out
