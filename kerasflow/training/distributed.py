"""The search on Dask workers: keras-tuner's chief serves the oracle, workers train its trials.

The chief (`start_chief`) runs in a process of its own and serves the
oracle on a free port (`free_address`); each worker (`run_search_worker`)
asks it for trials until none are left. `observe_search` reads the trials
the chief records. Nothing here imports MLflow, Prefect or Dask: the tasks
place the workers.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from kerasflow.heavy import import_tensorflow
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.search import SearchData, TrialHook, TuningError, build_tuner, check_objective, claim_project

ORACLE_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@contextlib.contextmanager
def oracle_role(tuner_id: str, address: tuple[str, int]) -> Iterator[None]:
    """Sets keras-tuner's distributed-mode variables for the block (`chief` or a worker id), then restores them.

    keras-tuner reads them when a tuner is made and when `search` starts: the
    chief serves the oracle on `address`, a worker asks it for trials.
    """
    saved = {name: os.environ.get(name) for name in ORACLE_ENV}
    os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=address[0],
                      KERASTUNER_ORACLE_PORT=str(address[1]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_chief(config: PipelineConfig, data: SearchData, project_dir: str | Path, *, fingerprint: str,
                fresh: bool, address: tuple[str, int]) -> Any:
    """Serves the search's oracle as keras-tuner's chief, in a process of its own, for workers elsewhere.

    This is keras-tuner's own distributed mode: one oracle hands out trials
    in the order it makes them, so a seeded random search gives each trial
    the values the local search gives it; workers (`run_search_worker`)
    train them. The oracle saves its state in `project_dir` as a local
    search does, so a killed search resumes, and `observe_search` reads it.
    The chief's output is discarded (keras-tuner prints debugging values
    while serving conditional hyperparameters).

    Args:
        config: The pipeline config with a `tuning` section.
        data: The search's partitions (the chief only needs its space).
        project_dir: Folder of the tuner's state (shared with the workers).
        fingerprint: `search_fingerprint` of this search.
        fresh: Delete any saved state and start over.
        address: `(host, port)` to serve on.

    Returns:
        The chief's process (a daemon); terminate it once the workers are done.

    Raises:
        TuningError: The objective or the saved state does not fit, or the
            oracle did not start serving within two minutes.
    """

    check_objective(config.tuning, data.specs[0].labels)
    project = Path(project_dir)
    claim_project(project, fingerprint, fresh)
    space_only = replace(data, folds=[])
    chief = multiprocessing.get_context("spawn").Process(target=_serve_chief, args=(config, space_only, project, address),
                                                         name="kerasflow-oracle", daemon=True)
    chief.start()
    deadline = time.monotonic() + 120
    while not _listening(address):
        if not chief.is_alive() or time.monotonic() > deadline:
            chief.terminate()
            raise TuningError(f"the tuner's oracle did not start serving on {address[0]}:{address[1]}")
        time.sleep(0.1)
    return chief


def observe_search(config: PipelineConfig, data: SearchData, project_dir: str | Path) -> Any:
    """A tuner over a search's saved state, to read the trials a chief records (`oracle.reload()`); it never saves."""
    with contextlib.redirect_stdout(io.StringIO()):
        tuner = build_tuner(config, replace(data, folds=[]), Path(project_dir))
    tuner.oracle.reload()  # the state the chief saved (under its own tuner id), trials of an earlier run included
    return tuner


def _serve_chief(config: PipelineConfig, data: SearchData, project: Path, address: tuple[str, int]) -> None:
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), oracle_role("chief", address):
        import_tensorflow()
        build_tuner(config, data, project).search(verbose=0)


def run_search_worker(config: PipelineConfig, data: SearchData, project_dir: str | Path, tuner_id: str,
                      address: tuple[str, int], hook: TrialHook | None = None) -> set[str]:
    """Trains trials handed out by the chief's oracle (`start_chief`) until it has none left.

    Args:
        config: The pipeline config with a `tuning` section.
        data: The search's partitions.
        project_dir: Folder of the tuner's state (the chief's).
        tuner_id: This worker's name, unique in the search.
        address: The chief's `(host, port)`.
        hook: Receives this worker's trial, epoch and fold events. Default none.

    Returns:
        The ids of the trials this worker ran.
    """
    with oracle_role(tuner_id, address):
        with contextlib.redirect_stdout(io.StringIO()):
            tuner = build_tuner(config, data, Path(project_dir), hook=hook)
        tuner.search(verbose=0)
    return set(tuner.new_trial_ids)


def free_address(toward: str | None = None) -> tuple[str, int]:
    """A free TCP port for the chief's oracle, on the interface its workers reach.

    Args:
        toward: The Dask scheduler's address (`tcp://host:8786`). Default
            none: a local cluster, served on loopback.

    Returns:
        `(ip, port)`: loopback for a local cluster, else this machine's
        address on the route to the scheduler (the workers share its network).

    Raises:
        TuningError: The scheduler's host cannot be resolved.
    """
    host = "127.0.0.1"
    if toward:
        target = urlsplit(toward if "://" in toward else f"tcp://{toward}")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as route:  # no packet is sent
                route.connect((target.hostname or "127.0.0.1", target.port or 8786))
                host = route.getsockname()[0]
        except OSError as exc:
            raise TuningError(f"cannot reach the Dask scheduler {toward}: {exc}") from None
    with socket.socket() as probe:
        probe.bind((host, 0))
        return host, probe.getsockname()[1]


def check_reachable(paths: list[str]) -> None:
    """Checks that a Dask worker sees the search's files, which a worker on another host sees only on a shared filesystem.

    Raises:
        TuningError: A path is missing here; the host and the path are named.
    """
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        raise TuningError(f"the Dask worker on {socket.gethostname()} cannot read {missing[0]}: workers of "
                          "runner.address read the search's files by the paths of the machine that runs the "
                          "search; run them there, or put the project on a filesystem they share")


def _listening(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(address) == 0
