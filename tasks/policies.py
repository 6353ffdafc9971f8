"""Retry policy shared by the task decorators, and the logger steps report to."""

from __future__ import annotations

import logging
import signal
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError, TerminationSignal

from kerasflow.errors import BadInputError, lost_interrupt


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: retry I/O hiccups, never bad input (a retry cannot fix it).

    Args:
        task: The Prefect task.
        task_run: Its run.
        state: The failed state.

    Returns:
        False for a `BadInputError`, true otherwise.
    """
    return not isinstance(state.result(raise_on_failure=False), BadInputError)


def step_logger() -> logging.Logger | logging.LoggerAdapter:
    """The logger a step reports to: the Prefect run logger (terminal and Prefect UI) inside a flow.

    Outside a flow or task run (a step's `.fn` called directly, as in
    tests and notebooks) it is the standard `kerasflow` logger.

    Returns:
        A logger.
    """
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("kerasflow")


def raise_lost_interrupt() -> None:
    """Raises again a SIGINT or SIGTERM whose exception a finalizer swallowed (see `lost_interrupt`).

    Raises:
        KeyboardInterrupt: For SIGINT.
        TerminationSignal: For SIGTERM, as Prefect's own handler does.
    """
    signum = lost_interrupt()
    if signum is None:
        return
    raise TerminationSignal(signum) if signum == signal.SIGTERM else KeyboardInterrupt()
