"""Headless matplotlib helpers shared by the reporting steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """Returns `matplotlib.pyplot` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lays out, writes (PNG, 90 dpi) and closes a figure.

    Args:
        fig: A matplotlib figure.
        path: Where to write it.

    Returns:
        The path written.
    """
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    pyplot().close(fig)
    return Path(path)
