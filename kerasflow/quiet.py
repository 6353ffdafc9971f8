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
import threading
import warnings
from typing import Callable, Iterator

from kerasflow.budget import bound_http_retries
from kerasflow.secrets import install_log_masking

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
    # Each failed Prefect API call retries with 2, 4, 8 ... s of back-off: 2 retries (Prefect's default is 5)
    # bound a Prefect API that is down at the end of a run to seconds (docs/architecture.md, "Prefect outages").
    "PREFECT_CLIENT_MAX_RETRIES": "2",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Async metric logging waits on its stop event instead of polling a queue every second,
    # so ending a run returns at once (otherwise each end of a run costs up to 1 s).
    "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}

_NOISY_LOGGERS = ("absl", "tensorflow", "h5py", "urllib3", "alembic", "mlflow", "great_expectations")


def silence() -> None:
    """Sets quiet defaults for the ML libraries' logging and telemetry.

    Also bounds MLflow's HTTP retries by the tracking budget (see
    `kerasflow.budget.http_retry_settings`); a bad budget value leaves MLflow's own defaults,
    and the CLI reports it. Masks credentials in addresses in every log
    record (`kerasflow.secrets.install_log_masking`). Idempotent; values
    already present in the environment win.
    """
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    bound_http_retries()
    install_log_masking()
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    warnings.filterwarnings("ignore", module="mlflow.*")
    warnings.filterwarnings("ignore", module="keras.*")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # One line per failed async batch while a store is down; kerasflow reports the outage (and what was lost) itself.
    logging.getLogger("mlflow.utils.async_logging").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def filtered_stderr(dropped: Callable[[bytes], bool]) -> Iterator[None]:
    """Passes file descriptor 2 through a filter for the duration of the block.

    Only the lines `dropped` marks are lost: what other threads write
    meanwhile (a warning, an error message) is passed on, line by line, by a
    copying thread. That thread keeps copying after the block for any child
    process started meanwhile, which holds the pipe.

    Args:
        dropped: Says, for a line written to fd 2 (bytes), whether to drop it.
    """
    try:
        saved, (read, write) = os.dup(2), os.pipe()
    except OSError:
        yield
        return
    sys.stderr.flush()
    os.dup2(write, 2)
    os.close(write)

    def copy() -> None:
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not dropped(line):
                    os.write(saved, line)

    copier = threading.Thread(target=copy, name="kerasflow-stderr", daemon=True)
    copier.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the copier ends once it has copied everything
        copier.join(timeout=2)


class _NoTracebackFor(logging.Filter):
    """Drops the traceback, not the message, of records about expected errors."""

    def __init__(self, errors: tuple[type[BaseException], ...], when: Callable[[BaseException], bool] | None = None):
        super().__init__()
        self.errors = errors
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, self.errors) or (self.when is not None and self.when(exc))):
            record.exc_info, record.exc_text = None, None
        return True


class _OnceAboutEvents(logging.Filter):
    """While the Prefect API is down: one warning that events cannot be sent, not one per event every few seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.warned = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Service 'EventsWorker' failed to process item"):  # the whole event, repeated
            return False
        if message.startswith("Unable to connect to") and "events" in message:
            seen, self.warned = self.warned, True
            return not seen
        return True


def quiet_event_outages() -> None:
    """Keeps Prefect's events client to one line while its API is down (idempotent)."""
    once = _OnceAboutEvents()
    for name in ("prefect.events.clients", "prefect._internal.concurrency"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OnceAboutEvents) for f in logger.filters):
            logger.addFilter(once)


def quiet_log_worker_errors() -> None:
    """Keeps Prefect's API log worker from printing `--- Error logging to API ---` and its error to the terminal.

    Prefect's `APILogWorker` (prefect/logging/handlers.py) writes that block
    to stderr for every batch of run logs the API does not take, at once
    and again when the process ends, while the stdlib switch
    `logging.raiseExceptions` is true (its traceback too with
    `PREFECT_LOGGING_INTERNAL_LEVEL=DEBUG`). A kerasflow command reports a
    Prefect outage itself, in one paragraph (`kerasflow.runtime.exits`),
    and its log worker is the first to meet one, before kerasflow can know,
    so the switch is off for the whole command; the logs still show on the
    console. It also stops the stdlib's `--- Logging error ---` reports of
    a handler that fails. Idempotent.
    """
    logging.raiseExceptions = False


def hide_tracebacks_for(errors: tuple[type[BaseException], ...],
                        when: Callable[[BaseException], bool] | None = None) -> None:
    """Keeps Prefect's run logs for bad-input errors to one readable line.

    A bad config, data file or expectation failure is the user's input, not
    a crash: its message says what is wrong, and a traceback only buries it.
    The same goes for an interrupt or a tracking store that went away.

    Args:
        errors: Exception classes whose tracebacks are dropped.
        when: Also drop the traceback of an exception this returns true for. Default none.
    """
    for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackFor) for f in logger.filters):
            logger.addFilter(_NoTracebackFor(errors, when))


def quiet_dask() -> None:
    """Keeps Dask's scheduler and worker chatter (INFO, shutdown warnings) out of a run's output."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # read by spawned worker processes
    logging.getLogger("distributed").setLevel(logging.ERROR)
