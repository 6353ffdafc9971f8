"""What a run records: params, metrics (per step and per epoch), the config and JSON artifacts.

Every helper takes the client and run id explicitly: MLflow's active-run
stack is per thread, and Prefect runs tasks in worker threads.
"""

from __future__ import annotations

import json
import math
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any

import yaml

from kerasflow.budget import tracking_budget
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tracking.journal import record
from kerasflow.tracking.store import TrackingUnavailable, unreachable


def log_config(client: Any, run_id: str, config: PipelineConfig) -> None:
    """Logs a config as flat `section.key` params plus the YAML itself."""

    data = config.model_dump(mode="json")
    params = {k: v for k, v in flatten(data).items() if k.split(".")[0] not in ("name",)}
    log_params(client, run_id, params)
    client.log_text(run_id, yaml.safe_dump(data, sort_keys=False), "config/config.yaml")


def log_params(client: Any, run_id: str, params: dict[str, Any], prefix: str = "") -> None:
    """Logs params in one batch, values rendered as strings up to MLflow's limit."""
    from mlflow.entities import Param

    items = [Param(f"{prefix}{k}", _param_text(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start:start + 100])


def log_counts(client: Any, run_id: str, counts: dict[str, float], prefix: str = "") -> None:
    """Logs counts (rows, files, rules, findings) as params, not metrics.

    A count is one number per run: as a metric it is a one-bar chart that
    crowds the MLflow charts view. As a param (`data.rows`, `lint.warning`)
    it is a column of the runs table and compare view, and searchable
    (`params.data.rows = '150'`). Whole numbers are written without a
    decimal point; values that are None or not finite are left out.

    Args:
        client: An `MlflowClient`.
        run_id: The run to log into.
        counts: Name -> count.
        prefix: Name prefix, e.g. `data.`.
    """
    shown = {k: _count_text(v) for k, v in counts.items() if v is not None and math.isfinite(float(v))}
    log_params(client, run_id, shown, prefix)


def _count_text(value: float) -> str:
    """`3.0` -> `3`, `0.25` -> `0.25`, `True` -> `1`."""
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], prefix: str = "", step: int = 0,
                synchronous: bool = True) -> list[Any]:
    """Logs finite metrics in one batch, names prefixed by step.

    The prefix's first `.` becomes `/` (`train.` gives `train/loss`,
    `champion.test.` gives `champion/test.accuracy`), so the MLflow UI's
    chart view shows one section per step.

    Returns:
        With `synchronous=False`, the pending `RunOperations` to `wait()` on;
        otherwise an empty list.
    """

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    head = prefix.replace(".", "/", 1)  # `train.` -> `train/`: MLflow's chart view groups metrics by `step/`
    items = [Metric(f"{head}{k}", float(v), now, step) for k, v in metrics.items()
             if v is not None and math.isfinite(float(v))]
    pending = []
    for start in range(0, len(items), 500):
        op = client.log_batch(run_id, metrics=items[start:start + 500], synchronous=synchronous)
        if not synchronous and op is not None:
            pending.append(op)
    return pending


class EpochLogger:
    """A per-epoch hook that logs metrics asynchronously, once per epoch.

    Logging each epoch synchronously costs a database round trip inside the
    training loop; this queues it on MLflow's async logger instead. Call
    `wait()` before the run moves on.

    A queued epoch that could not be written (the store went away) is
    written again at the next epoch, synchronously, retried for the tracking
    budget (`kerasflow.tracking.client.patiently`): training waits for a
    store that comes back, and stops with `TrackingUnavailable` when the
    budget runs out; `undelivered()` counts what was queued but never
    confirmed.

    Args:
        client: An `MlflowClient`.
        run_id: The run to log into.
        prefix: Metric-name prefix, e.g. `train.`.
        journal: A step journal to record each epoch in. Default none.
    """

    def __init__(self, client: Any, run_id: str, prefix: str, journal: str | None = None):
        self.client, self.run_id, self.prefix, self.journal = client, run_id, prefix, journal
        self.pending: list[tuple[Future, dict[str, float], int]] = []  # (the queued writes, metrics, epoch)
        _epoch_loggers.add(self)

    def __call__(self, epoch: int, logs: dict[str, float]) -> None:
        self._check()
        ops = log_metrics(self.client, self.run_id, logs, self.prefix, step=epoch, synchronous=False)
        self.pending.append((_watched(ops), dict(logs), epoch))
        if self.journal is not None:
            record(self.journal, "metrics", metrics=logs, prefix=self.prefix, step=epoch)

    def _check(self) -> None:
        """Sends again the epochs whose queued write failed; forgets the epochs written."""
        still = []
        for written, logs, epoch in self.pending:
            failure = written.exception() if written.done() else None
            if failure is not None:
                self._resend(logs, epoch, failure)
            elif not written.done():
                still.append((written, logs, epoch))
        self.pending = still

    def _resend(self, logs: dict[str, float], epoch: int, failure: BaseException) -> None:
        """Writes an epoch whose queued write failed, synchronously: retried for the tracking budget.

        Raises:
            TrackingUnavailable: The store did not answer within the budget.
        """
        if not unreachable(failure):
            raise failure
        try:
            log_metrics(self.client, self.run_id, logs, self.prefix, step=epoch)
        except Exception as exc:
            raise _async_failure(self.run_id, exc) from exc

    def undelivered(self) -> int:
        """The number of queued epochs not confirmed written."""
        return sum(1 for written, _, _ in self.pending if not written.done() or written.exception() is not None)

    def wait(self) -> None:
        """Blocks until every queued epoch is written, for at most the tracking budget.

        Flushes MLflow's async queue first: it batches for up to
        `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS` (1 s, see `quiet.py`), which
        the end of training need not wait out. The flush runs in a daemon
        thread: with the store down, MLflow would retry every queued batch in
        turn. An epoch whose queued write failed is written again,
        synchronously, within the budget.

        Raises:
            TrackingUnavailable: An epoch could not be written because the
                store did not answer, or was not confirmed within the budget.
        """
        if not self.pending:
            return

        import mlflow

        deadline = time.monotonic() + tracking_budget() + 5
        flusher = threading.Thread(target=mlflow.flush_async_logging, name="kerasflow-flush", daemon=True)
        flusher.start()
        flusher.join(timeout=max(0.0, deadline - time.monotonic()))
        self._check()
        while self.pending:
            written, logs, epoch = self.pending[0]
            try:
                written.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TrackingUnavailable(
                    f"{self.undelivered()} epoch(s) of metrics of run {self.run_id} were not confirmed written "
                    f"within {tracking_budget()} s") from None
            except Exception as exc:
                self._resend(logs, epoch, exc)
            self.pending.pop(0)


def _watched(ops: list[Any]) -> Future:
    """A future that completes when MLflow's queued `RunOperations` are written (their public `wait()`).

    A daemon thread waits, so a store that never answers cannot hold the
    process at exit; `EpochLogger.wait` bounds the wait by the budget.
    """
    written: Future = Future()

    def wait() -> None:
        try:
            for op in ops:
                op.wait()
            written.set_result(None)
        except Exception as exc:  # noqa: BLE001 - handed over through the future
            written.set_exception(exc)

    threading.Thread(target=wait, name="kerasflow-epoch-write", daemon=True).start()
    return written


_epoch_loggers: "weakref.WeakSet[EpochLogger]" = weakref.WeakSet()


def undelivered_epochs() -> int:
    """Epochs of metrics queued by this process's `EpochLogger`s and never confirmed written."""
    return sum(logger.undelivered() for logger in list(_epoch_loggers))


def _async_failure(run_id: str, exc: BaseException) -> BaseException:
    if unreachable(exc):
        error = TrackingUnavailable(f"could not log the epoch metrics of run {run_id}: {exc}")
        error.__cause__ = exc
        return error
    return exc


def log_json(client: Any, run_id: str, data: Any, artifact_file: str) -> None:
    """Logs a JSON artifact."""
    client.log_text(run_id, json.dumps(data, indent=2, default=str), artifact_file)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts into `a.b.c` keys; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _param_text(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
    return text[:6000]
