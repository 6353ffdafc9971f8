"""The MLflow run of a flow run, and closing the flow runs of processes that died."""

from __future__ import annotations

import contextlib
from typing import Iterator
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Crashed

from kerasflow import tracking
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger


@contextlib.contextmanager
def open_pipeline_run(config: PipelineConfig, kind: str) -> Iterator[tracking.PipelineRun]:
    """Opens the flow's MLflow run (see `kerasflow.tracking.pipeline_run`), tagged with the current flow run.

    Runs left RUNNING by a dead process (`kill -9`, the OOM killer) are
    marked FAILED when it opens, and the Prefect flow runs they recorded
    are set to Crashed, so neither UI shows them running forever.

    Args:
        config: The validated pipeline config.
        kind: `train`, `tune`, `retrain` or `validate`.

    Yields:
        The `PipelineRun`.
    """
    with tracking.pipeline_run(config, kind, flow_run.get_id(), on_orphan=crash_flow_run) as run:
        yield run


def crash_flow_run(flow_run_id: str, note: str) -> None:
    """Sets a flow run that is still Running (or Pending) to Crashed, with `note` as its message.

    Args:
        flow_run_id: The Prefect flow run's id.
        note: Why, e.g. `process 123 on host h is gone`.
    """
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        if run.state is None or run.state.is_final():
            return
        client.set_flow_run_state(run.id, Crashed(message=note), force=True)
    step_logger().warning(f"flow run {run.name} ({flow_run_id}) set to Crashed: {note}")
