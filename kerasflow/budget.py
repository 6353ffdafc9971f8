"""The tracking budget: how long one MLflow call may wait for a store that is down.

`KERASFLOW_TRACKING_BUDGET_SECONDS` bounds the retries of every tracking
call; MLflow's HTTP retry settings are derived from it (`silence` in
`kerasflow.quiet` sets them before MLflow is imported).
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
