"""Retry policy shared by the task decorators, and the logger steps report to."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from kerasflow.errors import BadInputError


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
