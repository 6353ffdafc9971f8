"""Retry policy shared by the task decorators."""

from __future__ import annotations

from typing import Any

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
