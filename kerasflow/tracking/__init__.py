"""MLflow conventions: one experiment per pipeline, one parent run per flow run.

The package face: the names the rest of kerasflow uses, from the modules
that hold them.

- `store`: the tracking URI, UI addresses, and whether the store stopped
  answering; `client`: the client (time-based retries within the tracking
  budget, credentials masked in what it writes), experiments, and the
  creation of a new SQLite store under its lock;
- `runs`: the one run lifecycle (pipeline, prediction, nested and trial
  runs, and this process's list of open runs);
- `liveness`: which process runs a run, and the sweep of orphaned runs;
- `records`: params, metrics, epochs, the config and JSON artifacts;
- `tracker`: `Tracker`, what tasks log through;
- `journal`: a step's record of what it logged, replayed from the cache;
- `registry`: the model registry (references, aliases, champion moves);
  `artifacts`: what a run or logged model carries; `models`: logging the
  pyfunc model.

Every helper takes the run id explicitly: MLflow's active-run stack is per
thread, and Prefect runs tasks in worker threads.
"""

from kerasflow.tracking.client import client_for, configure, ensure_experiment, patiently, prepare_store
from kerasflow.tracking.liveness import mark_prefect_pending
from kerasflow.tracking.records import log_config, log_metrics, log_params, undelivered_epochs
from kerasflow.tracking.runs import (
    PipelineRun,
    close_child_run,
    close_open_runs,
    closing_run,
    end_failed_run,
    forget_open_run,
    kill_open_runs,
    kill_run,
    model_run,
    nested_run,
    open_child_run,
    open_flow_runs,
    pipeline_run,
    record_failed_run,
    track_open_run,
)
from kerasflow.tracking.store import (
    TrackingUnavailable,
    run_url,
    tracking_uri,
    ui_url,
    unreachable,
)
from kerasflow.tracking.tags import FLOW_RUN_TAG, PARENT_TAG, RUN_KIND_TAG
from kerasflow.tracking.tracker import Tracker

__all__ = [
    "FLOW_RUN_TAG", "PARENT_TAG", "RUN_KIND_TAG", "PipelineRun", "Tracker", "TrackingUnavailable", "client_for",
    "close_child_run", "closing_run", "configure", "end_failed_run", "ensure_experiment", "forget_open_run",
    "close_open_runs", "kill_open_runs", "kill_run", "log_config", "log_metrics", "log_params", "mark_prefect_pending", "model_run", "nested_run",
    "open_child_run", "open_flow_runs", "patiently", "pipeline_run", "prepare_store", "record_failed_run", "run_url", "track_open_run",
    "tracking_uri", "ui_url", "undelivered_epochs", "unreachable",
]
