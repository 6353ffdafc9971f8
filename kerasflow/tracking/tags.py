"""The tag names kerasflow gives its MLflow runs."""

RUN_KIND_TAG = "kerasflow.kind"
PARENT_TAG = "mlflow.parentRunId"  # MLflow shows runs with this tag nested under their parent
PID_TAG, HOST_TAG, STARTED_TAG = "kerasflow.pid", "kerasflow.host", "kerasflow.started"  # who runs it (orphan sweep)
NOTE_TAG = "kerasflow.note"
FLOW_RUN_TAG = "prefect.flow_run_id"
PREFECT_PENDING_TAG = "kerasflow.prefect_pending_state"  # the final state a flow run awaits, the Prefect API down
PREFECT_PENDING_NESTED_TAG = "kerasflow.prefect_pending_nested"  # the same for nested flow runs: `<id> <state>: <note>` lines
