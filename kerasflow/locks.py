"""File locks between processes: who holds one, and waiting for it with a message that names the holder.

A lock is `fcntl.flock` on a file; the holder writes its pid, host and
purpose into the file, so a process that must wait can say for whom. The
kernel releases the lock when its holder's descriptor closes, including
when the holder is killed: a lock file left behind is never a stale lock.
This module imports nothing of ours: every layer may use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["LockTimeout", "file_lock", "holder"]

NOTICE_AFTER = 2.0  # seconds of waiting before the waiting process says for whom


class LockTimeout(Exception):
    """Another process held a lock for longer than the caller would wait; the message names it."""


def holder(path: Path) -> str:
    """Describes the process named in a lock file: `pid 123 on host-a (training ...)`, or `another process`."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
        text = f"pid {info['pid']} on {info['host']}"
        return f"{text} ({info['purpose']})" if info.get("purpose") else text
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def file_lock(path: Path, purpose: str = "", timeout: float | None = None,
              notice: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Holds the exclusive lock on `path` (created with its folder), waiting for another holder.

    Args:
        path: The lock file.
        purpose: What the holder does, written into the file for waiters.
        timeout: Seconds to wait at most; None waits as long as it takes.
        notice: Called once with a line naming the holder when the wait
            passes `NOTICE_AFTER` seconds. Default: a line on stderr.

    Yields:
        The lock file's path.

    Raises:
        LockTimeout: The lock stayed held for `timeout` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, purpose, timeout, notice or _to_stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                                  "since": time.time()}).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, path: Path, purpose: str, timeout: float | None, notice: Callable[[str], None]) -> None:
    start = time.monotonic()
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - start
            if timeout is not None and waited > timeout:
                raise LockTimeout(f"{path} stayed locked by {holder(path)} for {timeout:.0f} s") from None
            if not told and waited > NOTICE_AFTER:
                told = True
                notice(f"waiting for {holder(path)} to release {path}" + (f" (to {purpose})" if purpose else ""))
            time.sleep(0.05)


def _to_stderr(line: str) -> None:
    print(f"kerasflow: {line}", file=sys.stderr, flush=True)
