"""Step-cache entries that check themselves: the content hashes of a cached step's files.

A cached step's folder (`kerasflow.tasks.caching`) is complete once its
manifest, `manifest.json`, records the size and sha256 of every file in it
(outputs, logged copies, the journal); the manifest is written last, to a
temporary file then renamed, so a step killed mid-write leaves no manifest.
Before a cached result is reused, `damage` compares the folder with its
manifest, and reads Prefect's result record: a missing, truncated or
changed file makes the step run again, with a warning that names it.
Plain files: no Prefect, no MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """The sha256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _entry_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
                  and not p.name.endswith((".partial", ".tmp")))


def write_manifest(folder: str | Path) -> Path:
    """Records the size and sha256 of every file of a finished step's folder, atomically.

    Args:
        folder: The step's cache folder.

    Returns:
        The manifest's path.
    """
    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": file_digest(p)}
             for p in _entry_files(folder)}
    path = folder / MANIFEST
    tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, path)
    return path


def complete(folder: str | Path) -> bool:
    """Whether a step's folder holds a finished entry (its manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def damage(folder: str | Path, record: str | Path | None = None) -> str | None:
    """Says what is wrong with a finished cache entry, or None when every file matches its manifest.

    Args:
        folder: The step's cache folder.
        record: Prefect's result record of the step, when it exists. Default none.

    Returns:
        One phrase naming the first damaged file (`<path> is missing`,
        `<path> is truncated (...)`, ...), or None.
    """
    folder = Path(folder)
    try:
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return f"{folder / MANIFEST} is missing (the step did not finish)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder / MANIFEST} is not a readable manifest"
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != expected.get("size"):
            return f"{path} is truncated or changed ({size} bytes, {expected.get('size')} recorded)"
        if file_digest(path) != expected.get("sha256"):
            return f"{path} does not match its recorded sha256"
    if record is not None and Path(record).is_file():
        try:
            json.loads(Path(record).read_bytes())
        except (OSError, ValueError):
            return f"Prefect's result record {record} is not readable"
    return None
