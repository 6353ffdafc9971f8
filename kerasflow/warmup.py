"""Overlaps the fixed start-up costs of a pipeline run.

Without a Prefect server configured (`PREFECT_API_URL`), Prefect boots a
temporary API server in a subprocess at the first flow call: about 9 s on
this class of machine, spent waiting. Starting it first, in a background
thread, lets the heavy imports (TensorFlow, MLflow, Great Expectations)
happen in this process while the server boots in its own.
"""

from __future__ import annotations

import os
import threading

from kerasflow.quiet import import_tensorflow, silence


def warm_start(validation: bool = True) -> None:
    """Boots Prefect's temporary server while importing the heavy libraries.

    Returns when both are done, so the first flow call finds a healthy
    server. A no-op for the server part when `PREFECT_API_URL` is set.

    Args:
        validation: Also import Great Expectations. Default true.
    """
    silence()
    booting = _start_prefect_server()
    import_tensorflow()
    import mlflow.pyfunc  # noqa: F401

    if validation:
        from tasks.validate import _import_gx

        _import_gx()
    if booting is not None:
        booting.join()


def _start_prefect_server() -> threading.Thread | None:
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    thread = threading.Thread(target=SubprocessASGIServer().start, name="prefect-server-boot", daemon=True)
    thread.start()
    return thread
