"""Labels and outputs: the learning task, label encoding and the output heads every family uses.

`fit_labels` infers the task and the classes from training labels, and
for regression the target transform (`preprocessing.target_transform`:
standardization, after `log1p` when asked or when `auto` finds the target
skewed); `LabelSpec` gives the matching output layer, loss and metrics,
and `OutputsSpec` holds the heads of a model with several outputs.
`inverse_target` and `training_loss` put the transform into a family's
model: the network learns the transformed target, and its output layer
maps it back, so the exported model answers in the label's units.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import pandas as pd

from kerasflow.features.tabular import FeatureError, is_numeric, natural_key

_CLASSIFICATION_MAX_LEVELS = 50
SKEWED_ABOVE = 2.0  # an exponential distribution's skewness; see `skewed_target` for why not Bulmer's 1


@dataclass
class LabelSpec:
    """The learning task and how labels are encoded.

    Args:
        task: `classification` or `regression`.
        classes: Class names in index order (classification only).
        encoding: `integer` or `one_hot` (classification only).
        column: The label column.
        transform: Regression only: `log` when the network learns
            `log1p(label)`, else `none`.
        offset: Regression only: the training mean of the (transformed)
            label, which the network learns standardized.
        scale: Regression only: its training standard deviation. `none`,
            0 and 1 (the defaults) leave the label as it is.
        bounds: `log` only: `[low, high]` of the training labels after
            `log1p`; predictions are clipped to them (`TargetInverse`).
    """

    task: Literal["classification", "regression"]
    column: str
    classes: list[str] = field(default_factory=list)
    encoding: Literal["integer", "one_hot"] = "integer"
    transform: Literal["none", "log"] = "none"
    offset: float = 0.0
    scale: float = 1.0
    bounds: list[float] = field(default_factory=list)

    @property
    def transformed(self) -> bool:
        """True when the network learns a transformed (standardized or log) regression target."""
        return self.task == "regression" and (self.transform != "none" or self.offset != 0.0 or self.scale != 1.0)

    def target_params(self) -> dict[str, Any]:
        """The fitted target transform as run params (`target_transform_fitted`, ...); empty for classes."""
        if self.task != "regression":
            return {}
        return {"target_transform_fitted": self.transform, "target_offset": self.offset, "target_scale": self.scale}

    @property
    def binary(self) -> bool:
        """True for two-class problems, which use one sigmoid unit."""
        return self.task == "classification" and len(self.classes) == 2

    def output(self) -> tuple[int, str, str]:
        """Returns the output layer's units and activation, and the loss."""
        if self.task == "regression":
            return 1, "linear", "mse"
        if self.binary:
            return 1, "sigmoid", "binary_crossentropy"
        loss = "categorical_crossentropy" if self.encoding == "one_hot" else "sparse_categorical_crossentropy"
        return len(self.classes), "softmax", loss

    def metrics(self) -> list[str]:
        """Returns the Keras metrics compiled with the model."""
        return ["mae"] if self.task == "regression" else ["accuracy"]

    def save(self, path: str | Path) -> Path:
        """Writes the spec as JSON and returns the path."""
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "LabelSpec":
        """Reads a spec written by `save`.

        A multi-output model's file (`{"outputs": [...]}`) is read as an
        `OutputsSpec`, which every consumer of label specs routes through
        `kerasflow.features.outputs`'s helpers.
        """
        data = json.loads(Path(path).read_text())
        if "outputs" in data:
            return OutputsSpec.from_dict(data)
        return cls(**data)


@dataclass
class HeadSpec:
    """One output head.

    Args:
        name: Head (and Keras output) name.
        labels: Its label spec; `labels.column` is the target column.
        statistic: `words`, `log_words` or `chars` when the label is
            computed from the text column `labels.column`; else None.
        loss_weight: Weight of its loss.
        offset: Training mean of a regression label; the head's raw output
            is rescaled by `scale` and shifted by `offset` inside the model,
            so the network learns a standardized target. 0 for classifiers.
        scale: Training standard deviation of a regression label (1 for
            classifiers).
    """

    name: str
    labels: LabelSpec
    statistic: str | None = None
    loss_weight: float = 1.0
    offset: float = 0.0
    scale: float = 1.0


@dataclass
class OutputsSpec:
    """The heads of a multi-output model, in config order.

    Args:
        heads: One `HeadSpec` per output.
    """

    heads: list[HeadSpec] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Head names in order."""
        return [h.name for h in self.heads]

    @property
    def task(self) -> str:
        """`multi-output` (a `LabelSpec` says `classification` or `regression`)."""
        return "multi-output"

    def metrics(self) -> list[str]:
        """Returns the per-head metric names Keras reports, e.g. `score_accuracy`, `length_mae`."""
        return [f"{h.name}_{m}" for h in self.heads for m in ["loss", *h.labels.metrics()]]

    def save(self, path: str | Path) -> Path:
        """Writes the spec as JSON (`{"outputs": [...]}`) and returns the path."""
        Path(path).write_text(json.dumps({"outputs": [asdict(h) for h in self.heads]}, indent=2))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "OutputsSpec":
        """Reads a spec written by `save` (`LabelSpec.load` reads both kinds)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OutputsSpec":
        """Rebuilds a spec from its JSON data."""
        return cls([HeadSpec(**{**h, "labels": LabelSpec(**h["labels"])}) for h in data["outputs"]])


Labels = Union[LabelSpec, OutputsSpec]


def fit_labels(y: pd.Series, task: str = "auto", encoding: str = "integer",
               target_transform: str | None = None) -> LabelSpec:
    """Infers the task and the class names from training labels.

    Args:
        y: Label values.
        task: `classification`, `regression` or `auto` (default).
        encoding: `integer` (default) or `one_hot`.
        target_transform: Regression only: `none` (standardize the label),
            `log` (standardize `log1p(label)`), `auto` (`log` when
            `skewed_target`, else `none`), or None (default: the network
            learns the raw label, as a functional model's heads, which
            standardize their own labels).

    Returns:
        The `LabelSpec`.

    Raises:
        FeatureError: Labels are missing, a regression label is not numeric,
            or `log` meets a negative label.
    """
    if y.isna().any():
        raise FeatureError(f"label column {y.name!r} has {int(y.isna().sum())} missing values")
    if task == "auto":
        task = _infer_task(y)
    if task == "regression":
        if not is_numeric(y):
            raise FeatureError(f"regression label {y.name!r} is not numeric")
        spec = LabelSpec(task="regression", column=str(y.name))
        if target_transform is not None:
            spec.transform, spec.offset, spec.scale = fit_target(y, target_transform)
            if spec.transform == "log":
                logged = np.log1p(y.to_numpy(dtype="float64"))
                spec.bounds = [float(logged.min()), float(logged.max())]
        return spec
    classes = sorted(pd.unique(y.astype(str)), key=natural_key)
    return LabelSpec(task="classification", column=str(y.name), classes=list(classes), encoding=encoding)


def fit_target(y: pd.Series, how: str) -> tuple[str, float, float]:
    """Fits a regression target's transform on the training labels.

    Args:
        y: The training rows' numeric labels.
        how: `none`, `log` or `auto` (`preprocessing.target_transform`).

    Returns:
        `(transform, offset, scale)`: `log` or `none`, and the mean and
        standard deviation (1 when constant) of the label after the transform.

    Raises:
        FeatureError: `log` meets a label below 0.
    """
    values = y.to_numpy(dtype="float64")
    log = how == "log" or (how == "auto" and skewed_target(y))
    if log and values.min() < 0:
        raise FeatureError(f"preprocessing.target_transform: log needs labels >= 0, but {y.name!r} reaches "
                           f"{values.min():g} in the training rows; use none or auto")
    values = np.log1p(values) if log else values
    return ("log" if log else "none"), float(values.mean()), float(values.std()) or 1.0


class TargetMoments:
    """`fit_target` over labels read chunk by chunk: exact moments in one pass (streamed tables).

    Whether `auto` takes the log is decided by the skewness of a sample's
    training labels (`skewed_target`; a streamed table's median and quantiles
    come from that sample too); the mean, standard deviation and, for `log`,
    the range of `log1p(label)` are exact over every chunk (sums in float64).
    If `auto` chose the log on the sample but a chunk holds a label below 0,
    the raw label is standardized instead, from the same pass.

    Args:
        how: `none`, `log` or `auto` (`preprocessing.target_transform`).
        sample: Training labels of a sample (decides `auto`).

    Example:

    >>> moments = TargetMoments("none", pd.Series([1.0, 2.0], name="y"))
    >>> moments.update(pd.Series([1.0, 2.0, 3.0])); moments.update(pd.Series([4.0]))
    >>> moments.result()[:2]
    ('none', 2.5)
    """

    def __init__(self, how: str, sample: pd.Series) -> None:
        self.column, self.how = str(sample.name), how
        self.log = how == "log" or (how == "auto" and skewed_target(sample))
        self.raw, self.logged = np.zeros(3), np.zeros(3)  # count, sum, sum of squares
        self.lowest, self.bounds = np.inf, [np.inf, -np.inf]

    def update(self, y: pd.Series) -> None:
        """Adds a chunk of training labels.

        Raises:
            FeatureError: `log` meets a label below 0.
        """
        values = pd.to_numeric(y, errors="coerce").to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if not len(values):
            return
        self.lowest = min(self.lowest, float(values.min()))
        if self.how == "log" and self.lowest < 0:
            raise FeatureError(f"preprocessing.target_transform: log needs labels >= 0, but {self.column!r} reaches "
                               f"{self.lowest:g} in the training rows; use none or auto")
        self.raw += [len(values), values.sum(), (values**2).sum()]
        if self.log and self.lowest >= 0:
            logged = np.log1p(values)
            self.logged += [len(logged), logged.sum(), (logged**2).sum()]
            self.bounds = [min(self.bounds[0], float(logged.min())), max(self.bounds[1], float(logged.max()))]

    def result(self) -> tuple[str, float, float, list[float]]:
        """`(transform, offset, scale, bounds)`, as `fit_target` and `fit_labels` set them."""
        log = self.log and self.lowest >= 0
        count, total, squares = self.logged if log else self.raw
        mean = float(total / count) if count else 0.0
        std = float(np.sqrt(max(squares / count - mean**2, 0.0))) if count else 0.0
        return ("log" if log else "none"), mean, std or 1.0, self.bounds if log else []


def inverse_target(outputs: Any, labels: Any) -> Any:
    """Appends the inverse of the fitted target transform to a regression output (a no-op otherwise).

    Args:
        outputs: The output layer's Keras tensor (the transformed target).
        labels: The label spec.

    Returns:
        The tensor in the label's units: `outputs * scale + offset`, then
        `expm1` for a `log` transform.
    """
    if not (isinstance(labels, LabelSpec) and labels.transformed):
        return outputs
    from kerasflow.features.layers import TargetInverse  # deferred: imports Keras

    return TargetInverse(labels.offset, labels.scale, labels.transform, labels.bounds or None,
                         name="target_inverse")(outputs)


def training_loss(labels: Any) -> Any:
    """The loss to compile: the label spec's, or for a transformed target the same loss in the transformed space.

    Args:
        labels: The label spec.

    Returns:
        The loss name (`labels.output()[2]`), or a `TargetSpaceLoss` that maps
        the label and the (label-unit) prediction through the transform first.
    """
    loss = labels.output()[2]
    if not (isinstance(labels, LabelSpec) and labels.transformed):
        return loss
    from kerasflow.features.layers import TargetSpaceLoss  # deferred: imports Keras

    return TargetSpaceLoss(loss, labels.offset, labels.scale, labels.transform)


def skewed_target(y: pd.Series) -> bool:
    """Whether `target_transform: auto` takes the log of a regression target: `>= 0` and strongly right-skewed.

    The rule: every value is at least 0 (so `log1p` is defined) and the
    sample skewness (pandas' adjusted Fisher-Pearson coefficient) exceeds
    `SKEWED_ABOVE` = 2, an exponential distribution's skewness (heavy-tailed
    amounts, counts, incomes). It is measured on the training rows only.
    Bulmer's bound for "highly skewed", 1, was measured and rejected
    (`benchmarks/tabular_probe.py`, 3 seeds, test RMSE in the label's
    units): on Boston housing (skewness 1.1) the log target was worse on
    every seed (2.35-3.37 -> 2.57-3.84), and on ames (1.7) it was mixed.

    Args:
        y: The training rows' numeric target.

    Returns:
        True when the log transform applies.
    """
    values = pd.to_numeric(y, errors="coerce").dropna().astype("float64")
    if len(values) < 3 or not np.isfinite(values).all() or values.min() < 0:
        return False
    skewness = values.skew()
    return bool(np.isfinite(skewness) and skewness > SKEWED_ABOVE)


def encode_labels(y: pd.Series, spec: LabelSpec) -> np.ndarray:
    """Encodes labels as the model's loss expects them.

    Args:
        y: Label values.
        spec: The label spec.

    Returns:
        float32 targets for regression and binary tasks, int32 class indices
        for integer encoding, or a one-hot float32 matrix.

    Raises:
        FeatureError: A label is not one of the known classes.
    """
    if spec.task == "regression":
        return y.to_numpy(dtype="float32")
    codes = class_codes(y, spec.classes)
    if (codes < 0).any():
        unknown = sorted(set(y[codes < 0].astype(str)))
        raise FeatureError(f"labels {unknown[:10]} are not among the training classes {spec.classes}")
    if spec.binary:
        return codes.astype("float32")
    if spec.encoding == "one_hot":
        return np.eye(len(spec.classes), dtype="float32")[codes]
    return codes


def class_codes(y: pd.Series, classes: list[str]) -> np.ndarray:
    """Returns each label's index in `classes` (by its string form), -1 for a label not among them.

    Each distinct label is converted to a string once (a million rows cost a
    factorization, not a million `str` calls).

    Args:
        y: Labels.
        classes: Class names in index order.

    Returns:
        An int32 array, one code per row.
    """
    codes, uniques = pd.factorize(y)
    index = {name: i for i, name in enumerate(classes)}
    lookup = np.array([index.get(str(value), -1) for value in uniques] + [-1], dtype="int32")
    return lookup[codes]


def decode_predictions(raw: np.ndarray, spec: LabelSpec) -> pd.DataFrame:
    """Turns model outputs into labelled predictions.

    Args:
        raw: The model's output array.
        spec: The label spec.

    Returns:
        A frame with a `prediction` column and, for classifiers, one
        `proba_<class>` column per class.
    """
    raw = np.asarray(raw, dtype="float64")
    if spec.task == "regression":
        return pd.DataFrame({"prediction": raw.reshape(-1)})
    proba = np.column_stack([1.0 - raw.reshape(-1), raw.reshape(-1)]) if spec.binary else raw
    frame = pd.DataFrame(proba, columns=[f"proba_{c}" for c in spec.classes])
    frame.insert(0, "prediction", np.asarray(spec.classes, dtype=object)[proba.argmax(axis=1)])
    return frame


def _infer_task(y: pd.Series) -> str:
    if not is_numeric(y):
        return "classification"
    with np.errstate(invalid="ignore"):  # inf labels: not integral; the data contract names them
        integral = pd.api.types.is_integer_dtype(y) or bool(np.all(np.mod(y.to_numpy(dtype="float64"), 1) == 0))
    return "classification" if integral and y.nunique() <= _CLASSIFICATION_MAX_LEVELS else "regression"
