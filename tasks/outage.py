"""A Prefect API that stops answering mid-run: the work goes on, and the flow run is reconciled later.

The pipeline's work and its MLflow record do not depend on the Prefect API:

- the calls kerasflow itself makes to it (artifacts, closing the flow runs
  of dead processes) are best effort (`to_prefect`): the first failure is
  one warning, and later calls of the same process are skipped;
- the MLflow run ends by how the work ended (FINISHED, FAILED), and the
  outcome is remembered (`remember_outcome`) for the CLI, which turns the
  engine's own failure to report the flow run's final state into a
  one-paragraph message (`kerasflow.runtime.exits`);
- the final state the flow run should have is kept on the MLflow run
  (`kerasflow.tracking.mark_prefect_pending`), and the next pipeline run
  of the experiment sets it once the API answers again
  (`reconcile_flow_run`, called by `kerasflow.tracking.reconcile_flow_runs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_REQUEST_TIMEOUT, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Completed, Crashed, Failed

T = TypeVar("T")
log = logging.getLogger(__name__)
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
