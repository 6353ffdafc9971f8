"""Step caching with Prefect cache policies: a rerun reuses the steps whose inputs did not change.

The data and training steps (load, validate, split, fit preprocessing,
train) declare a `StepInputs` cache policy in their decorator. Its key is a
hash of:

- the config sections the step depends on (a changed `training.epochs`
  invalidates training only, not the data steps);
- the step's other inputs: paths of earlier steps' outputs, which lie in
  those steps' keyed folders, so a change upstream changes every key below;
- files the step reads directly: the data sources (path, size, mtime),
  the expectation suite;
- the code version: a hash of the installed kerasflow sources.

`run_step` runs a step with caching on: it gives the step a persistent
folder named by the key (`<state>/steps/<pipeline>/<step>/<key>`) for its
outputs, and a journaling tracker, so that what the step logs to MLflow is
recorded beside its outputs. Prefect persists the step's result (a few
paths) and, when a later run computes the same key, returns it as a
`Cached` state without running the step; `run_step` then replays the
journal into the new MLflow run and tags the run `kerasflow.cache.<step>`
= `hit` (with `kerasflow.cache.<step>.run`, the run that computed it) or
`miss`. A step called directly, outside `run_step`, is never cached.

Each entry is computed under a lock beside its folder (a second run that
needs it at the same time waits, then reuses it), and records the sha256 of
its files (`kerasflow.tasks.entries`): a damaged entry is reported with a
warning that names the file, deleted and computed again.

Cached folders and records expire after `KERASFLOW_CACHE_DAYS` (default 7)
days without use; `KERASFLOW_CACHE_DAYS=0` turns caching off. `--fresh`
recomputes every step and caches the new results.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from prefect.cache_policies import CachePolicy

from kerasflow.data.load import source_identity
from kerasflow.heavy import release_memory
from kerasflow.locks import file_lock
from kerasflow.models.families import pretrained_base
from kerasflow.progress import status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.entries import complete, damage, write_manifest
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import PipelineRun, Tracker
from kerasflow.tracking.journal import JOURNAL, discard_journal, seal_journal, start_journal
from kerasflow.training.kinds import kind_of
from kerasflow.training.resume import state_home

NOT_KEYED = frozenset({"tracker", "config", "workdir", "fresh"})  # inputs that never change a step's result
CACHE_TAG = "kerasflow.cache."


def cache_days() -> float:
    """Days an unused cached step is kept: `KERASFLOW_CACHE_DAYS`, default 7."""
    try:
        return max(float(os.environ.get("KERASFLOW_CACHE_DAYS", "7")), 0.0)
    except ValueError:
        return 7.0


def steps_root() -> Path:
    """The folder of cached step outputs: `<state>/steps` (see `kerasflow.training.resume.state_home`)."""
    return state_home() / "steps"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A hash of every kerasflow source file: the code version a cached step was computed with."""
    import kerasflow

    digest = hashlib.sha256()
    for root in sorted({Path(p).resolve() for p in kerasflow.__path__}):
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(".py")):
                path = Path(folder, name)
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def data_files(config: PipelineConfig) -> list[Any]:
    """The data sources a load step reads: `data.source` (every shard, when streaming) and `data.test_source`.

    Each data kind names its own (`kerasflow.training.kinds.DataKind.sources`).
    """
    return kind_of(config.data).sources(config)


def suite_file(config: PipelineConfig) -> list[Any]:
    """The expectation suite a validate step reads, if any."""
    return [config.validation.suite]


def base_model(config: PipelineConfig) -> list[Any]:
    """The local pretrained base a model starts from, if any (see `StepInputs` for registry bases)."""
    base = pretrained_base(config.model)
    return [base.source if base is not None and base.origin != "registry" and Path(base.source).exists() else None]


@dataclass(kw_only=True)
class StepInputs(CachePolicy):
    """Cache key of a kerasflow step: its config sections, inputs, files read and the code version.

    Keys only calls made through `run_step` (whose tracker journals), so a
    step called directly always runs. A step whose model starts from a
    registered base (`models:/...`, which an alias move changes) is not
    cached.

    Args:
        sections: Config sections the step's result depends on: top-level
            sections, or a dotted path to one value (`registry.drift.bins`).
        files: Returns the sources the step reads from the config; each is
            identified by `kerasflow.data.load.source_identity`.
    """

    sections: tuple[str, ...] = ()
    files: Callable[[PipelineConfig], list[Any]] | None = None
    exclude: frozenset[str] = field(default=NOT_KEYED)

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        """Prefect's hook: the step's key when run through `run_step`, else None (no caching)."""
        if getattr(inputs.get("tracker"), "journal", None) is None:
            return None
        return self.key_of(inputs)

    def key_of(self, inputs: dict[str, Any]) -> str | None:
        """The step's key for these inputs, or None when it must not be cached.

        Args:
            inputs: The step's arguments by name; `config` is the `PipelineConfig`.

        Returns:
            A sha256 hex digest, or None (a source cannot be identified, or
            the model starts from a registered base).
        """
        config: PipelineConfig = inputs["config"]
        base = pretrained_base(config.model)
        if base is not None and base.origin == "registry" and {"model", "preprocessing"} & set(self.sections):
            return None
        files = [source_identity(f) for f in (self.files(config) if self.files else [])]
        if any(identity is None for identity in files):
            return None
        dumped = config.model_dump(mode="json")
        payload = {"code": code_digest(), "config": {s: config_value(dumped, s) for s in self.sections}, "files": files,
                   "inputs": {k: v for k, v in sorted(inputs.items()) if k not in self.exclude}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=_plain).encode()).hexdigest()


def config_value(dumped: dict[str, Any], section: str) -> Any:
    """The value of a config section, or of a dotted path inside one (`registry.drift.bins`), None if unset."""
    value: Any = dumped
    for name in section.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _plain(value: Any) -> Any:
    """JSON fallback for step inputs: dataclasses (`Prepared`) as dicts, anything else as text."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)


def run_step(step: Any, run: PipelineRun, config: PipelineConfig, *args: Any, fresh: bool = False,
             **kwargs: Any) -> Any:
    """Runs a step with its cache policy: reuses a cached result, or runs it and caches the result.

    Args:
        step: A task whose cache policy is a `StepInputs`; its first two
            parameters are `tracker` and `config`, and a `workdir`
            parameter, if any, receives the step's keyed folder (the run's
            scratch folder when the step cannot be cached).
        run: The pipeline run.
        config: The pipeline config.
        *args: The step's other arguments, in order.
        fresh: Run the step even if a cached result exists, and cache the new one. Default false.
        **kwargs: More arguments by name.

    Returns:
        The step's result, computed or cached.

    Raises:
        Whatever the step raises; a failed step caches nothing.

    Example:

    ```python
    raw = run_step(load_data, run, config)
    split = run_step(split_data, run, config, raw)
    ```
    """
    inputs, entry = _bound(step, run, config, args, kwargs)
    with status(f"running the {step.name} step"):
        try:
            if entry is None:  # caching off, or e.g. a registered base model: run in the run's scratch folder
                return step(**inputs)
            return _run_cached(step, run.tracker, inputs, *entry, fresh)
        finally:
            release_memory()  # the rows the step read: back to the system, not kept beside the next step's


def submit_step(step: Any, run: PipelineRun, config: PipelineConfig, *args: Any, fresh: bool = False,
                **kwargs: Any) -> "StepFuture":
    """Starts a step as `run_step` runs it, but on the flow's task runner (`Task.submit`), beside the caller's work.

    The entry's lock is taken and its journal started here, in the calling
    thread; `StepFuture.result` waits for the task and does the rest
    (seal or discard the journal, replay it on a cache hit, tag
    `kerasflow.cache.<step>`, release the lock) in the calling thread again.
    A flow resolves every `StepFuture` it starts, on every path
    (`kerasflow.tasks.concurrency.side_by_side`).

    Args:
        step: A task whose cache policy is a `StepInputs` (see `run_step`).
        run: The pipeline run.
        config: The pipeline config.
        *args: The step's other arguments, in order.
        fresh: Run the step even if a cached result exists, and cache the new one. Default false.
        **kwargs: More arguments by name.

    Returns:
        The running step's `StepFuture`.
    """
    started, shown = ExitStack(), status(f"running the {step.name} step")
    shown.__enter__()  # ended when the task ends (below), not when the flow asks for the result
    try:
        inputs, entry = _bound(step, run, config, args, kwargs)
        if entry is None:
            future = step.submit(**inputs)
        else:
            folder, record = entry
            started.enter_context(_entry_lock(step, run.tracker, folder))
            refresh = fresh or _unusable(step, folder, record)
            journal = _journaling(run.tracker, inputs, folder)
            future = _cached_step(step, refresh).submit(**inputs)
    except BaseException:
        shown.__exit__(None, None, None)
        started.close()
        raise
    future.add_done_callback(lambda _: shown.__exit__(None, None, None))  # once, in the task's thread
    if entry is None:
        return StepFuture(future, lambda state: state.result(), started)

    def finish(state: Any) -> Any:
        value, settled = _settled(step, state, journal, folder, refresh)
        return _concluded(step, run.tracker, inputs, folder, value, settled)

    return StepFuture(future, finish, started)


class StepFuture:
    """A step started by `submit_step`: `result()` waits for it and finishes it in the calling thread.

    Args:
        future: The task's `PrefectFuture`.
        finish: Turns the task's final state into the step's value (raising its error).
        started: What the step holds until it is finished: the entry's lock.
    """

    def __init__(self, future: Any, finish: Callable[[Any], Any], started: ExitStack):
        self.future, self.finish, self.started = future, finish, started
        self.outcome: tuple[bool, Any] | None = None  # (succeeded, value or error), once finished

    def result(self) -> Any:
        """Waits for the step and returns its value, or raises its error (the same on every call)."""
        if self.outcome is None:
            self.future.wait()  # interrupted here, the step still runs and holds its entry: waited for again later
            try:
                self.outcome = (True, self.finish(self.future.state))
            except BaseException as exc:
                self.outcome = (False, exc)
            finally:
                self.started.close()
                release_memory()  # the rows the step read, as `run_step` does
        succeeded, value = self.outcome
        if not succeeded:
            raise value
        return value


def _bound(step: Any, run: PipelineRun, config: PipelineConfig, args: tuple, kwargs: dict[str, Any],
           ) -> tuple[dict[str, Any], tuple[Path, Path] | None]:
    """The step's inputs by name, and its cache entry `(folder, record)` (None, tagged `off`: not cached)."""
    signature = inspect.signature(step.fn)
    if "workdir" in signature.parameters:
        kwargs["workdir"] = run.workdir
    bound = signature.bind(run.tracker, config, *args, **kwargs)
    bound.apply_defaults()
    inputs = dict(bound.arguments)
    policy = step.cache_policy
    key = policy.key_of(inputs) if isinstance(policy, StepInputs) and cache_days() > 0 else None
    if key is None:
        run.tracker.tags({f"{CACHE_TAG}{step.name}": "off"})
        return inputs, None
    prune_steps()
    return inputs, (steps_root() / config.name / step.name / key[:24], steps_root() / "results" / key)


def _run_cached(step: Any, tracker: Tracker, inputs: dict[str, Any], folder: Path, record: Path,
                fresh: bool) -> Any:
    """Runs `step` with caching on, its outputs in `folder`; replays its journal on a cache hit.

    Under the entry's lock (`<folder>.lock`): a second run that needs the
    same entry at the same time waits, with a message naming the first
    (pid, host, run), then reuses its result. A finished entry whose files
    no longer match their manifest is reported, deleted and computed again.
    """
    with _entry_lock(step, tracker, folder):
        refresh = fresh or _unusable(step, folder, record)
        value, state = _call_cached(step, tracker, inputs, folder, refresh)
        return _concluded(step, tracker, inputs, folder, value, state)


def _entry_lock(step: Any, tracker: Tracker, folder: Path) -> Any:
    """The lock of a cache entry (`<folder>.lock`), naming this run to a second one that waits for it."""
    purpose = f"compute step {step.name} for MLflow run {tracker.run_id}"
    return file_lock(folder.with_name(folder.name + ".lock"), purpose=purpose, notice=step_logger().warning)


def _concluded(step: Any, tracker: Tracker, inputs: dict[str, Any], folder: Path, value: Any, state: Any) -> Any:
    """The step's value once its state is known: tagged `miss`, or its journal replayed and tagged `hit`.

    A cached result Prefect could not read (`state` None) is computed again first.
    """
    if state is None:
        value, state = _call_cached(step, tracker, inputs, folder, True)
    if state.name != "Cached":
        tracker.tags({f"{CACHE_TAG}{step.name}": "miss"})
        return value
    origin = tracker.replay(folder)
    os.utime(folder)  # in use: not pruned
    tracker.tags({f"{CACHE_TAG}{step.name}": "hit", f"{CACHE_TAG}{step.name}.run": origin})
    step_logger().info(f"{step.name}: reused the result of run {origin} (unchanged inputs; --fresh recomputes)")
    return value


def _unusable(step: Any, folder: Path, record: Path) -> bool:
    """Whether the entry must be computed (again): none yet, or damaged (warned, and deleted)."""
    if not (folder / JOURNAL).is_file() and not complete(folder):
        return True
    problem = damage(folder, record)
    if problem is None:
        return False
    _discard(step, folder, record, problem)
    return True


def _discard(step: Any, folder: Path, record: Path, problem: str) -> None:
    step_logger().warning(f"{step.name}: the cached result in {folder} is damaged ({problem}); computing it again")
    shutil.rmtree(folder, ignore_errors=True)
    record.unlink(missing_ok=True)


def _call_cached(step: Any, tracker: Tracker, inputs: dict[str, Any], folder: Path,
                 refresh: bool) -> tuple[Any, Any]:
    """One call of the cached step; `(value, state)`, or `(None, None)` when a cached result was unreadable."""
    journal = _journaling(tracker, inputs, folder)
    state = _cached_step(step, refresh)(**inputs, return_state=True)
    return _settled(step, state, journal, folder, refresh)


def _journaling(tracker: Tracker, inputs: dict[str, Any], folder: Path) -> str:
    """Starts the entry's journal and points the step's `tracker` (and `workdir`) at the entry; returns the journal."""
    journal = start_journal(folder, tracker.run_id)
    inputs["tracker"] = tracker.journaled(journal)
    if "workdir" in inputs:
        inputs["workdir"] = str(folder)
    return journal


def _settled(step: Any, state: Any, journal: str, folder: Path, refresh: bool) -> tuple[Any, Any]:
    """The value of a cached step's final `state`: its journal sealed (computed) or discarded (reused, failed)."""
    try:
        value = state.result()
    except BaseException as exc:
        discard_journal(journal)
        if state.name == "Cached" and not refresh and isinstance(exc, Exception):
            _discard(step, folder, steps_root() / "results" / folder.name, f"{type(exc).__name__}: {exc}")
            return None, None
        raise
    if state.name != "Cached":
        seal_journal(journal)
        write_manifest(folder)
    else:
        discard_journal(journal)
    return value, state


def _cached_step(step: Any, refresh: bool) -> Any:
    """The step with its results persisted under the steps folder; `refresh` recomputes and overwrites."""
    return step.with_options(persist_result=True, refresh_cache=refresh,
                             result_storage=steps_root() / "results",
                             cache_expiration=timedelta(days=cache_days()))


@functools.lru_cache(maxsize=1)
def prune_steps() -> int:
    """Deletes cached step folders unused for `cache_days()`, once per process.

    Returns:
        The number of folders deleted.
    """
    cutoff = time.time() - cache_days() * 86400
    removed = 0
    for path in [*steps_root().glob("*/*/*"), *steps_root().glob("results/*")]:
        if path.suffix == ".lock":  # an entry's lock: removing it could let two runs hold it
            continue
        try:
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
