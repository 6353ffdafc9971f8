"""Training that survives a kill: checkpoints at epoch ends in a persistent state folder.

A fit given a checkpoint folder saves its weights, optimizer state, history
and callback counters at the end of an epoch (`keras.callbacks.BackupAndRestore`
plus `ResumeState`), at most every `KERASFLOW_CHECKPOINT_SECONDS` (default
5 s; 0: every epoch): the first epoch that ends that long after the fit's
start or the last checkpoint is saved, so a kill loses at most that much
training and a fit of short epochs does not spend its time writing
checkpoints. The same fit started again after a kill continues at the last
checkpointed epoch. A finished k-fold fold keeps its result there, so
a rerun reuses it. Folders live under `<state>/checkpoints/<pipeline>/<key>/`,
where `<state>` is `$KERASFLOW_HOME/.kerasflow` (the folder `kerasflow serve`
uses) or `./.kerasflow`, and `<key>` hashes the data fingerprint and the
config hash (the data kind's `checkpoint_key`, `kerasflow.training.kinds`).
A fit writes its checkpoint folder under that folder's lock (`writing`):
a second run of the same pipeline, data and config at the same time
checkpoints in a folder of its own (`<key>.run-<run id>`) instead, and the
pipeline's checkpoints are cleared without the folders a live run holds.
Plain functions: no Prefect, no MLflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from kerasflow.locks import LockTimeout, file_lock, holder

BACKUP = "backup"  # BackupAndRestore's own folder inside a checkpoint
OWNER_FILE = "owner.json"
LOCK_FILE = "writer.lock"  # held by the process whose fit writes the folder
STATE_FILE = "state.json"
BEST_WEIGHTS = "best_weights.npz"
FOLD_RESULT = "fold_result.json"
FOLD_MODEL = "fold_model.keras"  # a finished fold's model, kept for an ensemble of the folds
_COUNTERS = ("wait", "best", "best_epoch", "cooldown_counter", "stopped_epoch")
INTERVAL_ENV = "KERASFLOW_CHECKPOINT_SECONDS"
DEFAULT_INTERVAL = 5.0  # a checkpoint costs 0.05-0.2 s: at most a few % of the fit, and a kill loses at most 5 s


def state_home() -> Path:
    """Returns the project's state folder: `$KERASFLOW_HOME/.kerasflow`, else `./.kerasflow`."""
    home = os.environ.get("KERASFLOW_HOME")
    return (Path(home).expanduser() if home else Path.cwd()).resolve() / ".kerasflow"


def in_project(path: str | Path) -> Path:
    """Resolves a configured path of kerasflow's own state (e.g. `tuning.directory`) against the project.

    A relative path is taken from `$KERASFLOW_HOME` when it is set, else
    the working directory. A team worker runs each flow in a throwaway clone
    with `KERASFLOW_HOME` at its own folder, so state kept there survives.
    """
    path = Path(path).expanduser()
    return path if path.is_absolute() else state_home().parent / path


def digest(payload: Any) -> str:
    """Returns a short sha256 of a JSON-serializable value (keys sorted)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def checkpoint_root(pipeline: str, data_digest: str, config_hash: str) -> Path:
    """Returns the folder of one pipeline's checkpoints for this data and config.

    Args:
        pipeline: The pipeline name.
        data_digest: Fingerprint of the raw data.
        config_hash: `PipelineConfig.fingerprint()`.

    Returns:
        `<state>/checkpoints/<pipeline>/<key>`.
    """
    return state_home() / "checkpoints" / pipeline / digest({"data": data_digest, "config": config_hash})


def final_checkpoint(root: Path, hyperparameters: dict[str, Any] | None, refit: str, epochs: int | None) -> Path:
    """Returns the checkpoint folder of the final fit under `root` (one per hyperparameters and refit)."""
    return root / f"final-{digest({'hp': hyperparameters or {}, 'refit': refit, 'epochs': epochs})}"


def fold_checkpoint(root: Path, fold: int, hyperparameters: dict[str, Any] | None) -> Path:
    """Returns the checkpoint folder of one k-fold fold under `root`."""
    return root / f"fold-{fold}-{digest({'hp': hyperparameters or {}})}"


@dataclass
class ResumePoint:
    """Where an interrupted fit stopped.

    Args:
        run_id: The tracking run that wrote the checkpoint.
        epoch: Epochs completed (the next fit starts at this 0-based epoch).
    """

    run_id: str
    epoch: int


def completed_epochs(folder: str | Path) -> int:
    """Returns the epochs a checkpoint folder has completed, 0 if none."""
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = Path(folder) / BACKUP / name
        try:
            return int(json.loads(path.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def claim(folder: str | Path, run_id: str) -> ResumePoint | None:
    """Makes `run_id` the writer of a checkpoint folder and returns where the previous writer stopped.

    Args:
        folder: The checkpoint folder (created if missing).
        run_id: The run that trains now.

    Returns:
        The previous run and its completed epochs, or None when there is
        nothing to resume (no checkpoint, or not one completed epoch).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    owner = folder / OWNER_FILE
    previous = None
    if owner.is_file():
        try:
            previous = json.loads(owner.read_text()).get("run_id")
        except (OSError, ValueError):
            previous = None
    epoch = completed_epochs(folder)
    write_json(owner, {"run_id": run_id})
    return ResumePoint(run_id=str(previous or ""), epoch=epoch) if epoch > 0 else None


@contextlib.contextmanager
def writing(folder: str | Path, run_id: str, fresh: bool = False,
            notice: Callable[[str], None] | None = None) -> Iterator[tuple[Path, ResumePoint | None]]:
    """Holds a checkpoint folder for one fit: its lock, and where an earlier fit stopped (`claim`).

    When another live process holds the folder (a run of the same pipeline,
    data and config at the same time), this fit checkpoints in a folder of
    its own, `<folder>.run-<run id>`, from epoch 0, and `notice` says who
    holds the shared one. A killed holder's lock is released by the kernel,
    so a rerun after a kill resumes from the shared folder.

    Args:
        folder: The checkpoint folder (`final_checkpoint`, `fold_checkpoint`).
        run_id: The run that trains now.
        fresh: Empty the folder first (never another live run's). Default false.
        notice: Called with a line when the shared folder is taken. Default: stderr.

    Yields:
        `(the folder to checkpoint in, where an earlier fit stopped or None)`.
    """
    folder = Path(folder)
    for candidate in (folder, folder.with_name(f"{folder.name}.run-{run_id[:16]}")):
        lock = candidate / LOCK_FILE
        try:
            with file_lock(lock, purpose=f"train MLflow run {run_id}", timeout=0):
                if fresh or candidate != folder:
                    empty(candidate)
                yield candidate, claim(candidate, run_id)
                return
        except LockTimeout:
            (notice or _to_stderr)(f"the checkpoint folder {folder} is in use by {holder(lock)}: this run "
                                   f"checkpoints in its own folder and starts at epoch 1")
    raise RuntimeError(f"the run-scoped checkpoint folder of run {run_id} is in use")  # run ids are unique


def _to_stderr(line: str) -> None:
    print(f"kerasflow: {line}", file=sys.stderr, flush=True)


def empty(folder: str | Path) -> None:
    """Deletes what a checkpoint folder holds, but its lock file."""
    folder = Path(folder)
    for item in (folder.iterdir() if folder.is_dir() else []):
        if item.name != LOCK_FILE:
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)


def in_use(folder: str | Path) -> bool:
    """Whether a live process holds a checkpoint folder's lock."""
    lock = Path(folder) / LOCK_FILE
    if not lock.is_file():
        return False
    try:
        with file_lock(lock, timeout=0):
            return False
    except LockTimeout:
        return True


def clear(folder: str | Path) -> None:
    """Deletes a checkpoint folder, and its pipeline folder once empty."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (folder.parent, folder.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


def clear_checkpoints(root: str | Path) -> None:
    """Deletes a pipeline's checkpoints once its model is trained, keeping finished folds' results.

    A fold's result (a small JSON, and its model when saved) stays, so a rerun of the same data and
    config (after a later step failed) reuses the folds instead of
    training them again; `--fresh` deletes them.

    Args:
        root: The pipeline's checkpoint folder (`checkpoint_root`).
    """
    root = Path(root)
    for folder in (root.iterdir() if root.is_dir() else []):
        if not folder.is_dir() or in_use(folder):  # another run trains there now
            continue
        if (folder / FOLD_RESULT).is_file():
            for item in folder.iterdir():
                if item.name not in (FOLD_RESULT, FOLD_MODEL, LOCK_FILE):
                    shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
        else:
            clear(folder)


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically (a kill leaves the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=_plain_json))
    os.replace(tmp, path)


def save_fold_result(folder: str | Path, result: dict[str, Any], run_id: str) -> None:
    """Persists a finished fold's result (best epoch, scores, predictions) for reuse by a rerun."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / FOLD_RESULT, {"run_id": run_id, "result": result})
    shutil.rmtree(folder / BACKUP, ignore_errors=True)


def load_fold_result(folder: str | Path) -> tuple[dict[str, Any], str] | None:
    """Returns `(result, run_id)` of a fold finished by an earlier run, or None."""
    try:
        saved = json.loads((Path(folder) / FOLD_RESULT).read_text())
    except (OSError, ValueError):
        return None
    return saved["result"], str(saved.get("run_id", ""))


def checkpoint_interval() -> float:
    """Seconds between two checkpoints of a fit: `KERASFLOW_CHECKPOINT_SECONDS`, default 5 (0: every epoch).

    Raises:
        ValueError: The variable is not a number >= 0.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: use a number of seconds >= 0 (0 checkpoints every epoch)")
    return seconds


def resume_callback(folder: str | Path, callbacks: list[Any], every: float | None = None) -> Any:
    """Returns a `ResumeState` callback checkpointing into `folder`; see `ResumeState`.

    Args:
        folder: The checkpoint folder.
        callbacks: The fit's other callbacks, whose counters are saved and restored.
        every: Seconds between checkpoints. Default `checkpoint_interval()`.
    """
    import keras  # deferred: keeps TensorFlow off import paths that never fit

    interval = checkpoint_interval() if every is None else every

    class ResumeState(keras.callbacks.BackupAndRestore):
        """`BackupAndRestore` that also restores the history and the counters of `callbacks`.

        Put it after the other callbacks: on train begin it restores their
        counters (early stopping's patience and best value, learning-rate
        reduction's wait) after they reset themselves; at the end of an
        epoch it records the history, and it saves once the others have run
        when `interval` seconds have passed since the fit began or the last
        checkpoint (every epoch with 0).
        """

        def __init__(self) -> None:
            super().__init__(str(Path(folder) / BACKUP), save_freq="epoch", double_checkpoint=True,
                             delete_checkpoint=False)
            self.state_path = Path(folder) / STATE_FILE
            self.best_path = Path(folder) / BEST_WEIGHTS
            self.others = [c for c in callbacks if c is not self]
            self.history: dict[str, list[float]] = {}
            self.initial_epoch = 0
            self.saved_at = time.monotonic()
            self.saved_best: dict[int, Any] = {}  # the best epoch whose weights are on disk, by callback

        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            self.saved_at = time.monotonic()
            self.initial_epoch = int(getattr(self.model, "_initial_epoch", 0) or 0)
            if not self.initial_epoch or not self.state_path.is_file():
                return
            state = json.loads(self.state_path.read_text())
            self.history = {k: [float(v) for v in vals[:self.initial_epoch]] for k, vals in state["history"].items()}
            for callback, counters in zip(self.others, state.get("callbacks", [])):
                for name, value in counters.items():
                    setattr(callback, name, value)
                if getattr(callback, "restore_best_weights", False) and self.best_path.is_file():
                    with np.load(self.best_path) as saved:
                        callback.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            for name, value in (logs or {}).items():
                self.history.setdefault(name, []).append(float(value))
            if time.monotonic() - self.saved_at < interval:
                return  # not saved: `BackupAndRestore.on_epoch_end` is what writes its checkpoint
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            counters = [{name: _plain(getattr(c, name)) for name in _COUNTERS if hasattr(c, name)}
                        for c in self.others]
            for index, callback in enumerate(self.others):
                if getattr(callback, "restore_best_weights", False) and callback.best_weights is not None \
                        and self.saved_best.get(index) != callback.best_epoch:  # a new best since the last save
                    tmp = self.best_path.with_name("best_weights.tmp.npz")
                    np.savez(tmp, *callback.best_weights)
                    os.replace(tmp, self.best_path)
                    self.saved_best[index] = callback.best_epoch
            write_json(self.state_path, {"epoch": epoch + 1, "history": self.history, "callbacks": counters})
            super().on_epoch_end(epoch, logs)
            self.saved_at = time.monotonic()

    return ResumeState()


def _plain_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _plain(value: Any) -> Any:
    try:
        return float(value) if value is not None and not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None
