"""A Prefect API that stops answering mid-run: the work goes on, and the flow run is reconciled later.

The pipeline's work and its MLflow record do not depend on the Prefect API:

- the calls kerasflow itself makes to it (artifacts, closing the flow runs
  of dead processes) are best effort (`to_prefect`): the first failure is
  one warning, and later calls of the same process are skipped;
- the MLflow run ends by how the work ended (FINISHED, FAILED), and the
  outcome is remembered (`remember_outcome`) for the CLI, which turns the
  engine's own failure to report the flow run's final state into a
  one-paragraph message (`kerasflow.runtime.exits`);
- a nested flow (a k-fold run's `cross-validate`) is run by
  `run_nested_flow`: while the API does not answer its function runs in
  the current flow run, and a nested flow run cut off by an outage still
  hands its result on;
- the final state the flow run should have (and its nested flow runs') is
  kept on the MLflow run (`kerasflow.tracking.mark_prefect_pending`), and
  the next pipeline run of the experiment sets it once the API answers
  again (`reconcile_flow_run`, called by
  `kerasflow.tracking.reconcile_flow_runs`);
- once the outage is found, run logs are no longer queued for the API
  (`quiet_api_logs`), so Prefect's log worker stops retrying it.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from uuid import UUID

import httpx
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_REQUEST_TIMEOUT, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Completed, Crashed, Failed

T = TypeVar("T")
log = logging.getLogger(__name__)
_API_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.extra", "prefect.workers")  # Prefect's logging.yml
_down: str | None = None  # why the Prefect API was found not to answer, once it was


@dataclass(frozen=True)
class Outcome:
    """How the work of this process's last pipeline run ended, as its MLflow run records it.

    Args:
        run_id: The MLflow run.
        uri: Its tracking URI.
        status: `FINISHED`, `FAILED` or `KILLED`.
        flow_run_id: The Prefect flow run, if any.
        error: The exception that ended the work, if any.
    """

    run_id: str
    uri: str
    status: str
    flow_run_id: str | None = None
    error: BaseException | None = None


_outcome: Outcome | None = None
_nested_pending: list[tuple[str, str, str]] = []  # (flow run id, state, note) of nested flow runs an outage cut off
_on_unreported: Callable[[Outcome], None] | None = None


def when_unreported(callback: Callable[[Outcome], None] | None) -> None:
    """Registers what to do when a pipeline run ends and the Prefect API does not answer (the CLI: end the command).

    Without it (a flow called from Python) the flow returns or raises as usual.
    """
    global _on_unreported
    _on_unreported = callback


def remember_outcome(outcome: Outcome) -> None:
    """Records how this process's pipeline run ended (see `last_outcome`).

    When the run belongs to a flow run and the Prefect API does not answer
    now, Prefect's engine cannot report the flow run's final state: the
    callback of `when_unreported`, if any, is called at once, rather than
    after the engine's retries.
    """
    global _outcome
    _outcome = outcome
    if _on_unreported is not None and outcome.flow_run_id and not api_answers():
        _on_unreported(outcome)


def api_answers(timeout: float = 3.0) -> bool:
    """Whether the Prefect API answers its health check within `timeout` seconds (one attempt)."""
    try:
        with temporary_settings(updates={PREFECT_API_REQUEST_TIMEOUT: timeout, PREFECT_CLIENT_MAX_RETRIES: 0}):
            with get_client(sync_client=True) as client:
                failure = client.api_healthcheck()
    except Exception as exc:
        failure = exc
    if failure is not None:
        note_prefect_down(failure)
    return failure is None


def last_outcome() -> Outcome | None:
    """How this process's last pipeline run ended, or None if none ended."""
    return _outcome


def prefect_unreachable(exc: BaseException | None) -> bool:
    """Whether an exception (or one it was raised from) says the Prefect API did not answer.

    That is an HTTP transport error of Prefect's client (refused, reset,
    timed out), or a 5xx status once its retries
    (`PREFECT_CLIENT_MAX_RETRIES`) are spent. MLflow's client uses
    `requests`, not `httpx`, so its errors never match.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, httpx.TransportError):
            return True
        if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code >= 500:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def prefect_down() -> str | None:
    """Why the Prefect API was found not to answer in this process, or None."""
    return _down


def note_prefect_down(exc: BaseException) -> None:
    """Records that the Prefect API does not answer; later `to_prefect` calls are skipped."""
    global _down
    if _down is None:
        _down = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        quiet_api_logs()


class _NotToTheAPI(logging.Filter):
    """Keeps run logs from Prefect's API log handler once the API was found not to answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _down is None


def quiet_api_logs() -> None:
    """Stops queueing run logs for the Prefect API (it does not answer); the console still shows them.

    Each queued batch would be retried against the API by Prefect's log
    worker (`APILogWorker`), in the background and again when the process
    ends. Idempotent.
    """
    for name in _API_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, APILogHandler) and not any(isinstance(f, _NotToTheAPI) for f in handler.filters):
                handler.addFilter(_NotToTheAPI())


def to_prefect(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Makes one best-effort call to the Prefect API: its failure never fails the work.

    Args:
        what: What the call does, for the warning (e.g. `the summary artifact`).
        call: The call (a Prefect client or artifact function).
        *args: Its arguments.
        **kwargs: Its keyword arguments.

    Returns:
        Its result, or None when the API did not answer (now or before, in
        this process).

    Raises:
        Exception: Any error that does not say the API is unreachable.
    """
    if _down is not None:
        return None
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        if not prefect_unreachable(exc):
            raise
        note_prefect_down(exc)
        log.warning("the Prefect API does not answer (%s): skipped %s and any later Prefect call of this run; "
                    "the work and its MLflow record go on", _down, what)
        return None


def reconcile_flow_run(flow_run_id: str, state: str, note: str) -> None:
    """Sets a flow run that is not final yet to `state` (`Completed`, `Failed` or `Crashed`), with `note`.

    Raises:
        Exception: The Prefect API did not answer; the caller tries again later.
    """
    make = {"Completed": Completed, "Failed": Failed, "Crashed": Crashed}[state]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state is not None and run.state.is_final():
            return
        client.set_flow_run_state(run.id, make(message=note), force=True)
    log.warning("flow run %s (%s) set to %s: %s", run.name, flow_run_id, state, note)


def run_nested_flow(subflow: Flow[..., T], *args: Any) -> T:
    """Runs a nested flow whose work, like the pipeline's, does not depend on the Prefect API.

    - While the API answers: `subflow(*args)`, a flow run nested in the
      current one, on the nested flow's task runner.
    - When it does not (found before in this process, or by one health
      check now), or the nested flow run cannot be started: the flow's
      function runs in the current flow run, its tasks on the nested flow's
      task runner (`in_current_flow_run`), with one warning.
    - When the API stops answering while the nested flow runs, its work
      goes on, but Prefect's engine cannot report the nested flow run's
      final state and raises: the function's result is returned (or its
      error raised) all the same, and the state the nested flow run should
      have is kept for the pipeline's MLflow run (`take_nested_pending`).

    Args:
        subflow: The nested flow.
        *args: Its arguments.

    Returns:
        What the flow's function returned.

    Raises:
        Exception: What the flow's function raised.
    """
    if _down is None and api_answers():
        started: list[str] = []
        ended: list[tuple[bool, Any]] = []  # (returned, its value or error) once the function ended
        engine = logging.getLogger("prefect.flow_runs")
        unreported = _Unreported(ended)
        engine.addFilter(unreported)
        try:
            return _keeping(subflow, started, ended)(*args)
        except Exception as exc:
            if not prefect_unreachable(exc) or (ended and not ended[0][0] and ended[0][1] is exc):
                raise
            note_prefect_down(exc)
            if ended:
                return _cut_off(subflow.name, started[0], *ended[0])
            if started:  # cannot be: the function ends before the engine reports
                raise
        finally:
            engine.removeFilter(unreported)
    log.warning("the Prefect API does not answer (%s): %s runs in the current flow run, not as a nested flow run",
                _down, subflow.name)
    return in_current_flow_run(subflow, *args)


class _Unreported(logging.Filter):
    """Drops the engine's lines about a nested flow run whose work ended, when it cannot report that end.

    Once the flow's function returned, an exception the engine logs is its
    failure to report the final state; once it ended, `Finished in state
    Running()` says the same. `run_nested_flow` says it once, in its own words.
    """

    def __init__(self, ended: list[tuple[bool, Any]]):
        super().__init__()
        self.ended = ended

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.ended and self.ended[0][0] and message.startswith("Encountered exception during execution"):
            return False
        return not (self.ended and message.startswith("Finished in state Running"))


def _cut_off(name: str, flow_run_id: str, returned: bool, value: Any) -> Any:
    """Hands on what a nested flow's function left when the Prefect API stopped answering before its end was reported."""
    state = "Completed" if returned else "Failed"
    note = f"the Prefect API did not answer when the nested flow run ended; its work {'ended' if returned else 'failed'}"
    _nested_pending.append((flow_run_id, state, note))
    log.warning("the Prefect API does not answer (%s): the nested %s flow run %s %s but could not be given its "
                "final state; the work and its MLflow record go on, and the next pipeline run sets it %s",
                _down, name, flow_run_id, "ended" if returned else "failed", state)
    if not returned:
        raise value
    return value


def _keeping(subflow: Flow[..., T], started: list[str], ended: list[tuple[bool, Any]]) -> Flow[..., T]:
    """The same flow, whose function also records its flow run id in `started` and how it ended in `ended`."""

    @functools.wraps(subflow.fn)
    def recorded(*args: Any, **kwargs: Any) -> T:
        started.append(str(flow_run.get_id()))
        try:
            value = subflow.fn(*args, **kwargs)
        except BaseException as exc:
            ended.append((False, exc))
            raise
        ended.append((True, value))
        return value

    keeping = copy.copy(subflow)  # name, options, version and parameters stay the flow's own
    keeping.fn = recorded
    return keeping


def in_current_flow_run(subflow: Flow[..., T], *args: Any) -> T:
    """Runs a nested flow's function in the current flow run: its tasks are the current flow run's, on the nested flow's task runner."""
    context = FlowRunContext.get()
    if context is None:  # not inside a flow run: the flow runs as a flow of its own
        return subflow(*args)
    with subflow.task_runner.duplicate() as runner, context.model_copy(update={"task_runner": runner}):
        return subflow.fn(*args)


def take_nested_pending() -> list[tuple[str, str, str]]:
    """The `(flow_run_id, state, note)` of the nested flow runs an outage kept from their final state, since the last call."""
    taken = list(_nested_pending)
    _nested_pending.clear()
    return taken
