"""Which process runs a run, and the sweep of runs whose process is gone.

Every kerasflow run records its process's pid, host and start time
(`process_identity`); a later pipeline run of the same experiment on the same
host marks FAILED the runs left RUNNING by a process that no longer exists
(`sweep_orphans`). The flow runs whose final state could not be reported,
the Prefect API down, are set then too (`reconcile_flow_runs`).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

from kerasflow.tracking.tags import (
    FLOW_RUN_TAG,
    HOST_TAG,
    NOTE_TAG,
    PARENT_TAG,
    PID_TAG,
    PREFECT_PENDING_NESTED_TAG,
    PREFECT_PENDING_TAG,
    STARTED_TAG,
)

log = logging.getLogger(__name__)


def process_identity(pid: int | None = None) -> dict[str, str]:
    """The tags that name a process: pid, host and start time (see `sweep_orphans`)."""
    pid = os.getpid() if pid is None else pid
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    started = _process_started(pid)
    if started:
        tags[STARTED_TAG] = started
    return tags


def _process_started(pid: int) -> str | None:
    """When a process started, as a string that differs between two processes that had the same pid.

    On Linux: the boot id and the start time in clock ticks since boot
    (`/proc/<pid>/stat`, field 22); elsewhere psutil's create time, if
    psutil is installed; else None (then only the pid is compared).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.3f}"
    except Exception:  # psutil missing, or no such process
        return None


def _process_gone(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return False
    return bool(started) and _process_started(pid) != started  # the pid now belongs to another process


def _mark_orphan(client: Any, experiment_id: str, run_id: str, note: str) -> list[str]:
    """Marks an orphaned run FAILED with `note`, and its nested runs still RUNNING (trials may carry no pid)."""
    marked = [run_id]
    for child in client.search_runs([experiment_id], f"attributes.status = 'RUNNING' and tags.`{PARENT_TAG}` = "
                                    f"'{run_id}'", max_results=1000):
        marked.append(child.info.run_id)
    for orphan in marked:
        client.set_tag(orphan, NOTE_TAG, note)
        client.set_tag(orphan, "mlflow.note.content", note)
        client.set_terminated(orphan, "FAILED")
    return marked


def sweep_orphans(client: Any, experiment_id: str, current_run_id: str,
                  on_orphan: Callable[[str, str], None] | None = None) -> list[str]:
    """Marks FAILED the runs of this experiment left RUNNING by a process of this host that is gone.

    A process killed with SIGKILL (or by the OOM killer, or a power cut)
    cannot close its runs. Every kerasflow run records its process's pid,
    host and start time; a RUNNING run whose process no longer exists on
    this host (or whose pid now belongs to a later process) is marked
    FAILED, with a note saying so, and so are its nested runs still
    RUNNING. Runs of other hosts are left alone.

    Args:
        client: An `MlflowClient`.
        experiment_id: The experiment to sweep.
        current_run_id: The run doing the sweep, named in the note.
        on_orphan: Called with `(flow_run_id, note)` for each swept run
            tagged `prefect.flow_run_id`; its errors are logged, not raised.
            Default none.

    Returns:
        The ids of the runs marked FAILED.
    """
    host = socket.gethostname()
    query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    swept = []
    for found in client.search_runs([experiment_id], query, max_results=1000):
        tags = found.data.tags
        try:
            pid = int(tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if found.info.run_id in (current_run_id, *swept) or not _process_gone(pid, tags.get(STARTED_TAG)):
            continue
        note = f"process {pid} on host {host} is gone; marked FAILED by run {current_run_id}"
        swept += _mark_orphan(client, experiment_id, found.info.run_id, note)
        if on_orphan is not None and tags.get(FLOW_RUN_TAG):
            try:
                on_orphan(tags[FLOW_RUN_TAG], note)
            except Exception as exc:  # the flow run is Prefect's to judge too; never fail the new run for it
                log.warning("could not close flow run %s: %s", tags[FLOW_RUN_TAG], exc)
                mark_prefect_pending(client, found.info.run_id, "Crashed", note)
    if swept:
        log.warning("marked %d orphaned run(s) FAILED: %s", len(swept), ", ".join(swept))
    return swept


def mark_prefect_pending(client: Any, run_id: str, state: str, note: str, flow_run_id: str | None = None) -> None:
    """Records on a run the final state a Prefect flow run should get once the API answers again.

    Args:
        client: An `MlflowClient`.
        run_id: The run, tagged `prefect.flow_run_id`.
        state: `Completed`, `Failed` or `Crashed`.
        note: Why, the flow run's state message.
        flow_run_id: A flow run nested in the run's own (a k-fold run's
            `cross-validate`), kept in `kerasflow.prefect_pending_nested`.
            Default none: the run's own flow run.
    """
    if flow_run_id is None:
        client.set_tag(run_id, PREFECT_PENDING_TAG, f"{state}: {note}")
        return
    kept = [line for line in client.get_run(run_id).data.tags.get(PREFECT_PENDING_NESTED_TAG, "").splitlines()
            if line and not line.startswith(f"{flow_run_id} ")]
    client.set_tag(run_id, PREFECT_PENDING_NESTED_TAG, "\n".join([*kept, f"{flow_run_id} {state}: {note}"]))


def _pending(tags: dict[str, str]) -> list[tuple[str, str, str]]:
    """The `(flow_run_id, state, note)` of each flow run a run's tags say awaits its final state, its own first."""
    entries = []
    if tags.get(PREFECT_PENDING_TAG) and tags.get(FLOW_RUN_TAG):
        state, _, note = tags[PREFECT_PENDING_TAG].partition(": ")
        entries.append((tags[FLOW_RUN_TAG], state, note))
    for line in tags.get(PREFECT_PENDING_NESTED_TAG, "").splitlines():
        flow_run_id, _, rest = line.partition(" ")
        state, _, note = rest.partition(": ")
        entries.append((flow_run_id, state, note))
    return [entry for entry in entries if entry[0] and entry[1] in ("Completed", "Failed", "Crashed")]


def reconcile_flow_runs(client: Any, experiment_id: str, reconcile: Callable[[str, str, str], None]) -> list[str]:
    """Sets the final states that flow runs of this experiment await (`mark_prefect_pending`), where possible.

    Each run tagged `kerasflow.prefect_pending_state` (its own flow run) or
    `kerasflow.prefect_pending_nested` (nested flow runs) has `reconcile`
    called with `(flow_run_id, state, note)` for each; once all succeed the
    tags are removed. While the Prefect API still does not answer the tags
    stay, for the next run.

    Returns:
        The flow run ids reconciled.
    """
    done: list[str] = []
    found_runs = {}
    for tag in (PREFECT_PENDING_TAG, PREFECT_PENDING_NESTED_TAG):
        for found in client.search_runs([experiment_id], f"tags.`{tag}` != ''", max_results=1000):
            found_runs.setdefault(found.info.run_id, found)
    for run_id, found in found_runs.items():
        entries = _pending(found.data.tags)
        try:
            for flow_run_id, state, note in entries:
                reconcile(flow_run_id, state, f"{note} (reconciled by a later run)")
        except Exception as exc:  # still down: the next run tries again
            log.warning("could not set flow run %s to %s yet: %s", flow_run_id, state, exc)
            break
        for tag in (PREFECT_PENDING_TAG, PREFECT_PENDING_NESTED_TAG):
            if tag in found.data.tags:
                client.delete_tag(run_id, tag)
        done += [entry[0] for entry in entries]
    return done
