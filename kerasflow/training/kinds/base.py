"""The data kind interface: one implementation per kind of data, chosen from the `data` section.

A data kind is how a pipeline's rows are held and read: a table in memory
(`table.py`), a table streamed from Parquet shards (`stream.py`), or images
(`images.py`: a folder of class subfolders, or a table of pixel columns).
Every step that touches the rows asks the kind: the load step (`load`,
`sources` for its cache key), the data-driven defaults and the config-time
lint (`read`, `profile_rows`, `images`), the validate step (`check`), the split (`split`), the
preprocessing fit (`fit_features`), the final fit (`train`), the test
scoring (`evaluate`), the scikit-learn baseline scored on the same test rows
(`baseline`) and the per-epoch checkpoints (`checkpoint_key`). Tasks
call these and hold no `if` on the kind.

A kind registers itself with `@register`; `kind_of` imports every module of
this package once (on first use, not at import time) and returns the
registered kind of highest `priority` that `claims` the data section.

Plain code: no Prefect, no MLflow. What a step logs goes through a
`StepLog`, which the task gives (its tracker plus the step's logger).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from kerasflow.data.drift import Reference, training_reference
from kerasflow.training.baseline import Baseline

if TYPE_CHECKING:  # annotations only: the kinds resolve without loading the training code
    from kerasflow.schemas.config import DataConfig, PipelineConfig
    from kerasflow.training.fitting import EpochHook, TrainingResult


class StepLog(Protocol):
    """Where a data kind logs what a step found: the step's tracker, plus its terminal logger.

    `kerasflow.tracking.Tracker` has every method but `warning`; the tasks
    pass a `kerasflow.tasks.steplog.StepLog`, which adds it.
    """

    def tags(self, tags: dict[str, Any]) -> None: ...

    def params(self, params: dict[str, Any], prefix: str = "") -> None: ...

    def metrics(self, metrics: dict[str, float], prefix: str = "", step: int = 0) -> None: ...

    def counts(self, counts: dict[str, float], prefix: str = "") -> None: ...

    def json(self, data: Any, artifact_file: str) -> None: ...

    def text(self, text: str, artifact_file: str) -> None: ...

    def dataset(self, frame: Any, *, source: str, digest: str, target: str, rows: int | None = None) -> None: ...

    def warning(self, message: str) -> None: ...


@dataclass
class Fitted:
    """What the preprocessing fit learned on the training rows.

    Args:
        features: The fitted `FeatureSpec` (or `ImageSpec`), saved by the task.
        labels: The fitted `LabelSpec`.
        params: The `preprocessing.*` params to log.
        reference: The training rows' drift reference (`reference_of`),
            which registration logs with the model without reading the rows.
    """

    features: Any
    labels: Any
    params: dict[str, Any]
    reference: Reference


def reference_of(config: PipelineConfig, train: pd.DataFrame, features: Any) -> Reference:
    """The drift reference of training rows in memory, for the columns of the fitted `features` spec.

    Args:
        config: The pipeline config (`data.target`, `registry.drift.bins`, `split.seed`).
        train: The training rows.
        features: The fitted `FeatureSpec` or image spec.

    Returns:
        The `kerasflow.data.drift.Reference` (`training_reference`).
    """
    return training_reference(train, features, config.data.target, bins=config.registry.drift.bins,
                              seed=config.split.seed)


@dataclass(frozen=True)
class Inferred:
    """Values of the `data` section that a config leaves out and its kind read from the data.

    Args:
        data: `{field: value}` merged into the `data` section (a nested
            section as a dict, e.g. `{"image": {"size": [16, 16]}}`).
        note: A few words for the run's log: what was inferred, from what.
    """

    data: dict[str, Any]
    note: str


class FileCheck:
    """The validate step's check of the data kind's own files, before any training.

    This base checks nothing (a table has only the expectation suite);
    image data return an `kerasflow.training.kinds.images.ImageCheck`.
    """

    def log(self, log: StepLog) -> None:
        """Logs the check's report and shows its notices."""

    def require(self) -> None:
        """Raises when the check failed (the report is logged first)."""


class DataKind(ABC):
    """One kind of data: how its rows are loaded, profiled, checked, split, fitted, trained on and scored.

    Attributes:
        name: The kind's name (`table`, `stream`, `image_folder`, `pixel_table`).
        priority: Kinds that claim the same data section are tried highest first.
        images: The rows are images: the lint profiles no text columns or
            input widths, and the default model is an image model.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 0
    images: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def claims(cls, data: DataConfig) -> bool:
        """Returns True when the `data` section is of this kind."""

    @abstractmethod
    def sources(self, config: PipelineConfig) -> list[Any]:
        """The files the load step reads, for its cache key (`kerasflow.data.load.source_identity` of each)."""

    def read(self, config: PipelineConfig) -> Any:
        """The rows as the load step reads them, before any check, or None when the kind keeps nothing.

        A flow that profiles the data before loading it (to choose the
        sections a config leaves out) reads them here once and hands them
        to `profile_rows` and `load`, so the sources are read once. Default
        None: the kind profiles something lighter than its load reads (an
        image folder's listing) or cannot hold its rows (a stream).
        """
        return None

    def incomplete(self, config: PipelineConfig) -> bool:
        """True when the `data` section leaves out values this kind reads from the data (`infer`). Default false."""
        return False

    def infer(self, config: PipelineConfig, rows: pd.DataFrame) -> Inferred | None:
        """The values of the `data` section the config leaves out, read from its profiled rows.

        Called before the sections a config leaves out are chosen, for a
        config the kind calls `incomplete`.

        Args:
            config: The config as written.
            rows: What `profile_rows` returned for it.

        Returns:
            The `Inferred` values, or None (default) when there is nothing
            to infer or the data do not tell (the load step then says why).
        """
        return None

    @abstractmethod
    def load(self, config: PipelineConfig, workdir: str, log: StepLog, read: Any = None) -> str:
        """Reads and checks the raw rows, fingerprints them and logs them as the run's input.

        Args:
            config: The pipeline config.
            workdir: The folder for the raw rows.
            log: What the step logs through.
            read: The rows `read` returned for this config, if a flow read
                them already; else the load step reads the sources. Default none.

        Returns:
            Path of the raw rows (Parquet) in `workdir`; files the later
            steps read (a manifest, a listing) lie beside it.
        """

    @abstractmethod
    def profile_rows(self, config: PipelineConfig, read: Any = None) -> tuple[pd.DataFrame, int]:
        """The rows profiled before anything runs, and how many trailing ones are test rows.

        `read` is what `read` returned for this config, if anything; else the sources are read here.
        """

    @abstractmethod
    def check(self, config: PipelineConfig, raw_path: str) -> FileCheck:
        """The validate step's check of the loaded data beyond the expectation suite."""

    def table_rows(self, raw_path: str) -> int | None:
        """Rows of the whole table when `raw_path` holds a sample of it (streaming), else None."""
        return None

    @abstractmethod
    def split(self, config: PipelineConfig, raw_path: str, workdir: str, log: StepLog) -> str:
        """Splits the rows and logs sizes (and class balance). Returns the path of the `Split` JSON."""

    @abstractmethod
    def fit_features(self, config: PipelineConfig, raw_path: str, split_path: str) -> Fitted:
        """Fits the feature and label specs on the training rows only."""

    @abstractmethod
    def train(self, config: PipelineConfig, model: Any, raw_path: str, split_path: str, features: Any, labels: Any,
              *, refit: str = "train", epochs: int | None = None, on_epoch: EpochHook | None = None,
              checkpoint: str | Path | None = None) -> TrainingResult:
        """Fits a compiled model on the training rows (and validates on the validation rows)."""

    @abstractmethod
    def evaluate(self, config: PipelineConfig, raw_path: str, split_path: str, features_path: str,
                 labels_path: str, model_path: str | Path, out_dir: Path) -> tuple[Any, list[Path]]:
        """Scores a saved model on every test row and writes its reports. Returns `(evaluation, files)`."""

    def baseline(self, config: PipelineConfig, raw_path: str, split_path: str, labels_path: str) -> Baseline:
        """Fits a scikit-learn baseline on the training rows and scores it on the test rows.

        The rows are those the network trains on and is scored on (with a
        k-fold split, every non-test row, and the held-out test rows), the
        metrics those of its evaluation. Default: no baseline, with the
        reason (a kind that cannot hold its rows cheaply, such as images).

        Args:
            config: The pipeline config.
            raw_path: Raw rows (Parquet).
            split_path: The split JSON.
            labels_path: The fitted `LabelSpec` JSON (its classes and task).

        Returns:
            The `Baseline`; without a model, its `reason` says why.
        """
        return Baseline(reason=f"no baseline for {self.name} data")

    @abstractmethod
    def checkpoint_key(self, raw_path: str | Path) -> str:
        """The fingerprint of the data that keys per-epoch checkpoints (`kerasflow.training.resume.checkpoint_root`)."""


KINDS: list[type[DataKind]] = []


def register(kind: type[DataKind]) -> type[DataKind]:
    """Registers a data kind (a class decorator); a kind of the same name is replaced.

    Example:

    ```python
    @register
    class Table(DataKind):
        name = "table"
        ...
    ```
    """
    KINDS[:] = [k for k in KINDS if k.name != kind.name] + [kind]
    return kind


@functools.lru_cache(maxsize=1)
def discover() -> tuple[str, ...]:
    """Imports every module of this package once, so each built-in kind registers itself."""
    package = __name__.rsplit(".", 1)[0]
    names = [m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)
             if not m.name.startswith("_") and m.name != "base"]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return tuple(names)


def kind_of(data: DataConfig) -> DataKind:
    """Returns the data kind of a `data` section.

    Args:
        data: The config's `data` section.

    Returns:
        An instance of the registered kind of highest priority that claims it.

    Raises:
        LookupError: No registered kind claims it (the table kind claims any).
    """
    discover()
    for kind in sorted(KINDS, key=lambda k: -k.priority):
        if kind.claims(data):
            return kind()
    raise LookupError(f"no data kind claims data.source {data.source!r}")
