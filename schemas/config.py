"""Pydantic models for a kerasflow pipeline config.

A config is declarative YAML in sections: `data`, `validation`, `split`,
`preprocessing`, `model`, `tuning`, `training`, `evaluation`, `registry` and
`promotion`, plus an optional `description`.
It is read with `yaml.safe_load` (nothing in it is ever executed) and
validated in full before any work is done: unknown keys, wrong types and
impossible values are reported with their dotted key path and, where the
set is closed, the allowed values.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from kerasflow.schemas.base import (  # noqa: F401  (re-exported for section modules)
    Activation,
    Fraction,
    Initializer,
    InitializerConfig,
    NumericEmbedding,
    OptimizerName,
    PositiveInt,
    Section,
    problems_error,
)
from kerasflow.schemas.dense import DenseModelConfig
from kerasflow.schemas.evaluation import EvaluationConfig, SliceSpec, slice_problems  # noqa: F401  (re-exported)
from kerasflow.schemas.families import default_kind, family_config, image_kind, model_union, on_change
from kerasflow.schemas.gate import BeatsBaseline, DriftConfig, GateConfig
from kerasflow.schemas.images import ImageConfig, image_model_problems, image_size_problems, image_source_problems
from kerasflow.schemas.loading import ConfigError, apply_override, error_lines, read_raw_config
from kerasflow.schemas.preprocessing import CategoricalEmbeddingConfig, PreprocessingConfig  # noqa: F401  (re-exported)
from kerasflow.schemas.promotion import PromotionConfig
from kerasflow.schemas.tuning import RunnerConfig, TuningConfig, space_problems


class DataConfig(Section):
    """Where the raw data comes from and what to predict.

    Args:
        source: A built-in dataset name (`digits`, `breast_cancer`, `wine`,
            `iris`, `diabetes`, `penguins`), a CSV or Parquet path, or a glob
            whose newest match is used.
        target: The label column. Default `label` for image data (`image`
            set), which names each file's class folder; required otherwise.
        features: Feature columns. Defaults to every column but the target.
        categorical: Columns to one-hot encode. Defaults to the string and
            boolean columns among the features.
        task: `classification`, `regression`, or `auto` (default) to infer
            from the label column.
        label_encoding: `integer` (default, sparse categorical
            cross-entropy) or `one_hot` (categorical cross-entropy).
        image: Image data: a folder of class subfolders as `source`, or
            pixel columns reshaped to an image; see
            `kerasflow.schemas.images.ImageConfig`. Default none.
        test_source: A CSV or Parquet file (or glob) with the columns of
            `source` whose rows are the held-out test set or, with a folder
            `source`, a folder of the same class subfolders whose files are
            the test set; `split` then divides only the `source` rows (its
            `test_fraction` is unused). Default none: the test set is split
            off `source`.
        delimiter: CSV field delimiter, one character. Default none: a
            comma, or the `;`, tab or `|` a file evidently uses (detected and
            reported as a warning).
        encoding: Text encoding of CSV files, any Python codec name such as
            `latin-1` or `cp1252`. Default `utf-8`.
        decimal: The decimal mark of numbers in CSV files: `.` (default) or
            `,` (`12,5`, as many European exports write them; numbers
            written so under the default are refused, never read as text).
        streaming: Read the data batch by batch instead of into memory, for
            tables larger than memory (`kerasflow.data.stream`). `source` is
            a Parquet file, a folder of Parquet shards or a glob of them.
            Default false.
    """

    source: str
    test_source: str | None = None
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] | None = None
    encoding: str = "utf-8"
    decimal: Literal[".", ","] = "."
    target: str
    features: list[str] | None = None
    categorical: list[str] | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    label_encoding: Literal["integer", "one_hot"] = "integer"
    image: ImageConfig | None = None
    streaming: bool = False

    @model_validator(mode="before")
    @classmethod
    def _image_label_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" not in data and data.get("image") is not None:
            return {**data, "target": "label"}  # a folder's class names: `data: {source: photos/, image: {}}` is enough
        return data

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown text encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value


class ValidationConfig(Section):
    """The Great Expectations suite the raw data must pass.

    Args:
        suite: Path to a suite JSON file, or null to skip validation.
        on_failure: `fail` (default) stops the run; `warn` logs the report
            and goes on.
    """

    suite: str | None = None
    on_failure: Literal["fail", "warn"] = "fail"


class SplitConfig(Section):
    """How rows are divided into train, validation and test sets.

    Args:
        kind: `holdout` (default) or `kfold`.
        test_fraction: Share of rows kept aside for the final test. Default 0.2.
        val_fraction: Share of rows for validation (holdout). Default 0.1.
        folds: Number of folds for `kfold`. Default 5.
        stratify: Stratify by class for classification. Default true.
        shuffle: Shuffle before splitting. Default true.
        seed: Random seed of the splitters. Default 42.
        final: The model a k-fold split ends with: `ensemble` (default)
            averages the k fold models inside one exported model (same raw
            inputs, served and batch-predicted as any model); `refit`
            trains one model on all non-test rows for the median of the
            folds' best epoch counts. On the bundled regression set the
            ensemble scored closer to the cross-validated estimate
            (`benchmarks/quality.py`).
    """

    kind: Literal["holdout", "kfold"] = "holdout"
    test_fraction: Fraction = 0.2
    val_fraction: Fraction = 0.1
    folds: Annotated[int, Field(ge=2, le=50)] = 5
    stratify: bool = True
    shuffle: bool = True
    seed: int = 42
    final: Literal["ensemble", "refit"] = "ensemble"

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> "SplitConfig":
        if self.kind == "holdout" and self.test_fraction + self.val_fraction >= 1.0:
            raise ValueError(
                f"test_fraction + val_fraction must be below 1, got "
                f"{self.test_fraction} + {self.val_fraction} = {self.test_fraction + self.val_fraction:g}"
            )
        return self


# The dense family's section, under its former name (it lives in `kerasflow.schemas.dense`).
ModelConfig = DenseModelConfig


def _default_model() -> Any:
    """The `model` section of a config that has none: the default family's defaults."""
    return family_config(default_kind()).model()


# The `model` section, one member per registered family (`kerasflow.schemas.families`), told
# apart by `kind` (a section without `kind` is the default family's). `_rebuild_model_union`
# rebuilds `PipelineConfig.model` when a family registers after this module is imported.
ModelSection = model_union()


class OptimizerConfig(Section):
    """The optimizer and its learning rate.

    Args:
        name: `adam` (default), `adamw`, `sgd`, `rmsprop`, `adagrad` or `nadam`.
        learning_rate: Default 0.001.
        momentum: Momentum for `sgd` and `rmsprop`. Default 0.
        nesterov: Nesterov momentum for `sgd`. Default false.
    """

    name: OptimizerName = "adam"
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    nesterov: bool = False


class EarlyStoppingConfig(Section):
    """Stops training when the monitored metric stops improving.

    Args:
        enabled: Default true.
        monitor: Default `val_loss`.
        patience: Epochs without improvement before stopping. Default 10.
        min_delta: Smallest change that counts as improvement. Default 0.
        restore_best_weights: Default true.
    """

    enabled: bool = True
    monitor: str = "val_loss"
    patience: PositiveInt = 10
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best_weights: bool = True


class ReduceLROnPlateauConfig(Section):
    """Lowers the learning rate when the monitored metric plateaus.

    Args:
        enabled: Default false.
        monitor: Default `val_loss`.
        factor: Multiplier of the learning rate. Default 0.5.
        patience: Default 5.
        min_lr: Default 1e-6.
    """

    enabled: bool = False
    monitor: str = "val_loss"
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    patience: PositiveInt = 5
    min_lr: Annotated[float, Field(ge=0)] = 1e-6


class TrainingConfig(Section):
    """How the network is fitted.

    Args:
        epochs: Maximum epochs. Default 50.
        batch_size: Default 32.
        optimizer: See `OptimizerConfig`.
        early_stopping: See `EarlyStoppingConfig`.
        reduce_lr: See `ReduceLROnPlateauConfig`.
        seed: Seed of weight initialization and shuffling. Default 42.
        distribute: The `tf.distribute` strategy of the final fit: `auto`
            (default: mirrored over the GPUs when there are two or more),
            `none`, `mirrored` (every GPU, or the logical CPUs) or
            `multi_worker` (the cluster in `TF_CONFIG`); see
            `kerasflow.training.distribute`.
    """

    epochs: PositiveInt = 50
    batch_size: PositiveInt = 32
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    reduce_lr: ReduceLROnPlateauConfig = Field(default_factory=ReduceLROnPlateauConfig)
    seed: int = 42
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"


class RegistryConfig(Section):
    """Where the model is tracked and registered.

    Args:
        model_name: Registered model name. Defaults to the pipeline name.
        enabled: Register a new model version. Default true.
        tracking_uri: MLflow tracking URI; `MLFLOW_TRACKING_URI` or
            `sqlite:///mlruns/mlflow.db` otherwise.
        thresholds: Minimum test metrics for the `candidate` alias, e.g.
            `{accuracy: 0.9}` (a maximum for losses and errors); a model
            below them is registered but not blessed. Also the retraining
            gate's value thresholds when `gate.thresholds` is empty.
        beats_baseline: The network must not lose to the scikit-learn
            baseline by more than a margin to get `candidate`: `true`, or
            `{metric: accuracy, margin: 0.005}`; see
            `kerasflow.schemas.gate.BeatsBaseline`. Default none.
        gate: Champion/challenger promotion rules of the `retrain` flow;
            see `kerasflow.schemas.gate.GateConfig`.
        drift: Feature-drift check of the `retrain` flow; see
            `kerasflow.schemas.gate.DriftConfig`.
    """

    model_name: str | None = None
    enabled: bool = True
    tracking_uri: str | None = None
    thresholds: dict[str, float] = Field(default_factory=dict)
    beats_baseline: BeatsBaseline | None = None
    gate: GateConfig = Field(default_factory=GateConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @field_validator("beats_baseline", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return BeatsBaseline.from_flag(value)


class PipelineConfig(Section):
    """A whole kerasflow pipeline.

    Args:
        name: The pipeline's name (the MLflow experiment, and the
            registered model unless `registry.model_name` is set).
        description: What the model is for (its intended use): the first
            section of every version's model card. Default none.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    data: DataConfig
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    model: ModelSection = Field(default_factory=_default_model)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    tuning: TuningConfig | None = None
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    _given: frozenset[str] | None = PrivateAttr(default=None)  # set by `load_config`: the file's own sections

    @model_validator(mode="before")
    @classmethod
    def _model_kind_defaults(cls, data: Any) -> Any:
        model = data.get("model") if isinstance(data, dict) else None
        if isinstance(model, dict) and "kind" not in model:
            data = {**data, "model": {"kind": default_kind(), **model}}
        source = data.get("data") if isinstance(data, dict) else None
        images = image_kind()
        if isinstance(data, dict) and "model" not in data and isinstance(source, dict) \
                and source.get("image") is not None and images is not None:
            data = {**data, "model": {"kind": images}}  # image data without a model section: the image family's
        return data

    @model_validator(mode="after")
    def _image_data_fit_the_model(self) -> "PipelineConfig":
        problems = image_model_problems(self.data.image, getattr(self.model, "kind", None))
        if problems:
            raise problems_error(problems)
        return self

    @model_validator(mode="after")
    def _test_source_fits_the_source(self) -> "PipelineConfig":
        problems = image_source_problems(self.data.source, self.data.test_source)
        problems += image_size_problems(self.data.image, self.data.source)
        if problems:
            raise problems_error(problems)
        return self

    @model_validator(mode="after")
    def _slices_fit_the_data(self) -> "PipelineConfig":
        problems = slice_problems(self.evaluation, self.data.image, self.data.source, self.data.streaming)
        if problems:
            raise problems_error(problems)
        return self

    @model_validator(mode="after")
    def _streaming_fits_the_pipeline(self) -> "PipelineConfig":
        if not self.data.streaming:
            return self
        unsupported = [("data.image", self.data.image is not None, "image data"),
                       ("data.test_source", self.data.test_source is not None, "a separate test file"),
                       ("model.kind", not family_config(self.model.kind).streams, f"model.kind: {self.model.kind}"),
                       ("split.kind", self.split.kind != "holdout", "k-fold splits"),
                       ("preprocessing.numeric_embedding", self.preprocessing.numeric_embedding == "piecewise_linear",
                        "numeric_embedding: piecewise_linear (its quantile bins are fitted on training rows held "
                        "in memory; use none or periodic)"),
                       ("tuning", self.tuning is not None, "a tuner search")]
        problems = [(where, f"data.streaming reads the table batch by batch, which does not support {what} yet; "
                            f"remove it or set data.streaming: false") for where, bad, what in unsupported if bad]
        if problems:
            raise problems_error(problems)
        return self

    @model_validator(mode="after")
    def _baseline_rule_has_a_baseline(self) -> "PipelineConfig":
        if self.registry.beats_baseline is not None and not self.evaluation.baseline:
            raise problems_error([("registry.beats_baseline", "the rule compares the network with the baseline, "
                                   "which evaluation.baseline: false turns off; remove one of them")])
        return self

    @model_validator(mode="after")
    def _model_fits_the_pipeline(self) -> "PipelineConfig":
        problems = family_config(self.model.kind).config_problems(self)
        if problems:
            raise problems_error(problems)
        return self

    @model_validator(mode="after")
    def _tuning_fits_the_pipeline(self) -> "PipelineConfig":
        t = self.tuning
        if t is None:
            return self
        problems = []
        if self.split.kind == "holdout" and self.split.val_fraction == 0 and t.cv_folds is None:
            problems.append(("tuning", "the search needs validation rows: set split.val_fraction > 0 "
                                       "or tuning.cv_folds"))
        if t.space is not None:  # left out: the family's default space, chosen with the data-driven defaults
            problems += [(f"tuning.{where}", message) for where, message in space_problems(t.space, self.model.kind)]
            problems += [(f"tuning.{where}", message)
                         for where, message in family_config(self.model.kind).space_problems(self.model, t.space)]
        if problems:
            raise problems_error(problems)
        return self

    @property
    def given(self) -> frozenset[str]:
        """The top-level sections the config's source sets (its file and `--set` overrides).

        The others take defaults: `split`, `training` and `model` ones chosen
        from the data (`kerasflow.lint.defaults`). For a config read by
        `load_config`, the keys of its file (with overrides); for one built
        otherwise, the fields it was given.
        """
        return self._given if self._given is not None else frozenset(self.model_fields_set)

    @property
    def model_name(self) -> str:
        """The registered model name."""
        return self.registry.model_name or self.name

    def fingerprint(self) -> str:
        """Returns a sha256 of the validated config, stable across key order."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _rebuild_model_union() -> None:
    """Gives `PipelineConfig.model` the union of every family registered so far."""
    PipelineConfig.model_fields["model"] = FieldInfo.from_annotated_attribute(
        model_union(), Field(default_factory=_default_model))
    PipelineConfig.model_rebuild(force=True)


on_change(_rebuild_model_union)


def load_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads and validates a pipeline config.

    Args:
        path: YAML file.
        overrides: `dotted.key=value` strings applied on top of the file;
            values are parsed as YAML scalars. Default none.

    Returns:
        The validated `PipelineConfig`.

    Raises:
        ConfigError: The file is missing or not YAML, an override is
            malformed, or validation fails; every problem is listed.
    """
    raw = read_raw_config(path)
    for item in overrides or []:
        apply_override(raw, item, path)
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, [line for err in exc.errors() for line in error_lines(err, PipelineConfig)]) from None
    config._given = frozenset(raw)  # image data get a `model` inserted by validation: the file's keys decide
    return config
