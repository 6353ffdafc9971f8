"""The hyperparameter search with Keras Tuner; each trial is a nested MLflow run."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.data.load import fingerprint_frame
from kerasflow.data.prepared import Prepared
from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.heavy import import_tensorflow
from kerasflow.quiet import quiet_dask
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import Tracker
from kerasflow.training.distributed import check_reachable, free_address, observe_search, run_search_worker, start_chief
from kerasflow.training.resume import in_project
from kerasflow.training.search import (
    TuningError,
    holding_project,
    run_search,
    search_data,
    search_fingerprint,
    search_result,
)
from kerasflow.training.trials import plot_scores, summary_table, trial_records, trials_frame


class MlflowTrialLogger:
    """A `kerasflow.training.search.TrialHook` that tracks each trial as a nested MLflow run.

    Args:
        client: An `MlflowClient`.
        parent_run_id: The pipeline run.
        experiment_id: Its experiment.
        uri: The tracking URI, for the last-resort close on a signal.
        max_trials: The search's trial count, for `trial 3/20` lines. Default unknown.
        direction: `min` or `max`, the objective's. Default `max`.
        announce: Print `trial 3/20` lines when a trial ends. Default true
            (false on a Dask worker: the flow process announces them).
    """

    def __init__(self, client: Any, parent_run_id: str, experiment_id: str, uri: str, max_trials: int = 0,
                 direction: str = "", announce: bool = True):
        self.client, self.parent, self.experiment_id, self.uri = client, parent_run_id, experiment_id, uri
        self.runs: dict[str, str] = {}
        self.max_trials, self.direction, self.ended, self.best = max_trials, direction, 0, None
        self.announce = announce

    def trial_started(self, trial_id: str, values: dict[str, Any]) -> None:
        """Opens the trial's run (`tracking.open_child_run`) and logs its hyperparameters as params."""
        run_id = tracking.open_child_run(self.client, self.parent, self.experiment_id, self.uri, f"trial-{trial_id}",
                                         "trial", {"kerasflow.trial_id": trial_id})
        self.runs[trial_id] = run_id
        tracking.log_params(self.client, run_id, values)

    def epoch_ended(self, trial_id: str, label: str, epoch: int, logs: dict[str, float]) -> None:
        """Logs one epoch's metrics, prefixed by fold/execution when there are several."""
        tracking.log_metrics(self.client, self.runs[trial_id], logs, prefix=f"{label}." if label else "", step=epoch)

    def fold_ended(self, trial_id: str, fold: int, score: float, best_epoch: int) -> None:
        """Logs the score and best epoch of one fold (or execution)."""
        tracking.log_metrics(self.client, self.runs[trial_id], {"score": score, "best_epoch": best_epoch},
                             prefix=f"fold_{fold}.")

    def trial_ended(self, record: Any) -> None:
        """Logs the trial's score and status and closes its run."""
        run_id = self.runs.get(record.trial_id)
        if run_id is None:
            return
        tracking.log_metrics(self.client, run_id, {"score": record.score, "best_epoch": record.best_epoch})
        self.client.set_tag(run_id, "kerasflow.trial_status", record.status)
        if self.announce:
            self.report(record)
        if record.message:
            self.client.log_text(run_id, record.message, "errors/trial_error.txt")
        tracking.close_child_run(self.client, run_id, "FINISHED" if record.status == "COMPLETED" else "FAILED")

    def report(self, record: Any) -> None:
        """Says on the terminal and in the flow-run log how far the search is: `trial 3/20: score ... (best ...)`."""
        self.ended += 1
        score = record.score
        lower = self.direction == "min"
        if score is not None and (self.best is None or (score < self.best if lower else score > self.best)):
            self.best = score
        of = f"/{self.max_trials}" if self.max_trials else ""
        shown = f"score {score:.4f}" if score is not None else record.status.lower()
        best = f" (best {self.best:.4f})" if self.best is not None else ""
        step_logger().info(f"trial {self.ended}{of}: {shown}{best}")

    def trial_interrupted(self, trial_id: str, error: BaseException) -> None:
        """Marks the trial's run KILLED; the resumed search runs the trial again."""
        run_id = self.runs.get(trial_id)
        if run_id is not None:
            self.client.set_tag(run_id, "kerasflow.trial_status", f"INTERRUPTED: {type(error).__name__}")
            tracking.close_child_run(self.client, run_id, "KILLED")


@task(name="search-hyperparameters", retries=0, cache_policy=NO_CACHE)
def search_hyperparameters(tracker: Tracker, config: PipelineConfig, prepared: Prepared,
                           fresh: bool = False) -> dict[str, Any]:
    """Runs or resumes the configured tuner search on train/validation rows only.

    Each trial becomes a nested run; the pipeline run gets the best values
    (`tune.best.<name>` params), the trials table (`tuning/trials.csv`) and
    the score plot (`tuning/scores.png`).

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config; it must have a `tuning` section.
        prepared: Paths from the data steps.
        fresh: Discard saved tuner state and start over. Default false.

    Returns:
        `{"hyperparameters", "epochs", "score", "objective", "direction",
        "trials", "new_trials", "directory", "summary"}`.

    Raises:
        TuningError: No `tuning` section, an objective the model does not
            report, stale state without `fresh`, or no completed trial.
    """
    import_tensorflow()

    if config.tuning is None:
        raise TuningError("the config has no tuning section: add one with a search space (see configs/wine_tuned.yaml)")
    frame = pd.read_parquet(prepared.raw)
    data = search_data(config, frame, Split.load(prepared.split), FeatureSpec.load(prepared.features),
                       LabelSpec.load(prepared.labels))
    client = tracker.client
    hook = MlflowTrialLogger(client, tracker.run_id, client.get_run(tracker.run_id).info.experiment_id, tracker.uri,
                             max_trials=config.tuning.max_trials, direction=config.tuning.objective.direction)
    fingerprint = search_fingerprint(config, fingerprint_frame(frame))
    with holding_project(in_project(config.tuning.project_dir(config.name)), tracker.run_id,
                         notice=step_logger().warning) as held:  # a concurrent search of this config: its own folder
        project = str(held)
        if config.runner.kind == "dask":  # trials on Dask workers, one oracle here
            result = search_on_dask(config, prepared, data, project, fingerprint, fresh, hook)
        else:
            result = run_search(config, data, project, fingerprint=fingerprint, fresh=fresh, hook=hook)
    summary = summary_table(result.trials, result.objective, result.direction)
    if config.tuning.tuner == "random":  # kerasflow.training.first_trial: trial 0 is the untuned config
        summary += f"\ntrial {result.trials[0].trial_id}: the configured values"
    summary += f"\nchosen: {result.chosen}"
    step_logger().info(f"search: {result.chosen}")
    tracker.params(result.best_values, prefix="tune.best.")
    tracker.metrics({"best_score": result.best_score, "best_epoch": result.best_epoch}, prefix="tune.")
    tracker.counts({"trials": len(result.trials), "new_trials": result.new_trials, "folds": len(data.folds)},
                   prefix="tune.")
    tracker.tags({"kerasflow.tuning_dir": str(Path(project).resolve())})
    with tempfile.TemporaryDirectory() as tmp:
        trials_frame(result.trials).to_csv(Path(tmp) / "trials.csv", index=False)
        tracker.artifact(str(Path(tmp) / "trials.csv"), "tuning")
        plot = plot_scores(result.trials, result.objective, result.direction, Path(tmp) / "scores.png")
        tracker.artifact(str(plot), "tuning")
    tracker.text(summary + "\n", "tuning/summary.txt")
    return {"hyperparameters": result.best_values, "epochs": result.best_epoch, "score": result.best_score,
            "objective": result.objective, "direction": result.direction, "new_trials": result.new_trials,
            "trials": [asdict(t) for t in result.trials], "directory": project, "summary": summary}


FINISHED = ("COMPLETED", "FAILED", "INVALID")


def search_on_dask(config: PipelineConfig, prepared: Prepared, data: Any, project: str, fingerprint: str,
                   fresh: bool, hook: MlflowTrialLogger) -> Any:
    """Runs the search's trials on Dask workers, each asking one oracle for its next trial.

    The oracle is keras-tuner's chief (`kerasflow.training.distributed.start_chief`),
    serving on a free port; each worker (`tune_worker`) trains trials until
    the oracle has none left and logs them as nested runs. The cluster is a
    `distributed.LocalCluster` of `runner.n_workers` single-threaded
    processes for the search (the oracle on loopback), or the running
    cluster at `runner.address` (the oracle on this machine's address toward
    its scheduler; its workers read the search's files by the same absolute
    paths, so they run here or share the filesystem). Finished trials are
    announced here, `trial 3/20: ...`, as the oracle records them.

    Returns:
        The `SearchResult`.
    """
    from distributed import Client, LocalCluster, wait

    runner = config.runner
    address = free_address(runner.address)
    project = str(Path(project).resolve())  # workers of a remote cluster see the same paths on a shared filesystem
    prepared = Prepared(**{name: str(Path(path).resolve()) for name, path in asdict(prepared).items()})
    chief = start_chief(config, data, project, fingerprint=fingerprint, fresh=fresh, address=address)
    observer = observe_search(config, data, project)
    resumed = {i for i, t in observer.oracle.trials.items() if t.status in FINISHED}  # a killed run's finished trials
    announced: set[str] = set()
    quiet_dask()
    cluster = None if runner.address else LocalCluster(
        n_workers=runner.n_workers, threads_per_worker=1, processes=runner.processes, dashboard_address=None,
        silence_logs=logging.ERROR)
    try:
        with Client(runner.address or cluster) as client:
            workers = len(client.scheduler_info()["workers"]) or runner.n_workers
            futures = [client.submit(tune_worker, config, prepared, f"worker-{i}", address, hook.parent,
                                     hook.experiment_id, hook.uri, project, key=f"tune-worker-{i}", pure=False)
                       for i in range(workers)]
            while not all(f.done() for f in futures):
                with contextlib.suppress(TimeoutError):  # a second passed: announce what finished meanwhile
                    wait(futures, timeout=1, return_when="FIRST_COMPLETED")
                announce_finished(observer, resumed, announced, hook)
            client.gather(futures)  # a worker's error is raised here
    finally:
        chief.terminate()  # every trial has ended (and the oracle saved it), or the search failed
        if cluster is not None:
            cluster.close()
    announce_finished(observer, resumed, announced, hook)
    return search_result(config, observer, set(observer.oracle.trials) - resumed)


def tune_worker(config: PipelineConfig, prepared: Prepared, tuner_id: str, address: tuple[str, int],
                parent_run_id: str, experiment_id: str, uri: str, project: str) -> list[str]:
    """One Dask worker of a search: loads the search's rows and trains the trials the oracle hands it.

    Returns:
        The ids of the trials it ran.
    """
    check_reachable([prepared.raw, prepared.split, project])
    import_tensorflow()
    data = search_data(config, pd.read_parquet(prepared.raw), Split.load(prepared.split),
                       FeatureSpec.load(prepared.features), LabelSpec.load(prepared.labels))
    hook = MlflowTrialLogger(tracking.client_for(uri), parent_run_id, experiment_id, uri, announce=False)
    with contextlib.redirect_stdout(io.StringIO()):  # a worker's prints reach no one; its results go to MLflow
        return sorted(run_search_worker(config, data, project, tuner_id, address, hook))


def announce_finished(observer: Any, resumed: set[str], announced: set[str], hook: MlflowTrialLogger) -> None:
    """Announces the trials the oracle has saved as finished since the last call."""
    with contextlib.suppress(ValueError, OSError, RuntimeError):  # a file being written: read it next time
        observer.oracle.reload()
    for record in trial_records(observer, set(observer.oracle.trials) - resumed):
        if record.trial_id not in announced | resumed and record.status in FINISHED:
            announced.add(record.trial_id)
            hook.report(record)
