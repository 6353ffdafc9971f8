"""A logging handler that keeps the messages it receives, for tests that check what a step logged."""

from __future__ import annotations

import logging


class LogLines(logging.Handler):
    """Collects the messages of the records at or above `level` (what the command shows on the terminal).

    Args:
        level: The lowest level kept. Default INFO.
    """

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
