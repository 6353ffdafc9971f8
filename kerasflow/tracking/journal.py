"""A step's logging, recorded in its cache folder so a cached step logs the same into a later run.

A step run through the step cache logs into MLflow as usual and, through a
journaling `Tracker`, also appends each call (params, metrics, tags, JSON
and text artifacts, files, the dataset) to `journal.<run>.partial` in its
folder. Once the step succeeds the journal is sealed as `journal.jsonl`;
when a later run takes the step's result from the cache, the journal is
replayed into that run, so every run shows the full set of results whether
a step ran or was reused. Plain files: no MLflow import here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

JOURNAL = "journal.jsonl"
LOGGED = "logged"  # copies of the files a step logged
OPS = frozenset({"params", "counts", "metrics", "tags", "json", "text", "artifact", "dataset", "table"})


def start_journal(folder: str | Path, run_id: str) -> str:
    """Starts the journal of one execution of a step and returns its path.

    Args:
        folder: The step's cache folder (created if missing).
        run_id: The MLflow run the step logs into, recorded as the origin.

    Returns:
        Path of `journal.<run_id>.partial`, for `Tracker.journaled`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"journal.{run_id}.partial"
    path.write_text(json.dumps({"op": "origin", "run_id": run_id, "time": time.time()}) + "\n")
    return str(path)


def record(journal: str, op: str, **payload: Any) -> None:
    """Appends one logging call to a journal.

    Args:
        journal: Path from `start_journal`.
        op: The `Tracker` method, one of `OPS`.
        **payload: Its keyword arguments, JSON-serializable.
    """
    with open(journal, "a", encoding="utf-8") as out:
        out.write(json.dumps({"op": op, **payload}, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    """JSON fallback: numpy scalars and arrays as Python values, anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def keep_file(journal: str, path: str | Path) -> str:
    """Copies a logged file (or folder) beside the journal and returns its path relative to the step folder."""
    folder = Path(journal).parent
    target = folder / LOGGED / str(sum(1 for _ in _lines(journal))) / Path(path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(path).is_dir():
        shutil.copytree(path, target, dirs_exist_ok=True)
    elif Path(path).resolve() != target.resolve():
        shutil.copy2(path, target)
    return str(target.relative_to(folder))


def seal_journal(journal: str) -> Path:
    """Makes a finished execution's journal the step's journal (`journal.jsonl`), atomically."""
    final = Path(journal).parent / JOURNAL
    os.replace(journal, final)
    return final


def discard_journal(journal: str) -> None:
    """Removes the journal of an execution that failed."""
    Path(journal).unlink(missing_ok=True)


def read_journal(folder: str | Path) -> tuple[str | None, list[dict[str, Any]]] | None:
    """Reads a step's sealed journal.

    Args:
        folder: The step's cache folder.

    Returns:
        `(origin run id, calls)`, or None when the folder holds no sealed journal.
    """
    path = Path(folder) / JOURNAL
    if not path.is_file():
        return None
    entries = [json.loads(line) for line in _lines(str(path))]
    origin = next((e.get("run_id") for e in entries if e.get("op") == "origin"), None)
    return origin, [e for e in entries if e.get("op") in OPS]


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as lines:
        yield from (line for line in lines if line.strip())
