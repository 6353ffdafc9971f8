"""The tracking budget: how long one MLflow call may wait for a store that is down.

`KERASFLOW_TRACKING_BUDGET_SECONDS` (default 120) is how long kerasflow
retries a tracking call that fails because the store does not answer
(refused, reset, 5xx, timeout): attempts start until that many seconds have
passed since the first (`kerasflow.tracking.client.patiently`). MLflow's
HTTP retry settings are derived from it (`silence` in `kerasflow.quiet`
sets them before MLflow is imported).
"""

from __future__ import annotations

import os

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
    """MLflow's HTTP retry settings under the tracking budget: short retries, and a timeout per attempt.

    The budget itself is spent by kerasflow's time-based retries
    (`kerasflow.tracking.client.patiently`), which start attempts until
    `budget` seconds have passed, whatever the failure. MLflow's own
    retries (urllib3's, counted per request, exponential) would instead end
    after a fixed number of attempts: a refused connection fails in
    milliseconds, so five retries end after about 30 s of backoff. Here
    MLflow retries once at once (a dropped keep-alive connection), and an
    attempt waits `budget / 6` seconds for an answer (5 to 30 s), so a
    store that hangs costs at most two such waits past the budget.

    Args:
        budget: The tracking budget, in seconds.

    Returns:
        `MLFLOW_HTTP_REQUEST_*` settings, as strings.
    """
    timeout = min(30, max(5, budget // 6))
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout)}


_DERIVED_ENV = "_KERASFLOW_DERIVED_HTTP_SETTINGS"  # the MLflow settings set from the budget, not by the user


def bound_http_retries() -> None:
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
