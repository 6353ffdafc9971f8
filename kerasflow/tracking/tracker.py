"""`Tracker`: where a task hands its results, one MLflow run by id and store."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kerasflow.tracking.client import client_for
from kerasflow.tracking.journal import keep_file, read_journal, record
from kerasflow.tracking.records import EpochLogger, log_counts, log_json, log_metrics, log_params

SCHEMA_SAMPLE_ROWS = 10_000  # rows MLflow infers a logged dataset's schema from


@dataclass(frozen=True)
class Tracker:
    """Where a task hands its results: one MLflow run, by id and store.

    A tracker is a few strings, so it travels to thread, process and Dask
    workers alike; its client is made (and MLflow pointed at the store)
    once per process on first use. A journaling tracker (`journaled`) also
    records every call in a step's cache folder, and `replay` logs such a
    record into another run (see `kerasflow.tracking.journal`).

    Args:
        run_id: The run to log into.
        uri: Its tracking URI.
        journal: A journal file to record every call in. Default none.

    Example:

    ```python
    run.tracker.counts({"train_rows": 120}, prefix="split.")
    run.tracker.json(report, "validation/result.json")
    ```
    """

    run_id: str
    uri: str
    journal: str | None = None

    @property
    def client(self) -> Any:
        """The `MlflowClient` of the tracker's store."""
        return client_for(self.uri)

    def journaled(self, journal: str) -> "Tracker":
        """Returns a tracker that logs into the same run and records every call in `journal`."""
        return dataclasses.replace(self, journal=journal)

    def _record(self, op: str, **payload: Any) -> None:
        if self.journal is not None:
            record(self.journal, op, **payload)

    def params(self, params: dict[str, Any], prefix: str = "") -> None:
        """Logs params in one batch (see `log_params`)."""
        log_params(self.client, self.run_id, params, prefix)
        self._record("params", params=params, prefix=prefix)

    def metrics(self, metrics: dict[str, float], prefix: str = "", step: int = 0) -> None:
        """Logs finite metrics in one batch (see `log_metrics`)."""
        log_metrics(self.client, self.run_id, metrics, prefix, step)
        self._record("metrics", metrics=metrics, prefix=prefix, step=step)

    def counts(self, counts: dict[str, float], prefix: str = "") -> None:
        """Logs counts (rows, files, findings) as params, not metrics (see `log_counts`)."""
        log_counts(self.client, self.run_id, counts, prefix)
        self._record("counts", counts=counts, prefix=prefix)

    def epochs(self, prefix: str) -> EpochLogger:
        """Returns a per-epoch hook that logs asynchronously under `prefix`."""
        return EpochLogger(self.client, self.run_id, prefix, journal=self.journal)

    def json(self, data: Any, artifact_file: str) -> None:
        """Logs a JSON artifact."""
        log_json(self.client, self.run_id, data, artifact_file)
        self._record("json", data=data, artifact_file=artifact_file)

    def text(self, text: str, artifact_file: str) -> None:
        """Logs a text artifact."""
        self.client.log_text(self.run_id, text, artifact_file)
        self._record("text", text=text, artifact_file=artifact_file)

    def table(self, frame: Any, artifact_file: str) -> None:
        """Logs a DataFrame as a table artifact (`MlflowClient.log_table`: a table view in the MLflow UI)."""
        self.client.log_table(self.run_id, data=frame, artifact_file=artifact_file)
        self._record("table", rows=frame.to_dict(orient="records"), artifact_file=artifact_file)

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Logs a file (or a folder's files) under `folder`."""
        if Path(path).is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        else:
            self.client.log_artifact(self.run_id, str(path), folder)
        if self.journal is not None:
            self._record("artifact", path=keep_file(self.journal, path), folder=folder)

    def tags(self, tags: dict[str, Any]) -> None:
        """Sets tags, values as strings."""
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))
        self._record("tags", tags={key: str(value) for key, value in tags.items()})

    def dataset(self, frame: Any, *, source: str, digest: str, target: str, rows: int | None = None) -> None:
        """Records a DataFrame as the run's raw input (MLflow dataset tracking).

        Args:
            frame: The rows (a listing, for image folders).
            source: Where they came from (path or folder).
            digest: Their fingerprint; MLflow keeps the first 36 characters.
            target: The label column.
            rows: The table's row count when `frame` is a sample of it
                (streaming). Default `len(frame)`.

        The schema is inferred from an evenly spaced sample of
        `SCHEMA_SAMPLE_ROWS` rows (MLflow checks every value of every text
        column, 15 s for a million rows); the profile counts all rows.
        """
        import mlflow.data

        sample = frame.iloc[::max(1, len(frame) // SCHEMA_SAMPLE_ROWS)]  # MLflow infers the schema value by value
        dataset = mlflow.data.from_pandas(sample, source=source, targets=target, name=Path(source).stem or source,
                                          digest=digest[:36]).to_dict()
        total = len(frame) if rows is None else rows
        dataset["profile"] = json.dumps({"num_rows": total, "num_elements": total * frame.shape[1]})
        self._log_dataset(dataset)

    def _log_dataset(self, dataset: dict[str, str]) -> None:
        """Logs a dataset given as `mlflow.data.Dataset.to_dict()`, with the context `raw`."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        context = InputTag(key="mlflow.data.context", value="raw")
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(Dataset(**dataset), tags=[context])])
        self._record("dataset", dataset=dataset)

    def replay(self, folder: str | Path) -> str | None:
        """Logs what a cached step logged (its sealed journal) into this run.

        Args:
            folder: The step's cache folder.

        Returns:
            The id of the run that executed the step.

        Raises:
            FileNotFoundError: The folder holds no sealed journal.
        """
        journal = read_journal(folder)
        if journal is None:
            raise FileNotFoundError(f"No step journal in {folder}")
        origin, calls = journal
        for call in calls:
            op = call.pop("op")
            if op == "artifact":
                self.artifact(Path(folder) / call["path"], call["folder"])
            elif op == "table":

                self.table(pd.DataFrame(call["rows"]), call["artifact_file"])
            elif op == "dataset":
                self._log_dataset(call["dataset"])
            else:
                getattr(self, op)(**call)
        return origin
