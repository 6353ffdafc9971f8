"""Overlaps the fixed start-up costs of a pipeline command.

Three things take seconds before a pipeline can train: the Prefect API
server (when none is running yet), Great Expectations' import and first
validation, and TensorFlow's import. `warm_start` starts the first two in
processes of their own, so a two-core machine works on them while this
process imports Prefect and MLflow and the flow loads the data:

- the validation worker (`kerasflow.data.expectations.run`) spawns, imports Great
  Expectations and warms it up, then validates and exits;
- the local Prefect server (`kerasflow.runtime.prefect_server`) is found running, or
  boots in its own process;
- once MLflow is imported, a background thread maps the installed packages
  for MLflow's requirements check of the model it logs or loads later
  (`kerasflow.tracking.models.map_installed_packages`: file reads, seconds
  on a busy disk).

TensorFlow is imported only after the data contract and validation, by the
first step that needs it, when the worker has exited: the worker's 270 MB and TensorFlow's 700 MB
are never resident together, which keeps a small job's process tree under
1 GB, and data that breaks the contract or fails its suite fails before
TensorFlow is loaded at all, with or without a suite. On two cores this costs no time on small jobs, since the wait for the
validation result is filled with light preloading (`kerasflow.heavy.prefetch_light`). With
`KERASFLOW_LOW_MEMORY=0`, TensorFlow imports here instead, alongside Great
Expectations: measured 1-2 s sooner on a one-minute job, 200 MB more at peak.
"""

from __future__ import annotations

import os
from typing import Any

from kerasflow.data.expectations.run import start_validator
from kerasflow.heavy import import_tensorflow
from kerasflow.progress import status
from kerasflow.quiet import silence
from kerasflow.runtime.prefect_server import start_server

LOW_MEMORY_ENV = "KERASFLOW_LOW_MEMORY"


def warm_start(validation: bool = True, heavy: bool = True) -> Any:
    """Starts the validation worker and the Prefect server, then imports MLflow (and TensorFlow).

    Does not wait for the server; `prefect_server.prefect_api(server)` does.

    Args:
        validation: Start the Great Expectations worker. Default true.
        heavy: Import MLflow here (and start mapping the installed
            packages), and TensorFlow too when low-memory mode is off.
            Default true.

    Returns:
        The local Prefect server in use (`prefect_server.Server`), or None
        when `PREFECT_API_URL` names one.
    """
    silence()
    tensorflow_now = not low_memory()  # a bad KERASFLOW_LOW_MEMORY fails before anything starts
    if validation:

        start_validator()

    with status("importing Prefect"):
        server = start_server()
    if heavy:
        with status("importing MLflow"):
            import mlflow.pyfunc  # noqa: F401

            # deferred like MLflow itself: the models module imports it; its file reads overlap what follows
            from kerasflow.tracking.models import map_installed_packages
        map_installed_packages()

        if tensorflow_now:
            import_tensorflow()
    return server


def low_memory() -> bool:
    """False only when `KERASFLOW_LOW_MEMORY` is off: then TensorFlow imports alongside validation.

    Raises:
        ValueError: A value that is not a boolean word, naming the allowed ones.
    """
    raw = os.environ.get(LOW_MEMORY_ENV, "").strip().lower()
    if raw in ("", "1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{LOW_MEMORY_ENV}={raw!r}: use 1/true/yes/on or 0/false/no/off")
