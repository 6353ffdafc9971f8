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
from typing import Any, Callable, Iterator

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


BUDGET_ENV = "KERASFLOW_TRACKING_BUDGET_SECONDS"
DEFAULT_BUDGET = 120


def tracking_budget() -> int:
    """Seconds one MLflow tracking call may spend retrying a store that is down (`KERASFLOW_TRACKING_BUDGET_SECONDS`).

    Raises:
        ValueError: The variable is not a positive whole number.
    """
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return DEFAULT_BUDGET
    try:
        budget = int(float(text))
    except ValueError:
        budget = 0
    if budget < 1:
        raise ValueError(f"{BUDGET_ENV}={text!r} is not a number of seconds >= 1")
    return budget


def http_retry_settings(budget: int) -> dict[str, str]:
    """MLflow's HTTP retry settings that keep one request's retries within `budget` seconds.

    urllib3 sleeps 0 s before the first retry and `factor * 2**(n-1)` s
    before retry n >= 2 (plus up to `jitter` s), so `retries` retries sleep
    `factor * (2**retries - 2)` s at most, before jitter. Half the budget
    goes to those sleeps, the rest to the attempts' timeouts: a server that
    is down refuses at once, one that hangs costs a timeout per attempt.
    """
    retries = 0
    while retries < 10 and (2 ** (retries + 1) - 2) + 0.5 * (retries + 1) <= budget / 2:
        retries += 1
    sleeping = max(0, 2 ** retries - 2) + 0.5 * retries
    timeout = max(1, int((budget - sleeping) // (retries + 1)))
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries), "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}


_DERIVED_ENV = "_KERASFLOW_DERIVED_HTTP_SETTINGS"  # the MLflow settings set from the budget, not by the user


def _bound_http_retries() -> None:
    """Sets MLflow's HTTP retry settings from the tracking budget, where the user has not set them.

    Child processes inherit the environment, so the names set here are
    recorded in `_KERASFLOW_DERIVED_HTTP_SETTINGS`: a child with another
    budget recomputes them instead of taking them for the user's.
    """
    try:
        settings = http_retry_settings(tracking_budget())
    except ValueError:  # the CLI reports a bad budget
        return
    owned = set(filter(None, os.environ.get(_DERIVED_ENV, "").split(",")))
    for key, value in settings.items():
        if key not in os.environ or key in owned:
            os.environ[key] = value
            owned.add(key)
    os.environ[_DERIVED_ENV] = ",".join(sorted(owned))


def silence() -> None:
    """Sets quiet defaults for the ML libraries' logging and telemetry.

    Also bounds MLflow's HTTP retries by the tracking budget (see
    `http_retry_settings`); a bad budget value leaves MLflow's own defaults,
    and the CLI reports it. Idempotent; values already present in the
    environment win.
    """
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    _bound_http_retries()
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    warnings.filterwarnings("ignore", module="mlflow.*")
    warnings.filterwarnings("ignore", module="keras.*")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # One line per failed async batch while a store is down; kerasflow reports the outage (and what was lost) itself.
    logging.getLogger("mlflow.utils.async_logging").setLevel(logging.CRITICAL)


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
        import tensorflow

    split_cpu(tensorflow)


LOGICAL_CPUS_ENV = "KERASFLOW_LOGICAL_CPUS"


def split_cpu(tf: Any) -> None:
    """Splits the CPU into `KERASFLOW_LOGICAL_CPUS` logical devices, if set (before TensorFlow initializes).

    With two or more, `training.distribute: mirrored` trains one replica per
    logical CPU: how a distribution strategy is tried on a machine without
    GPUs (TensorFlow's own recipe, `tf.config.set_logical_device_configuration`).

    Raises:
        ValueError: The variable is not a positive integer.
    """
    raw = os.environ.get(LOGICAL_CPUS_ENV, "").strip()
    if not raw:
        return
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{LOGICAL_CPUS_ENV}={raw!r}: use a positive integer (the logical CPU devices)")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(raw))])


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

    def __init__(self, errors: tuple[type[BaseException], ...], when: Callable[[BaseException], bool] | None = None):
        super().__init__()
        self.errors = errors
        self.when = when

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, self.errors) or (self.when is not None and self.when(exc))):
            record.exc_info, record.exc_text = None, None
        return True


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


def quiet_dask() -> None:
    """Keeps Dask's scheduler and worker chatter (INFO, shutdown warnings) out of a run's output."""
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")  # read by spawned worker processes
    logging.getLogger("distributed").setLevel(logging.ERROR)
