"""The MLflow run of a flow run, and closing the flow runs of processes that died."""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator
from uuid import UUID

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL
from prefect.states import Crashed

from kerasflow import tracking
from kerasflow.progress import reporting_progress, status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger
from kerasflow.tasks.progress import LoopProgress
from kerasflow.training.baseline import Baseline

PREFECT_URL_TAG = "kerasflow.prefect_url"


@contextlib.contextmanager
def open_pipeline_run(config: PipelineConfig, kind: str) -> Iterator[tracking.PipelineRun]:
    """Opens the flow's MLflow run (see `kerasflow.tracking.pipeline_run`), tagged with the current flow run.

    Runs left RUNNING by a dead process (`kill -9`, the OOM killer) are
    marked FAILED when it opens, and the Prefect flow runs they recorded
    are set to Crashed, so neither UI shows them running forever.

    Long loops inside the steps (decoding a folder of images) show a
    progress bar on a terminal and log lines elsewhere (`LoopProgress`).

    The two UIs link both ways: the MLflow run is tagged
    `kerasflow.prefect_url` (the flow run's page), and the flow run gets a
    link artifact to the MLflow run's page.

    Args:
        config: The validated pipeline config.
        kind: `train`, `tune`, `retrain` or `validate`.

    Yields:
        The `PipelineRun`.
    """
    url = flow_run_url()
    tags = {PREFECT_URL_TAG: url} if url else None
    with contextlib.ExitStack() as stack:
        with status("opening the MLflow run"):
            run = stack.enter_context(tracking.pipeline_run(config, kind, flow_run.get_id(),
                                                            on_orphan=crash_flow_run, tags=tags))
        if flow_run.get_id() is not None:
            create_link_artifact(link=mlflow_run_url(run), link_text=f"MLflow run {run.id}",
                                 key=artifact_key("mlflow-run", config.name),
                                 description=f"The MLflow run of this {kind} flow run")
        loops = LoopProgress()
        try:
            with reporting_progress(loops):  # the library's long loops (image decoding) show progress
                yield run
        finally:
            loops.close()


def flow_run_url() -> str | None:
    """The current flow run's page in the Prefect UI, or None outside a flow run or without a UI."""
    if flow_run.get_id() is None or not PREFECT_UI_URL.value():
        return None
    return flow_run.ui_url


def mlflow_run_url(run: tracking.PipelineRun) -> str:
    """The MLflow UI page of a pipeline run."""
    return tracking.run_url(run.experiment_id, run.id, run.uri)


def artifact_key(prefix: str, name: str) -> str:
    """A Prefect artifact key (lower-case letters, digits and dashes) for a pipeline."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{name}".lower()).strip("-")[:100]


def publish_summary(run: tracking.PipelineRun, config: PipelineConfig, metrics: dict[str, float],
                    registered: dict[str, Any], baseline: Baseline | None = None) -> None:
    """Gives the flow run a Markdown summary: the MLflow run's link, the test metrics and the registered version.

    Args:
        run: The pipeline run.
        config: The pipeline config.
        metrics: The test metrics.
        registered: `register_model`'s result.
        baseline: The scikit-learn baseline scored on the same rows (a
            column beside the network's values), if any. Default none.
    """
    if flow_run.get_id() is None:
        return
    lines = [f"# {config.name}: {run.id}", "", f"[MLflow run]({mlflow_run_url(run)})", ""]
    scores = baseline.metrics if baseline is not None and baseline.model else None
    shown = {name: value for name, value in metrics.items() if ".class." not in name and not name.startswith("class.")}
    if scores is None:
        lines += ["| test metric | value |", "| --- | --- |"]
        lines += [f"| {name} | {value:.4f} |" for name, value in shown.items()]
    else:
        lines += [f"| test metric | value | {baseline.name} (same rows) |", "| --- | --- | --- |"]
        lines += [f"| {name} | {value:.4f} | {scores[name]:.4f} |" if name in scores else f"| {name} | {value:.4f} | |"
                  for name, value in shown.items()]
    if registered.get("version"):
        verdict = "blessed as @candidate" if registered.get("blessed") else "not blessed"
        lines += ["", f"Registered **models:/{config.model_name}/{registered['version']}** ({verdict})"]
        lines += [f"- {reason}" for reason in registered.get("reasons", [])]
    create_markdown_artifact(markdown="\n".join(lines), key=artifact_key("summary", config.name),
                             description=f"Test metrics and registered version of {config.name}")


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
