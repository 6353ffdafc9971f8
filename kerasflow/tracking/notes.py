"""The run's description: the Markdown an MLflow run page shows at its top (the `mlflow.note.content` tag).

A run records its outcome as the tag `kerasflow.outcome` while it runs
(`bless-candidate`, `promote-challenger`, the skipped-retraining check);
when the run ends, `write_note` reads the run back and writes the
description: the outcome, a link to the Prefect flow run, the registered
version and the gate decision (each rule with its expected and observed
values, from `gate/description.txt`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kerasflow.secrets import mask
from kerasflow.tracking.store import ui_url

NOTE_TAG = "mlflow.note.content"
OUTCOME_TAG = "kerasflow.outcome"
DECISION_FILE = "gate/description.txt"
# `kerasflow.decision` values (the champion gate's, `kerasflow.promotion.plan.Decision.outcome`) -> the outcome
_DECISIONS = {"first-champion": "promoted", "promoted": "promoted", "rejected": "rejected",
              "not-gated": "not-gated", "skipped": "skipped"}


def utc_now() -> str:
    """The current time in ISO 8601, UTC, to the millisecond: `2026-12-06T20:21:48.605Z`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def outcome_of(decision: str) -> str:
    """The run outcome of a champion-gate decision (`first-champion` -> `promoted`).

    Args:
        decision: A `Decision.outcome` or `skipped`.

    Returns:
        `promoted`, `rejected`, `not-gated` or `skipped` (unknown values pass through).
    """
    return _DECISIONS.get(decision, decision)


@dataclass(frozen=True)
class RunNote:
    """What a run's description says.

    Args:
        kind: The flow (`train`, `retrain`, ...).
        pipeline: The config's name.
        outcome: `promoted`, `rejected`, `not-gated`, `skipped`, `failed` or `completed`.
        prefect_url: The flow run's page in the Prefect UI, if any.
        prefect_name: The flow run's name, if any.
        model: `name/version` of the version this run registered (a prediction: used), if any.
        model_url: Its page in the MLflow UI.
        decision: The gate's text (`gate/description.txt`), if a gate ran.
        error: The failure's one-line message, for a failed run.
        written_at: When the note was written (ISO 8601, UTC).
    """

    kind: str
    pipeline: str
    outcome: str
    prefect_url: str | None = None
    prefect_name: str | None = None
    model: str | None = None
    model_url: str | None = None
    decision: str | None = None
    error: str | None = None
    written_at: str = ""

    def markdown(self) -> str:
        """Renders the note as Markdown."""
        lines = [f"**{self.outcome}** · kerasflow {self.kind} of `{self.pipeline}`", ""]
        if self.prefect_url:
            lines.append(f"- Prefect flow run: [{self.prefect_name or self.prefect_url}]({self.prefect_url})")
        if self.model:
            target = f"[models:/{self.model}]({self.model_url})" if self.model_url else f"`models:/{self.model}`"
            lines.append(f"- {'Model' if self.kind == 'predict' else 'Registered version'}: {target}")
        lines.append(f"- Outcome: **{self.outcome}** (written {self.written_at})")
        if self.error:
            lines += ["", "### Error", "", "```", self.error, "```"]
        if self.decision:
            lines += ["", "### Gate decision", "", *(_bullet(line) for line in self.decision.strip().splitlines())]
        return mask("\n".join(lines) + "\n")


def _bullet(line: str) -> str:
    """A line of `gate/description.txt` as a Markdown list item (its rules already are)."""
    return line if line.startswith("- ") else f"- {line}"


def read_note(client: Any, run_id: str, *, kind: str, pipeline: str, prefect_url: str | None = None,
              prefect_name: str | None = None, error: BaseException | None = None) -> RunNote:
    """Reads a run's outcome, registered version and gate decision back from the store.

    Args:
        client: The run's `MlflowClient`.
        run_id: The run.
        kind: The flow.
        pipeline: The config's name.
        prefect_url: The flow run's Prefect UI page. Default none.
        prefect_name: The flow run's name. Default none.
        error: The exception that ended the run, if it failed. Default none.

    Returns:
        The `RunNote`.
    """
    run = client.get_run(run_id)
    tags = run.data.tags
    outcome = "failed" if error is not None else tags.get(OUTCOME_TAG) or "completed"
    name, version = tags.get("kerasflow.model_name"), tags.get("kerasflow.model_version")
    model = f"{name}/{version}" if name and version else None
    base = ui_url(client.tracking_uri) if hasattr(client, "tracking_uri") else None
    model_url = f"{base}/#/models/{quote(name)}/versions/{version}" if model and base else None
    message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}" \
        if error is not None else None
    return RunNote(kind=kind, pipeline=pipeline, outcome=outcome, prefect_url=prefect_url,
                   prefect_name=prefect_name, model=model, model_url=model_url,
                   decision=_decision_text(client, run_id), error=message, written_at=utc_now())


def _decision_text(client: Any, run_id: str) -> str | None:
    """The run's `gate/description.txt`, or None when no gate ran."""
    if DECISION_FILE not in {a.path for a in client.list_artifacts(run_id, "gate")}:
        return None
    with tempfile.TemporaryDirectory(prefix="kerasflow-note-") as folder:
        return Path(client.download_artifacts(run_id, DECISION_FILE, folder)).read_text()


def write_note(client: Any, run_id: str, **context: Any) -> RunNote:
    """Writes a run's description (`mlflow.note.content`) from what the run recorded; see `read_note`.

    Args:
        client: The run's `MlflowClient`.
        run_id: The run.
        **context: `read_note`'s keyword arguments.

    Returns:
        The `RunNote` written.
    """
    note = read_note(client, run_id, **context)
    client.set_tag(run_id, NOTE_TAG, note.markdown())
    return note
