"""What the benchmark scripts share: running a command while sampling its memory."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], env: dict[str, str], cwd: str | Path = ROOT) -> tuple[float, float, str]:
    """Runs a command; returns wall seconds, peak RSS (MB) of its process tree, and its output.

    Args:
        cmd: The command.
        env: Its environment.
        cwd: Its working folder. Default the repository root.

    Raises:
        SystemExit: The command failed; the end of its output is shown.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0.0]

    def poll() -> None:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}")
    return seconds, peak[0], out
