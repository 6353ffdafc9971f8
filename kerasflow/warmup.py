"""Overlaps the fixed start-up costs of a pipeline command.

Three things take seconds before a pipeline can train: the Prefect API
server (when none is running yet), Great Expectations' import and first
validation, and TensorFlow's import. `warm_start` starts the first two in
processes of their own, so a two-core machine works on them while this
process imports Prefect and MLflow and the flow loads the data:

- the validation worker (`kerasflow.isolation`) spawns, imports Great
  Expectations and warms it up, then validates and exits;
- the local Prefect server (`kerasflow.prefect_server`) is found running, or
  boots in its own process.

With a suite to run, TensorFlow is imported only after validation, when the
worker has exited: its 270 MB and TensorFlow's 700 MB are never resident at
the same time, which keeps a small job's process tree under 1 GB. Without
one, it is imported here at once.
"""

from __future__ import annotations

from typing import Any

from kerasflow.quiet import import_tensorflow, silence


def warm_start(validation: bool = True, heavy: bool = True) -> Any:
    """Starts the validation worker and the Prefect server, then imports MLflow (and TensorFlow).

    Does not wait for the server; `prefect_server.prefect_api(server)` does.

    Args:
        validation: Start the Great Expectations worker, and leave
            TensorFlow's import to the first step that needs it, after
            validation. Default true.
        heavy: Import MLflow, and TensorFlow unless `validation`, here.
            Default true.

    Returns:
        The local Prefect server in use (`prefect_server.Server`), or None
        when `PREFECT_API_URL` names one.
    """
    silence()
    if validation:
        from kerasflow.isolation import start_validator

        start_validator()
    from kerasflow.prefect_server import start_server

    server = start_server()
    if heavy:
        import mlflow.pyfunc  # noqa: F401

        if not validation:
            import_tensorflow()
    return server


def prefetch_light() -> None:
    """Loads what later steps need that is heavy on CPU but light on memory.

    Meant for time this process would otherwise spend waiting (the
    validation worker's job, see `isolation.run_validation`): matplotlib
    for the plots, scikit-learn's metrics for the reports, and MLflow's map
    of installed packages, which model logging builds once per process to
    check the model's pinned requirements (about 0.8 s). TensorFlow is not
    imported here, to keep it out of memory until validation is done. Any
    failure is ignored: a cold cache only costs time later.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        import sklearn.metrics  # noqa: F401
        from mlflow.utils import requirements_utils

        warm = getattr(requirements_utils, "_init_modules_to_packages_map", None)  # private: a cache, optional
        if warm is not None:
            warm()
    except Exception:
        return
