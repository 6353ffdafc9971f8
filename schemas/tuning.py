"""Config models of the `tuning` and `runner` sections.

A search space maps dotted parameter names (`model.dropout`,
`training.optimizer.learning_rate`, ...) to a parameter definition. Only the
names that `kerasflow.models.families.build_model` consumes are tunable; they are listed in
`TUNABLE` (built from the families' config list in `kerasflow.schemas.families`), together with
the types each accepts and the values its config field allows. A parameter may be conditional on another (`parent` and
`parent_values`), e.g. the dropout rate exists only when dropout is on, and
`model.units_<i>` (units of hidden layer i) exists only when `model.layers`
chooses more than i layers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from kerasflow.schemas.base import PositiveInt, Section
from kerasflow.schemas.dense import MAX_LAYERS, UNITS_PATTERN  # noqa: F401  (re-exported)
from kerasflow.schemas.families import TUNABLE, family_config, family_configs

Scalar = Union[bool, int, float, str]
Sampling = Literal["linear", "log", "reverse_log"]


def tunable_names() -> list[str]:
    """Returns the parameter names a search space may use (`model.units_<i>`: units of dense layer i)."""
    return [*TUNABLE, *(name for entry in family_configs() for name in entry.pattern_names)]


def tunable_rule(name: str, kind: str | None = None) -> tuple[tuple[str, ...], Any] | None:
    """Returns `(accepted types, value type)` of a tunable name, or None if it is not tunable.

    Args:
        name: The dotted name.
        kind: `model.kind`: its family's pattern names (`model.units_<i>`
            for dense models) count too. Default: the default family's.
    """
    if name in TUNABLE:
        return TUNABLE[name]
    entry = family_config(kind) if kind is not None else family_configs()[0]
    return entry.tunable_rule(name) if entry.tunable_rule is not None else None


def space_problems(space: dict[str, Any], kind: str) -> list[tuple[str, str]]:
    """Checks a search space: parents, cycles, and the tunable names, types and values.

    Args:
        space: The validated `tuning.space`.
        kind: `model.kind` (pattern names such as `model.units_<i>` are its family's own).

    Returns:
        `(path below tuning, message)` per problem.
    """
    problems = [(f"space.{name}", msg) for name, param in space.items() if param.parent is not None
                for msg in _parent_problems(param, space)]
    problems += [(f"space.{name}", msg) for name, msg in _cycles(space)]
    for name, param in space.items():
        rule = tunable_rule(name, kind)
        if rule is None:
            problems.append((f"space.{name}", f"not a tunable parameter (tunable: {', '.join(tunable_names())})"))
        elif param.type not in rule[0]:
            problems.append((f"space.{name}", f"type {param.type!r} not allowed here (use {' or '.join(rule[0])})"))
        else:
            problems += [(f"space.{name}", msg) for msg in _bad_values(param.candidates(), rule[1])]
    return problems


class _Param(Section):
    """Fields shared by every parameter type.

    Args:
        parent: Name of the parameter this one depends on. Default none.
        parent_values: Values of `parent` for which this parameter exists.
    """

    parent: str | None = None
    parent_values: list[Scalar] | None = None

    @model_validator(mode="after")
    def _parent_pair(self) -> "_Param":
        if (self.parent is None) != (self.parent_values is None):
            raise ValueError("parent and parent_values go together: give both or neither")
        if self.parent_values is not None and not self.parent_values:
            raise ValueError("parent_values must list at least one value")
        return self

    def candidates(self) -> list[Any]:
        """Returns the values that bound this parameter (extremes or choices)."""
        raise NotImplementedError


class IntParam(_Param):
    """An integer drawn from `[min, max]`.

    Args:
        type: `int`.
        min: Smallest value.
        max: Largest value (inclusive).
        step: Distance between values. Default 1.
        sampling: `linear` (default), `log` or `reverse_log`.
    """

    type: Literal["int"]
    min: int
    max: int
    step: PositiveInt = 1
    sampling: Sampling = "linear"

    @model_validator(mode="after")
    def _ordered(self) -> "IntParam":
        _check_range(self.min, self.max, self.sampling)
        return self

    def candidates(self) -> list[Any]:
        return [self.min, self.max]

    def values(self) -> list[int]:
        """Returns every value the parameter can take."""
        return list(range(self.min, self.max + 1, self.step))


class FloatParam(_Param):
    """A float drawn from `[min, max]`.

    Args:
        type: `float`.
        min: Smallest value.
        max: Largest value.
        step: Distance between values; none (default) samples continuously.
            The `grid` tuner takes 10 evenly spaced values without one.
        sampling: `linear` (default), `log` or `reverse_log`; the log ones
            need `min > 0`.
    """

    type: Literal["float"]
    min: float
    max: float
    step: Annotated[float, Field(gt=0)] | None = None
    sampling: Sampling = "linear"

    @model_validator(mode="after")
    def _ordered(self) -> "FloatParam":
        _check_range(self.min, self.max, self.sampling)
        return self

    def candidates(self) -> list[Any]:
        return [self.min, self.max]


class ChoiceParam(_Param):
    """One of a list of values.

    Args:
        type: `choice`.
        values: The values, all of one type (strings, numbers or booleans).
    """

    type: Literal["choice"]
    values: Annotated[list[Scalar], Field(min_length=1)]

    @model_validator(mode="after")
    def _distinct(self) -> "ChoiceParam":
        if len({(type(v).__name__, v) for v in self.values}) != len(self.values):
            raise ValueError(f"values must be distinct, got {self.values}")
        kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
                 for v in self.values}
        if len(kinds) > 1:
            raise ValueError(f"values must all be of one type, got {self.values}")
        return self

    def candidates(self) -> list[Any]:
        return list(self.values)


class BooleanParam(_Param):
    """True or false.

    Args:
        type: `boolean`.
    """

    type: Literal["boolean"]

    def candidates(self) -> list[Any]:
        return [False, True]


Param = Annotated[Union[IntParam, FloatParam, ChoiceParam, BooleanParam], Field(discriminator="type")]


class ObjectiveConfig(Section):
    """The validation metric the search optimizes.

    Args:
        name: A validation metric: `val_data_loss` (default: the
            validation loss without the `model.l1`/`model.l2` penalty, so
            trials of different penalties are ranked on their predictions),
            `val_loss` (Keras' own, penalty included), `val_accuracy`
            (classifiers) or `val_mae` (regressors).
        direction: `min` or `max`; default: `min` for losses and errors,
            `max` otherwise. A direction that would search for the worst
            value (`max` for a loss or an error, `min` for accuracy, AUC,
            precision or recall) is refused.
    """

    name: Annotated[str, Field(pattern=r"^val_[A-Za-z0-9_]+$")] = "val_data_loss"
    direction: Literal["min", "max"] | None = None

    @model_validator(mode="after")
    def _infer_direction(self) -> "ObjectiveConfig":
        lower = any(token in self.name for token in _LOWER_IS_BETTER)
        higher = any(token in self.name for token in _HIGHER_IS_BETTER)
        if self.direction is None:
            self.direction = "min" if lower else "max"
        elif (lower and self.direction == "max") or (higher and not lower and self.direction == "min"):
            better = "min" if lower else "max"
            raise ValueError(f"direction {self.direction!r} would search for the worst {self.name}: it is better "
                             f"when {'lower' if lower else 'higher'}; use direction {better!r}, or leave it out")
        return self


_LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "crossentropy", "hinge")
_HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall")


class TuningConfig(Section):
    """A Keras Tuner search over the config's hyperparameters.

    Args:
        tuner: `random` (default), `bayesian`, `hyperband` or `grid`.
            `random` tries the configured values first (trial 0: each
            searched parameter at the value the config uses without
            tuning; a value outside its range or choices gives way to the
            parameter's `min` or first choice), then random ones, so its
            best trial scores at least as well as the configured values.
        objective: See `ObjectiveConfig`. Default `val_data_loss`, minimized.
        max_trials: Most trials to run (hyperband: a cap on its brackets).
            Default 20.
        executions_per_trial: Models trained per trial, scores averaged.
            Default 1.
        max_epochs: Hyperband's largest epoch budget of one trial. Default
            `training.epochs`.
        factor: Hyperband's reduction factor between brackets. Default 3.
        refit: How the final model is trained with the best values: `train`
            (default) fits on the training rows with validation and early
            stopping, like a trial; `train+val` fits on training and
            validation rows for the best trial's epoch count.
        selection: Which trial the final model takes: `one_se` (default)
            keeps the configured values (trial 0 of a `random` search)
            unless the best trial beats them by more than one standard
            error of their paired per-fold score differences, the
            one-standard-error rule; it needs 3 or more folds (`cv_folds`
            or a k-fold split), else the best trial is taken. `best`: the
            best mean score. Changing it re-chooses from a finished search
            without running a trial again.
        cv_folds: Score each trial by the mean validation score over this
            many folds of the non-test rows instead of one validation split.
            Default none (k-fold split configs use their `split.folds`).
        seed: Seed of the tuner's sampling and of trial training; 0 is a seed too
            (`kerasflow.training.first_trial.oracle_seed`). Default 42.
        directory: Folder of resumable tuner state; the search lives in
            `<directory>/<pipeline name>`. Default `.kerasflow/tuning`.
        space: The searched parameters by dotted name; see `tunable_names()`.
            Default none: the model family's default space, chosen from the
            data with the other defaults (`Family.default_space`, by the
            `choose-defaults` step, which logs it).
    """

    tuner: Literal["random", "bayesian", "hyperband", "grid"] = "random"
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    max_trials: PositiveInt = 20
    executions_per_trial: Annotated[int, Field(ge=1, le=10)] = 1
    max_epochs: PositiveInt | None = None
    factor: Annotated[int, Field(ge=2)] = 3
    refit: Literal["train", "train+val"] = "train"
    selection: Literal["one_se", "best"] = "one_se"
    cv_folds: Annotated[int, Field(ge=2, le=50)] | None = None
    seed: int = 42
    directory: str = ".kerasflow/tuning"
    space: Annotated[dict[str, Param], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _units_follow_layers(self) -> "TuningConfig":
        if self.space is not None:
            _condition_units_on_layers(self.space)
        return self

    def searched(self) -> dict[str, Any]:
        """The search space, once chosen: the config's `space`, or the family default the defaults step put there.

        Raises:
            ValueError: The space is still left out (the config did not go
                through the `choose-defaults` step, `kerasflow.lint.choose`).
        """
        if self.space is None:
            raise ValueError("tuning.space is left out and was not chosen from the data yet "
                             "(kerasflow.lint.choose.choose_defaults fills in the family's default space)")
        return dict(self.space)

    def project_dir(self, pipeline: str) -> str:
        """Returns the folder holding this pipeline's tuner state."""
        return f"{self.directory.rstrip('/')}/{pipeline}"


class RunnerConfig(Section):
    """Where concurrent work (k-fold folds, tuner trials) runs.

    Args:
        kind: `local` (default): a thread pool on this machine (trials run
            one at a time); `dask`: a Dask cluster, folds through
            prefect-dask and trials through keras-tuner's distributed mode.
        address: Scheduler address of a running Dask cluster (`tcp://host:8786`);
            none (default) starts a local cluster for the run. Its workers
            must reach the tracking store and the run's files.
        n_workers: Workers of a local Dask cluster, or threads of the local
            pool. Default 2.
        processes: Local Dask workers are processes (default) rather than
            threads.
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = None
    n_workers: Annotated[int, Field(ge=1, le=64)] = 2
    processes: bool = True

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "RunnerConfig":
        if self.address and self.kind != "dask":
            raise ValueError("address is only used with kind: dask")
        return self


def _check_range(low: float, high: float, sampling: str) -> None:
    if low > high:
        raise ValueError(f"min must not exceed max, got min={low} > max={high}")
    if sampling != "linear" and low <= 0:
        raise ValueError(f"{sampling} sampling needs min > 0, got min={low}")


def _condition_units_on_layers(space: dict[str, Any]) -> None:
    layers = space.get("model.layers")
    if layers is None:
        return
    counts = layers.values() if isinstance(layers, IntParam) else [v for v in layers.candidates() if isinstance(v, int)]
    for name, param in space.items():
        match = UNITS_PATTERN.match(name)
        if match and param.parent is None:
            param.parent = "model.layers"
            param.parent_values = [n for n in counts if n > int(match.group(1))]


def _bad_values(values: list[Any], value_type: Any) -> list[str]:
    adapter = TypeAdapter(value_type)
    problems = []
    for value in values:
        try:
            adapter.validate_python(value, strict=isinstance(value, bool) or value_type is bool)
        except ValidationError as exc:
            problems.append(f"value {value!r} is not allowed: {exc.errors()[0]['msg']}")
    return problems


def _parent_problems(param: Any, space: dict[str, Any]) -> list[str]:
    parent = space.get(param.parent)
    if parent is None:
        return [f"parent {param.parent!r} is not in the search space (have: {', '.join(space)})"]
    if not param.parent_values:
        return [f"can never be active: no value of parent {param.parent} activates it"]
    if isinstance(parent, FloatParam):
        return [f"parent {param.parent} is a float; a parent must be int, choice or boolean"]
    allowed = parent.values() if isinstance(parent, IntParam) else parent.candidates()
    unknown = [v for v in param.parent_values if not any(v == a and type(v) is type(a) for a in allowed)]
    if unknown:
        return [f"parent_values {unknown} are not values of {param.parent} ({allowed})"]
    return []


def _cycles(space: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for name in space:
        seen, current = [name], space[name].parent
        while current is not None and current in space:
            if current in seen:
                problems.append((name, f"conditions form a cycle ({' -> '.join([*seen, current])})"))
                break
            seen.append(current)
            current = space[current].parent
    return problems
