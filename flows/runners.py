"""Prefect task runners built from the config's `runner` section."""

from __future__ import annotations

import logging
from typing import Any

from kerasflow.quiet import quiet_dask
from kerasflow.schemas.tuning import RunnerConfig


def task_runner(cfg: RunnerConfig) -> Any:
    """Returns the task runner that concurrent tasks (k-fold folds) run on.

    Args:
        cfg: The `runner` section.

    Returns:
        A `ThreadPoolTaskRunner` with `n_workers` threads for `local`; for
        `dask`, a prefect-dask `DaskTaskRunner` on the cluster at `address`,
        or on a temporary local cluster of `n_workers` single-threaded
        workers (processes unless `processes` is false).
    """
    if cfg.kind == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.n_workers)
    from prefect_dask import DaskTaskRunner

    quiet_dask()
    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.n_workers, "threads_per_worker": 1,
                                          "processes": cfg.processes, "dashboard_address": None,
                                          "silence_logs": logging.ERROR})
