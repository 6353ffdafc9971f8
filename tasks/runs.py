"""The MLflow run of a flow run, and closing the flow runs of processes that died."""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator
from uuid import UUID

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import Crashed
from prefect.utilities.urls import url_for

from kerasflow import tracking
from kerasflow.progress import reporting_progress, status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.outage import Outcome, reconcile_flow_run, remember_outcome, take_nested_pending, to_prefect
from kerasflow.tasks.policies import step_logger
from kerasflow.tasks.progress import LoopProgress
from kerasflow.tracking.notes import write_note
from kerasflow.training.baseline import Baseline

PREFECT_URL_TAG = "kerasflow.prefect_url"
OUTCOME_TAG_PREFIX = "kerasflow:"  # the flow run's outcome tag, `kerasflow:rejected`


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
    link artifact to the MLflow run's page. When the run ends, or fails,
    its description and the flow run's outcome tag are written
    (`record_outcome`).

    Neither the work nor the MLflow run depends on the Prefect API
    (`kerasflow.tasks.outage`): its calls here are best effort, how the run
    ended is remembered for the CLI, and flow runs of earlier runs that
    await their final state get it when this run opens.

    Args:
        config: The validated pipeline config.
        kind: `train`, `tune`, `retrain` or `validate`.

    Yields:
        The `PipelineRun`.
    """
    url = flow_run_url()
    tags = {PREFECT_URL_TAG: url} if url else None
    flow_run_id = flow_run.get_id()
    opened = None
    try:
        with contextlib.ExitStack() as stack:
            with status("opening the MLflow run"):
                run = stack.enter_context(tracking.pipeline_run(config, kind, flow_run_id, on_orphan=crash_flow_run,
                                                                tags=tags, reconcile=reconcile_flow_run))
            opened = run
            if flow_run_id is not None:
                to_prefect("the link artifact to the MLflow run", create_link_artifact, link=mlflow_run_url(run),
                           link_text=f"MLflow run {run.id}", key=artifact_key("mlflow-run", config.name),
                           description=f"The MLflow run of this {kind} flow run")
            loops = LoopProgress()
            try:
                with recording_outcome(run, kind, config.name), reporting_progress(loops):  # long loops show progress
                    yield run
            finally:
                loops.close()
    except BaseException as exc:
        if opened is not None:
            ended = "FAILED" if isinstance(exc, Exception) else "KILLED"
            keep_nested_pending(opened)
            remember_outcome(Outcome(opened.id, opened.uri, ended, flow_run_id and str(flow_run_id), exc))
        raise
    keep_nested_pending(opened)
    remember_outcome(Outcome(opened.id, opened.uri, "FINISHED", flow_run_id and str(flow_run_id)))


def keep_nested_pending(run: tracking.PipelineRun) -> None:
    """Records on the MLflow run the final states an outage kept from its nested flow runs (for the next run to set)."""
    pending = take_nested_pending()
    try:
        client = tracking.client_for(run.uri) if pending else None
        for flow_run_id, state, note in pending:
            tracking.mark_prefect_pending(client, run.id, state, note, flow_run_id=flow_run_id)
    except Exception as exc:  # the run's outcome matters more; the nested flow run stays Running in the UI
        step_logger().warning(f"could not record the final state of nested flow run(s) of MLflow run {run.id}: {exc}")


@contextlib.contextmanager
def recording_outcome(run: tracking.PipelineRun, kind: str, pipeline: str) -> Iterator[None]:
    """Records the outcome when the block ends, or fails with an exception (see `record_outcome`).

    Args:
        run: The MLflow run of the flow run.
        kind: The flow (`train`, `retrain`, `predict`, ...).
        pipeline: The config's name (or the model's, for a prediction).
    """
    try:
        yield
    except Exception as exc:
        record_outcome(run, pipeline, kind, exc)
        raise
    record_outcome(run, pipeline, kind)


def record_outcome(run: tracking.PipelineRun, pipeline: str, kind: str, error: BaseException | None = None) -> None:
    """Writes the MLflow run's description and gives the flow run its outcome tag and event.

    The MLflow run page shows the outcome, the flow run's link, the
    registered version and the gate decision
    (`kerasflow.tracking.notes.write_note`); the flow run gets the tag
    `kerasflow:<outcome>` and the event `kerasflow.run.<outcome>`
    (`tag_flow_run`). A failure here is logged, never raised: it must not
    hide the run's own result or error.

    Args:
        run: The pipeline run.
        pipeline: The config's name (or the model's, for a prediction).
        kind: The flow.
        error: The exception that ends the run, if it failed. Default none.
    """
    if error is not None and tracking.unreachable(error):
        return  # the store is gone: nothing to write into, and no wait for it
    try:
        note = write_note(run.tracker.client, run.id, kind=kind, pipeline=pipeline, prefect_url=flow_run_url(),
                          prefect_name=flow_run.get_name(), error=error)
        to_prefect("the flow run's outcome tag and event", tag_flow_run, note.outcome, run, note.model)
    except Exception as exc:  # the run's own outcome matters more than its description
        step_logger().warning(f"could not record the outcome of MLflow run {run.id}: {exc}")


def tag_flow_run(outcome: str, run: tracking.PipelineRun, model: str | None = None) -> None:
    """Tags the current flow run `kerasflow:<outcome>` and emits the event `kerasflow.run.<outcome>`.

    Prefect 3 has no way to add one tag to a running flow run: the flow
    run's tags are read and written back whole
    (`PrefectClient.update_flow_run(tags=...)`), an earlier
    `kerasflow:` tag replaced. `prefect flow-run ls --tag kerasflow:rejected`
    (and automations on the tag or the event) find the outcome.

    Args:
        outcome: `promoted`, `rejected`, `not-gated`, `skipped`, `failed` or `completed`.
        run: The pipeline run (named in the event).
        model: `name/version` registered by the run, if any.
    """
    flow_run_id = flow_run.get_id()
    if flow_run_id is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(flow_run_id))
        kept = [tag for tag in current.tags if not tag.startswith(OUTCOME_TAG_PREFIX)]
        client.update_flow_run(current.id, tags=[*kept, f"{OUTCOME_TAG_PREFIX}{outcome}"])
    related = [{"prefect.resource.id": f"mlflow.run.{run.id}", "prefect.resource.role": "mlflow-run",
                "prefect.resource.name": run.id}]
    emit_event(event=f"kerasflow.run.{outcome}",
               resource={"prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                         "prefect.resource.name": flow_run.get_name() or flow_run_id},
               related=related, payload={"outcome": outcome, "mlflow_run_id": run.id, "model": model,
                                         "mlflow_url": mlflow_run_url(run)})


def flow_run_url() -> str | None:
    """The current flow run's page in the Prefect UI, or None outside a flow run or without a UI.

    The address is Prefect's own (`prefect.utilities.urls.url_for`, as in
    the engine's `View at ...` line and `prefect flow-run inspect`):
    `<PREFECT_UI_URL>/runs/flow-run/<id>`.
    """
    flow_run_id = flow_run.get_id()
    return url_for("flow-run", obj_id=flow_run_id) if flow_run_id is not None else None


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
        rows = (f"same test rows, fitted on {baseline.train_rows:,} of {baseline.sampled_from:,} training rows"
                if baseline.sampled_from else "same rows")
        lines += [f"| test metric | value | {baseline.name} ({rows}) |", "| --- | --- | --- |"]
        lines += [f"| {name} | {value:.4f} | {scores[name]:.4f} |" if name in scores else f"| {name} | {value:.4f} | |"
                  for name, value in shown.items()]
    if registered.get("version"):
        verdict = "blessed as @candidate" if registered.get("blessed") else "not blessed"
        lines += ["", f"Registered **models:/{config.model_name}/{registered['version']}** ({verdict})"]
        lines += [f"- {reason}" for reason in registered.get("reasons", [])]
    to_prefect("the summary artifact", create_markdown_artifact, markdown="\n".join(lines),
               key=artifact_key("summary", config.name),
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
