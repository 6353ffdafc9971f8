"""Process-wide settings that keep a run's output clean.

TensorFlow, MLflow, Prefect and Great Expectations all read environment
variables at import time, so `silence()` must run before any of them is
imported. It only sets variables the user has not set already.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from typing import Iterator

_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "KERAS_BACKEND": "tensorflow",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "true",
    "PREFECT_LOGGING_LOG_PRINTS": "false",
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Async metric logging waits on its stop event instead of polling a queue every second,
    # so ending a run returns at once (otherwise each end of a run costs up to 1 s).
    "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}

_NOISY_LOGGERS = ("absl", "tensorflow", "h5py", "urllib3", "alembic", "mlflow", "great_expectations")


def silence() -> None:
    """Sets quiet defaults for the ML libraries' logging and telemetry.

    Idempotent; values already present in the environment win.
    """
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    warnings.filterwarnings("ignore", module="mlflow.*")
    warnings.filterwarnings("ignore", module="keras.*")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def import_tensorflow() -> None:
    """Imports TensorFlow once with native stderr muted.

    TensorFlow's C++ runtime prints CUDA-probe and absl banners straight to
    file descriptor 2 during import, past any Python logging setting.
    """
    if "tensorflow" in sys.modules:
        return
    silence()
    with muted_stderr():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null for the duration of the block."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as devnull:
        sys.stderr.flush()
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _NoTracebackFor(logging.Filter):
    """Drops the traceback, not the message, of records about expected errors."""

    def __init__(self, errors: tuple[type[BaseException], ...]):
        super().__init__()
        self.errors = errors

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, self.errors):
            record.exc_info, record.exc_text = None, None
        return True


def hide_tracebacks_for(errors: tuple[type[BaseException], ...]) -> None:
    """Keeps Prefect's run logs for bad-input errors to one readable line.

    A bad config, data file or expectation failure is the user's input, not
    a crash: its message says what is wrong, and a traceback only buries it.

    Args:
        errors: Exception classes whose tracebacks are dropped.
    """
    for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackFor) for f in logger.filters):
            logger.addFilter(_NoTracebackFor(errors))


def prefetch_light() -> None:
    """Loads what later steps need that is heavy on CPU but light on memory.

    Meant for time this process would otherwise spend waiting (the
    validation worker's job, see `kerasflow.data.isolation.run_validation`): matplotlib
    for the plots, and scikit-learn's splitters and metrics. TensorFlow is
    not imported here, to keep it out of memory until validation is done.
    Any failure is ignored: a cold cache only costs time later.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.model_selection  # noqa: F401
    except Exception:
        return
