"""What the flows return: one frozen dataclass per flow, read by attribute.

The CLI prints them (`kerasflow.runtime.printing`); a Prefect deployment
runs the same flows, and a dataclass of plain values pickles, so a flow
run's result can be persisted when result persistence is on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train_flow`.

    Args:
        run_id: The pipeline's MLflow run.
        experiment_id: Its experiment.
        metrics: The test metrics, by name.
        model_uri: The logged model (`runs:/...` or `models:/...`).
        version: The registered version, or None with the registry off.
        blessed: Whether it met every `registry.thresholds` entry and the
            `registry.beats_baseline` rule (alias `candidate`).
        reasons: The gate's reasons, one per rule.
        mlflow_url: The run's page in the MLflow UI.
        prefect_url: The flow run's page in the Prefect UI, if there is one.
        baseline: The scikit-learn baseline's short name (`HistGradientBoosting`), or None without one.
        baseline_metrics: Its metrics on the same test rows, by the network's names.
        baseline_rows: The training rows it was fitted on (0 without one).
        baseline_sampled_from: The training rows its sample was drawn from
            (`evaluation.baseline_rows`); 0 when it was fitted on all of them.
    """

    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    model_uri: str
    version: str | None = None
    blessed: bool = False
    reasons: list[str] = field(default_factory=list)
    mlflow_url: str | None = None
    prefect_url: str | None = None
    baseline: str | None = None
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    baseline_rows: int = 0
    baseline_sampled_from: int = 0


@dataclass(frozen=True)
class TuneResult:
    """The outcome of `tune_flow`: the search's best trial and its trials.

    Args:
        run_id: The pipeline's MLflow run.
        experiment_id: Its experiment.
        hyperparameters: The best trial's values, by name.
        epochs: The best trial's best epoch count.
        score: Its objective's value.
        objective: The objective, e.g. `val_loss`.
        direction: `min` or `max`.
        new_trials: Trials run by this search (the rest were resumed).
        trials: Every trial's record (id, status, score, values).
        directory: The tuner's project folder.
        summary: The trials table as text.
    """

    run_id: str
    experiment_id: str
    hyperparameters: dict[str, Any]
    epochs: int | None
    score: float | None
    objective: str
    direction: str
    new_trials: int
    trials: list[dict[str, Any]]
    directory: str
    summary: str


@dataclass(frozen=True)
class Drift:
    """The drift check of a retraining.

    Args:
        checked: Whether there was a champion's reference to compare with.
        detected: Whether the data drifted.
        action: What drift triggers: `none`, `warn` or `retune`.
        summary: The verdict as text, first line a summary.
    """

    checked: bool
    detected: bool
    action: str
    summary: str


@dataclass(frozen=True)
class RetrainResult:
    """The outcome of `retrain_flow` (its `Completed` state's result).

    Args:
        run_id: The pipeline's MLflow run.
        experiment_id: Its experiment.
        outcome: `first-champion`, `promoted`, `rejected`, `not-gated` or `skipped`.
        promoted: Whether the challenger became `@champion`.
        champion: The `@champion` version afterwards, or None.
        compared_with: The champion the challenger was compared with, or None.
        reasons: The gate's (or the skip's) reasons.
        state: The state's name (`Promoted`, `Rejected`, `Not gated`, `Skipped`).
        message: The state's message.
        version: The challenger's registered version (None when skipped).
        metrics: The challenger's test metrics (None when skipped).
        champion_metrics: The champion's metrics on the same test rows, if any.
        drift: The drift check (None when skipped).
        previous_champion: The `@previous-champion` version afterwards, or None.
    """

    run_id: str
    experiment_id: str
    outcome: str
    promoted: bool
    champion: str | None
    compared_with: str | None
    reasons: list[str]
    state: str
    message: str
    version: str | None = None
    metrics: dict[str, float] | None = None
    champion_metrics: dict[str, float] | None = None
    drift: Drift | None = None
    previous_champion: str | None = None


@dataclass(frozen=True)
class ValidateResult:
    """The outcome of `validate_flow`.

    Args:
        run_id: The pipeline's MLflow run.
        passed: Whether the data passed its suite (true without a suite; false only with `on_failure: warn`,
            since a failure otherwise raises).
    """

    run_id: str
    passed: bool


@dataclass(frozen=True)
class PredictResult:
    """The outcome of `batch_predict_flow`.

    Args:
        run_id: The prediction's MLflow run.
        experiment_id: Its experiment.
        model_uri: The model version used, `models:/NAME/VERSION`.
        output: The file written.
        rows: The rows predicted.
        summary: A summary of the predictions.
        validation: How the rows were checked, in words (the tag `kerasflow.validation`).
    """

    run_id: str
    experiment_id: str
    model_uri: str
    output: str
    rows: int
    summary: Any
    validation: str = ""
