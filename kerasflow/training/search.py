"""Hyperparameter search: config search spaces drawn through Keras Tuner.

`declare_space` declares every parameter of the config's `tuning.space` as a
Keras Tuner hyperparameter (`kerasflow.models.hyper.declare`, inside the
conditional scopes of its parents), and `run_search` runs a resumable search whose trials train `build_model`
models on the training rows and score them on the validation rows, or on
k folds of the non-test rows. The test rows are never passed to it.

The search on Dask workers is in `kerasflow.training.distributed`, the
trial records and reports in `kerasflow.training.trials`.

Nothing here imports MLflow or Prefect: a `TrialHook` passed in by the
caller is told about every trial, epoch and fold.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import pandas as pd

from kerasflow.data.split import Split
from kerasflow.errors import BadInputError
from kerasflow.features.labels import LabelSpec
from kerasflow.features.tabular import FeatureSpec
from kerasflow.locks import LockTimeout, file_lock, holder
from kerasflow.models.families import build_model, default_values
from kerasflow.models.hyper import declaration_order, declare
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import PipelineConfig, TrainingConfig
from kerasflow.schemas.tuning import TuningConfig
from kerasflow.training.cv import fold_features, search_folds
from kerasflow.training.encoded import encode_rows, split_encoder
from kerasflow.training.final import model_spec
from kerasflow.training.first_trial import configured_first_oracle, oracle_seed
from kerasflow.training.fitting import DATA_LOSS, build_callbacks, set_seed
from kerasflow.training.image_stream import fit_arguments, is_streamed, validation_data
from kerasflow.training.rows import Partition, make_partition
from kerasflow.training.selection import choose_trial
from kerasflow.training.trials import FOLD_METRIC, TrialRecord, public_values, record_of, trial_records

STATE_FILE = "kerasflow_search.json"


class TuningError(BadInputError):
    """A search that cannot run as configured (bad objective, stale state, no tuning section)."""

    label = "cannot tune"


class TrialHook(Protocol):
    """Receives the events of a search, e.g. to track each trial as a run."""

    def trial_started(self, trial_id: str, values: dict[str, Any]) -> None:
        """A trial begins with these hyperparameter values."""

    def epoch_ended(self, trial_id: str, label: str, epoch: int, logs: dict[str, float]) -> None:
        """An epoch of one model of a trial ended; `label` names its fold/execution (may be empty)."""

    def fold_ended(self, trial_id: str, fold: int, score: float, best_epoch: int) -> None:
        """One fold (cross-validated search) or execution of a trial was scored."""

    def trial_ended(self, record: "TrialRecord") -> None:
        """A trial finished (completed, failed or invalid)."""

    def trial_interrupted(self, trial_id: str, error: BaseException) -> None:
        """A trial was stopped by an exception that also stops the search."""


@dataclass
class SearchResult:
    """The outcome of a search.

    Args:
        best_values: Hyperparameter values of the chosen trial: the best,
            or the configured values `tuning.selection: one_se` kept
            (`kerasflow.training.selection`).
        best_score: Its objective value.
        best_epoch: Its epoch count at the best objective value.
        trials: Every trial of the search so far, in start order.
        objective: Objective name.
        direction: `min` or `max`.
        chosen: Which trial was chosen and why, one sentence.
    """

    best_values: dict[str, Any]
    best_score: float
    best_epoch: int
    trials: list[TrialRecord]
    objective: str
    direction: str
    chosen: str = ""

    @property
    def new_trials(self) -> int:
        """Trials run by this call (the rest were resumed from disk)."""
        return sum(t.new for t in self.trials)


@dataclass
class SearchData:
    """The rows a search may use: one `(train, val)` pair per fold.

    Args:
        folds: Partitions of each fold; one pair for a holdout search.
        specs: The `ModelSpec` of each fold (feature statistics are fitted
            on that fold's training rows).
        rows: Row positions of each fold, `(train, val)`.
    """

    folds: list[tuple[Partition, Partition]]
    specs: list[ModelSpec]
    rows: list[tuple[list[int], list[int]]]


def declare_space(hp: Any, spec: ModelSpec) -> None:
    """Declares every parameter of a search space, parents first, with config defaults.

    Keras Tuner only learns about a conditional parameter when a build
    enters its scope; declaring the whole space up front makes every one of
    them searchable, whichever branch the default build takes.

    Args:
        hp: A `keras_tuner.HyperParameters`.
        spec: The `ModelSpec` with the search space and the config values.
    """
    space = spec.search_space
    defaults = default_values(spec)
    for name in declaration_order(space):
        declare(hp, name, space[name], defaults.get(name), space)


def objective_of(settings: TuningConfig) -> Any:
    """Returns the Keras Tuner `Objective` of a tuning section."""
    import keras_tuner

    return keras_tuner.Objective(settings.objective.name, direction=settings.objective.direction)


def check_objective(settings: TuningConfig, labels: LabelSpec) -> None:
    """Checks that the model reports the objective metric.

    Raises:
        TuningError: The objective is not one of `val_data_loss`,
            `val_loss` and the validation twins of the compiled metrics.
    """
    known = [DATA_LOSS, "val_loss", *(f"val_{m}" for m in labels.metrics())]  # DATA_LOSS: `data_loss_callback`
    if settings.objective.name not in known:
        raise TuningError(f"tuning.objective.name: {settings.objective.name!r} is not reported by a "
                          f"{labels.task} model; use one of {known}")


def search_data(config: PipelineConfig, frame: pd.DataFrame, split: Split, features: FeatureSpec,
                labels: LabelSpec) -> SearchData:
    """Builds the partitions a search trains and scores on, never from test rows.

    A holdout search uses the training and validation rows. A
    cross-validated one (`tuning.cv_folds`, or a k-fold split) uses folds of
    the non-test rows, each with feature statistics fitted on its own
    training rows.

    Args:
        config: The pipeline config with a `tuning` section.
        frame: All raw rows.
        split: The pipeline's split.
        features: Feature spec fitted on the split's training rows.
        labels: Label spec.

    Returns:
        The `SearchData`.
    """
    folds = search_folds(config, frame, split, labels)
    if not folds:
        spec = model_spec(config, features, labels, config.tuning.searched())
        pair = (make_partition(frame, split.train, features, labels), make_partition(frame, split.val, features, labels))
        return SearchData(folds=[pair], specs=[spec], rows=[(split.train, split.val)])
    pairs, specs = [], []
    for train_rows, val_rows in folds:
        fold_spec = fold_features(config, frame, train_rows, features, labels)
        specs.append(model_spec(config, fold_spec, labels, config.tuning.searched()))
        pairs.append((make_partition(frame, train_rows, fold_spec, labels),
                      make_partition(frame, val_rows, fold_spec, labels)))
    return SearchData(folds=pairs, specs=specs, rows=folds)


def search_fingerprint(config: PipelineConfig, data_digest: str) -> str:
    """Returns a digest of everything that makes trial scores comparable.

    `max_trials`, `refit`, `selection` and `directory` are left out, so a
    search can be resumed with a larger budget or chosen from differently,
    and `preprocessing.numeric_bin_edges` at its default (older searches resume).

    Args:
        config: The pipeline config.
        data_digest: Fingerprint of the raw data.

    Returns:
        A hex digest.
    """

    data = config.model_dump(mode="json", include={"data", "split", "preprocessing", "model", "training", "tuning"})
    for key in ("max_trials", "refit", "selection", "directory"):
        data["tuning"].pop(key, None)
    if data["preprocessing"].get("numeric_bin_edges") == "quantile":  # as before the option: saved searches resume
        data["preprocessing"].pop("numeric_bin_edges")
    payload = json.dumps({"config": data, "data": data_digest}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_search(config: PipelineConfig, data: SearchData, project_dir: str | Path, *, fingerprint: str,
               fresh: bool = False, hook: TrialHook | None = None) -> SearchResult:
    """Runs (or resumes) the configured Keras Tuner search.

    Tuner state lives in `project_dir`; a later call with the same
    fingerprint continues it without re-running completed trials, and an
    interrupted trial is run again.

    Args:
        config: The pipeline config with a `tuning` section.
        data: The search's partitions, from `search_data`.
        project_dir: Folder of the tuner's state.
        fingerprint: `search_fingerprint` of this search.
        fresh: Delete any saved state and start over. Default false.
        hook: Receives trial, epoch and fold events. Default none.

    Returns:
        The `SearchResult`.

    Raises:
        TuningError: No trial completed, or saved state belongs to a
            different search and `fresh` is false.
    """
    settings = config.tuning
    check_objective(settings, data.specs[0].labels)
    project = Path(project_dir)
    claim_project(project, fingerprint, fresh)
    tuner = build_tuner(config, data, project, hook=hook)
    tuner.search(verbose=0)
    return search_result(config, tuner, tuner.new_trial_ids)


def search_result(config: PipelineConfig, tuner: Any, new_ids: set[str]) -> SearchResult:
    """Reads a finished search's best values and trial records from its tuner's oracle.

    Args:
        config: The pipeline config with a `tuning` section.
        tuner: The tuner (the chief's, for a search on Dask).
        new_ids: Trials this call ran (the others were resumed).

    Returns:
        The `SearchResult`.

    Raises:
        TuningError: No trial completed.
    """
    settings = config.tuning
    records = trial_records(tuner, new_ids)
    completed = [t for t in records if t.status == "COMPLETED" and t.score is not None]
    if not completed:
        reasons = "; ".join(sorted({t.message.strip().splitlines()[-1] for t in records if t.message})) or "none ran"
        raise TuningError(f"no trial of the search completed ({reasons})")
    best = next(t for t in records if t.trial_id == tuner.oracle.get_best_trials(1)[0].trial_id)
    configured = records[0] if settings.tuner == "random" and records[0] in completed else None  # first_trial
    choice = choose_trial(best, configured, settings.objective.direction, settings.selection)
    return SearchResult(best_values=choice.trial.values, best_score=float(choice.trial.score),
                        best_epoch=choice.trial.best_epoch or config.training.epochs, trials=records,
                        objective=settings.objective.name, direction=settings.objective.direction,
                        chosen=choice.reason)


def build_tuner(config: PipelineConfig, data: SearchData, project: Path, hook: TrialHook | None = None) -> Any:
    """Creates the configured Keras Tuner tuner over `build_model`.

    A `random` search's first trial is the configured values
    (`kerasflow.training.first_trial.configured_first_oracle`).

    Args:
        config: The pipeline config with a `tuning` section.
        data: The search's partitions.
        project: Folder of the tuner's state (`<directory>/<name>`).
        hook: Trial event receiver. Default none.

    Returns:
        A tuner whose `search()` takes no arguments.
    """
    import keras_tuner

    s = config.tuning
    searching = dict(objective=objective_of(s), seed=oracle_seed(s.seed), max_consecutive_failed_trials=3)
    common = dict(directory=str(project.parent), project_name=project.name, overwrite=False)
    kinds = {
        "bayesian": (keras_tuner.BayesianOptimization, dict(max_trials=s.max_trials, **searching)),
        "grid": (keras_tuner.GridSearch, dict(max_trials=s.max_trials, **searching)),
        "hyperband": (keras_tuner.Hyperband, dict(max_epochs=s.max_epochs or config.training.epochs,
                                                  factor=s.factor, **searching)),
    }
    if s.tuner == "random":  # trial 0 is the configured values (`first_trial`), run by Keras Tuner's own Tuner
        base, extra = keras_tuner.Tuner, dict(oracle=configured_first_oracle(max_trials=s.max_trials, **searching))
    else:
        base, extra = kinds[s.tuner]
    tuner_class = type(f"Kerasflow{'RandomSearch' if s.tuner == 'random' else base.__name__}", (_TrialRunner, base), {})
    hypermodel = _hypermodel(data.specs[0])
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from ..." is printed unconditionally
        tuner = tuner_class(hypermodel=hypermodel, executions_per_trial=s.executions_per_trial, **common, **extra)
    tuner.configure(config.training, data, hook, s.seed)
    if s.tuner == "hyperband":
        tuner.oracle.max_trials = s.max_trials
    tuner.oracle.verbose = 0
    return tuner

class _TrialRunner:
    """Mixin over a Keras Tuner tuner: trains each trial on every fold and reports to a hook."""

    def configure(self, training: TrainingConfig, data: SearchData, hook: TrialHook | None, seed: int) -> None:
        self._training, self._data, self._hook, self._seed = training, data, hook, seed
        self._encodings: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self.new_trial_ids: set[str] = set()

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)
        self.new_trial_ids.add(trial.trial_id)
        if self._hook:
            self._hook.trial_started(trial.trial_id, public_values(trial.hyperparameters.values))

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        if self._hook:
            self._hook.trial_ended(record_of(self.oracle.get_trial(trial.trial_id), True))

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        try:
            return self._score_trial(trial)
        except BaseException as exc:
            if self._hook and not isinstance(exc, Exception):
                self._hook.trial_interrupted(trial.trial_id, exc)
            raise

    def _score_trial(self, trial: Any) -> dict[str, float]:
        hp = trial.hyperparameters
        objective = self.oracle.objective
        single = len(self._data.folds) == 1
        epochs = int(hp.values.get("tuner/epochs", self._training.epochs))
        initial = int(hp.values.get("tuner/initial_epoch", 0)) if single else 0
        scores, best_epochs = [], []
        for k, ((train, val), spec) in enumerate(zip(self._data.folds, self._data.specs)):
            for execution in range(self.executions_per_trial):
                label = _label(k, execution, len(self._data.folds), self.executions_per_trial)
                score, best = self._fit_one(trial, hp, spec, (k, train, val), epochs, initial, execution, label)
                scores.append(score)
                best_epochs.append(best)
                if self._hook:
                    self._hook.fold_ended(trial.trial_id, len(scores) - 1, score, best)
        folds = {f"{FOLD_METRIC}{k}": score for k, score in enumerate(scores)}
        return {objective.name: float(np.mean(scores)), "best_epoch": float(np.mean(best_epochs)), **folds}

    def _encoded(self, k: int, model: Any, train: Partition, val: Partition) -> tuple[Any, Any, Any, bool]:
        """Returns the model to fit, fold `k`'s inputs for it, and whether they are encoded.

        A model with a fixed feature encoder (`split_encoder`: the tabular
        encoding, text vectorization) fits its layers after the encoder on
        rows encoded once per fold and encoding for the whole search, not
        once per batch of every trial.
        """
        split = None if is_streamed(train.x) else split_encoder(model)
        if split is None:  # arrays, or image files streamed from disk (`image_stream`)
            return model, train.x, val.x, False
        key = (k, split.key)
        if key not in self._encodings:
            self._encodings[key] = (encode_rows(split, train.x), encode_rows(split, val.x))
        return split.core, *self._encodings[key], True

    def _fit_one(self, trial: Any, hp: Any, spec: ModelSpec, fold: tuple[int, Partition, Partition], epochs: int,
                 initial: int, execution: int, label: str) -> tuple[float, int]:
        import keras

        k, train, val = fold
        keras.backend.clear_session()
        set_seed(self._seed + execution)
        model = build_model(hp, replace(spec, seed=spec.seed + execution))  # executions differ in initial weights
        model, x_train, x_val, encoded = self._encoded(k, model, train, val)
        warm = initial > 0 and "tuner/trial_id" in hp.values
        if warm:
            model.load_weights(self._get_checkpoint_fname(hp.values["tuner/trial_id"]))
        hook = self._hook

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            if hook:
                hook.epoch_ended(trial.trial_id, label, epoch, logs)

        callbacks = build_callbacks(self._training, on_epoch, has_val=True)
        if "tuner/epochs" in hp.values and len(self._data.folds) == 1:
            from keras_tuner.src.engine import tuner_utils

            callbacks.append(tuner_utils.SaveBestEpoch(self.oracle.objective, self._get_checkpoint_fname(trial.trial_id)))
        batch = self._training.batch_size
        if encoded:  # rows encoded once by the fixed feature encoder
            data, val_data = {"x": x_train, "y": train.y, "batch_size": batch, "shuffle": True}, (x_val, val.y)
        else:
            data, val_data = fit_arguments(x_train, train.y, batch), validation_data((x_val, val.y), batch)
        history = model.fit(**data, validation_data=val_data, epochs=epochs, initial_epoch=initial,
                            callbacks=callbacks, verbose=0).history
        values = history.get(self.oracle.objective.name)
        if not values:
            raise TuningError(f"the model did not report {self.oracle.objective.name}; got {sorted(history)}")
        pick = np.nanargmin if self.oracle.objective.direction == "min" else np.nanargmax
        if all(not math.isfinite(v) for v in values):
            raise ValueError(f"{self.oracle.objective.name} was never finite (diverged)")
        index = int(pick(values))
        return float(values[index]), initial + index + 1


def _hypermodel(spec: ModelSpec) -> Any:
    import keras_tuner

    class _SpaceHyperModel(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            return build_model(hp, spec)

        def declare_hyperparameters(self, hp: Any) -> None:
            declare_space(hp, spec)

    return _SpaceHyperModel(name="kerasflow")


def _label(fold: int, execution: int, folds: int, executions: int) -> str:
    parts = ([f"fold_{fold}"] if folds > 1 else []) + ([f"execution_{execution}"] if executions > 1 else [])
    return ".".join(parts)


@contextlib.contextmanager
def holding_project(project: str | Path, run_id: str, notice: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Holds a tuner project folder for one search: its lock (`<folder>.lock`, beside it).

    Two searches of one config at once would share keras-tuner's trial
    files. When another live process holds the folder, this search uses a
    folder of its own, `<folder>.run-<run id>`, and `notice` names the
    holder. A killed holder's lock is released by the kernel, so a rerun
    after a kill resumes the search in the shared folder.

    Args:
        project: The configured project folder (`tuning.project_dir`).
        run_id: The MLflow run that searches now.
        notice: Called with a line when the shared folder is taken. Default: stderr.

    Yields:
        The folder to search in.
    """
    project = Path(project)
    for candidate in (project, project.with_name(f"{project.name}.run-{run_id[:16]}")):
        lock = candidate.with_name(f"{candidate.name}.lock")
        held = contextlib.ExitStack()
        try:
            held.enter_context(file_lock(lock, purpose=f"tuner search of MLflow run {run_id}", timeout=0))
        except LockTimeout:
            (notice or _to_stderr)(f"the tuner folder {project} is in use by {holder(lock)}: this search keeps "
                                   f"its trials in {project.with_name(project.name + '.run-' + run_id[:16])}")
            continue
        with held:
            yield candidate
        return
    raise RuntimeError(f"the run-scoped tuner folder of run {run_id} is in use")  # run ids are unique


def _to_stderr(line: str) -> None:
    print(f"kerasflow: {line}", file=sys.stderr, flush=True)


def claim_project(project: Path, fingerprint: str, fresh: bool) -> None:
    """Makes `project` the state folder of the search `fingerprint`, emptied first if `fresh`.

    Raises:
        TuningError: The folder holds another search's state, or files that are not a search.
    """

    state = project / STATE_FILE
    if fresh and project.exists():
        shutil.rmtree(project)
    if state.is_file():
        saved = json.loads(state.read_text()).get("fingerprint")
        if saved != fingerprint:
            raise TuningError(f"tuner state in {project} belongs to a different search (the config or data "
                              f"changed since it was saved); rerun with --fresh to start over, or set "
                              f"tuning.directory elsewhere")
        return
    if project.exists() and any(project.iterdir()):
        raise TuningError(f"{project} holds files that are not a kerasflow search; rerun with --fresh "
                          f"to replace them, or set tuning.directory elsewhere")
    project.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"fingerprint": fingerprint, "created": time.time()}))
