"""A step's tracker and terminal logger as one `kerasflow.training.kinds.StepLog`, for the data kinds to log to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import Tracker


@dataclass
class StepLog:
    """The step's tracker (every logging method) plus `warning`, shown on the terminal and in the Prefect UI.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
    """

    tracker: Tracker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracker, name)

    def warning(self, message: str) -> None:
        """Shows a warning in the step's log."""
        step_logger().warning(message)
