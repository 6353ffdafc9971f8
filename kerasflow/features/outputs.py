"""Functional models: several input branches, several output heads, shared layers.

Plain functions (no Prefect, no MLflow). `fit_model_inputs` fits what the
`text` and `functional` families need on the training rows only: the
tabular `FeatureSpec`, one `TextSpec` per text branch (one shared
vocabulary for a shared encoder) and the labels, as a single `LabelSpec` or
an `OutputsSpec` with one `LabelSpec` per head. `build_functional_model`
turns them into one compiled Keras model; the helpers below encode targets,
decode predictions (`<head>.prediction`, `<head>.proba_<class>`) and
evaluate each head on its own (`<head>.<metric>`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from kerasflow.features.tabular import (
    FeatureError, FeatureSpec, LabelSpec, build_input_layers, decode_predictions, encode_labels, fit_features,
    fit_labels, select_columns, text_input_name,
)
from kerasflow.features.text import TextSpec, embedding_coverage, fit_text_spec, text_series, vectors_dim

_HTML_TAG = re.compile(r"<[^>]*>")


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


@dataclass
class FittedInputs:
    """What `fit_model_inputs` fitted, plus what is worth logging.

    Args:
        features: The feature spec (tabular statistics and text branches).
        labels: A `LabelSpec`, or an `OutputsSpec` for listed outputs.
        params: Run params (`preprocessing.*`).
        metrics: Run metrics (`text.*`), e.g. `text.embedding_coverage`.
    """

    features: FeatureSpec
    labels: Labels
    params: dict[str, Any]
    metrics: dict[str, float]


def text_statistic(texts: pd.Series, statistic: str) -> pd.Series:
    """Computes a numeric label from texts (HTML tags do not count).

    Args:
        texts: Raw texts; missing values count as empty.
        statistic: `words`, `log_words` (log(1 + words)) or `chars`.

    Returns:
        A float Series with the same index.
    """
    clean = texts.astype(object).where(texts.notna(), "").map(lambda t: _HTML_TAG.sub(" ", str(t)))
    if statistic == "chars":
        return clean.map(lambda t: float(len(" ".join(t.split()))))
    words = clean.map(lambda t: float(len(t.split())))
    return words.map(math.log1p) if statistic == "log_words" else words


def raw_targets(frame: pd.DataFrame, labels: Labels) -> pd.Series | pd.DataFrame:
    """Returns the labels of some rows, before encoding.

    Args:
        frame: Raw rows with the target columns.
        labels: The label spec.

    Returns:
        The label Series (single output), or a frame with one column per
        head, named by head; index reset.

    Raises:
        FeatureError: A target column is missing.
    """
    if isinstance(labels, LabelSpec):
        return _column(frame, labels.column).reset_index(drop=True)
    columns = {}
    for head in labels.heads:
        values = _column(frame, head.labels.column)
        columns[head.name] = text_statistic(values, head.statistic) if head.statistic else values
    return pd.DataFrame(columns).reset_index(drop=True)


def encode_targets(targets: pd.Series | pd.DataFrame, labels: Labels) -> np.ndarray | dict[str, np.ndarray]:
    """Encodes raw labels as the model's losses expect them.

    Args:
        targets: Output of `raw_targets`.
        labels: The label spec.

    Returns:
        An array (single output) or `{head: array}`.
    """
    if isinstance(labels, LabelSpec):
        return encode_labels(targets, labels)
    return {h.name: encode_labels(targets[h.name].rename(h.labels.column), h.labels) for h in labels.heads}


def decode_outputs(raw: Any, labels: Labels) -> pd.DataFrame:
    """Turns model outputs into labelled predictions.

    Args:
        raw: The model's output array, or `{head: array}`.
        labels: The label spec.

    Returns:
        `prediction` and `proba_<class>` columns; with several heads, each
        prefixed by its head: `<head>.prediction`, `<head>.proba_<class>`.
    """
    if isinstance(labels, LabelSpec):
        return decode_predictions(raw, labels)
    frames = [decode_predictions(raw[h.name], h.labels).add_prefix(f"{h.name}.") for h in labels.heads]
    return pd.concat(frames, axis=1)


def dummy_outputs(labels: Labels, rows: int) -> Any:
    """Returns neutral model outputs of the right shapes (for signatures)."""
    if isinstance(labels, OutputsSpec):
        return {h.name: dummy_outputs(h.labels, rows) for h in labels.heads}
    if labels.task == "regression" or labels.binary:
        return np.full((rows, 1), 0.5)
    return np.full((rows, len(labels.classes)), 1.0 / len(labels.classes))


def fit_model_inputs(config: Any, train: pd.DataFrame) -> FittedInputs:
    """Fits the inputs and labels of a `text` or `functional` model on training rows.

    Args:
        config: The pipeline config (`model.kind` `text` or `functional`).
        train: The training rows only.

    Returns:
        The `FittedInputs`.

    Raises:
        FeatureError: Columns are missing, an output target is also an
            input, or a text column has no tokens.
    """
    model = config.model
    if model.kind == "text":
        _check_text_features(config)
        branches = [(model.column, model.column, "all")]
        numeric: list[str] = []
        categorical: list[str] = []
    else:
        branches = [(item.name, item.column, item.segment) for item in model.text_inputs]
        numeric, categorical = _tabular_columns(config, train)
    _check_no_leak(config, numeric + categorical + [column for _, column, _ in branches])
    p = config.preprocessing
    features = fit_features(train, numeric, categorical, impute=p.impute, normalize=p.normalize,
                            max_categories=p.max_categories)
    encoder = model if model.kind == "text" else model.text
    shared = model.kind == "functional" and model.shared_encoder
    texts = [_fit_branch(train, encoder, branches, b, shared) for b in branches]
    features.text = [t.as_dict() for t in texts]
    labels = fit_output_labels(config, train)
    return FittedInputs(features, labels, _params(features, labels, texts), _text_metrics(texts))


def fit_output_labels(config: Any, train: pd.DataFrame) -> Labels:
    """Fits the label spec: one `LabelSpec`, or an `OutputsSpec` when `model.outputs` is listed.

    Args:
        config: The pipeline config.
        train: Training rows.

    Returns:
        The label spec.
    """
    d = config.data
    outputs = getattr(config.model, "outputs", None)
    if not outputs:
        return fit_labels(_column(train, d.target), d.task, d.label_encoding)
    heads = []
    for out in outputs:
        values = _column(train, out.target)
        if out.statistic:
            values = text_statistic(values, out.statistic).rename(out.name)
        task = "regression" if out.statistic else out.task
        labels = fit_labels(values.rename(out.target), task, out.label_encoding)
        head = HeadSpec(out.name, labels, out.statistic, out.loss_weight)
        if labels.task == "regression":
            numbers = values.to_numpy(dtype="float64")
            head.offset, head.scale = float(numbers.mean()), float(numbers.std()) or 1.0
        heads.append(head)
    return OutputsSpec(heads)


def build_functional_model(hp: Any, spec: Any) -> Any:
    """Builds and compiles a `functional` model.

    Tabular columns enter through `build_input_layers`, each text column as
    one raw string input; text branches (optionally a segment of their
    column) run through their own encoder, or all through one shared
    encoder; branches are concatenated, pass a dense trunk, and feed one
    output per head with the head's loss and loss weight.

    Args:
        hp: Keras Tuner hyperparameters, or None for config values.
        spec: The `ModelSpec`; `spec.model` is a `FunctionalModelConfig`.

    Returns:
        A compiled `keras.Model`; with listed outputs, its outputs are a
        dict by head name.
    """
    import keras

    from kerasflow.models.core import build_optimizer

    cfg = spec.model
    inputs, parts = _branches(hp, spec)
    x = keras.layers.Concatenate(name="branches")(parts) if len(parts) > 1 else parts[0]
    x = _trunk(x, hp, spec)
    if isinstance(spec.labels, LabelSpec):
        units, activation, loss = spec.labels.output()
        outputs = keras.layers.Dense(units, activation=activation, name="output")(x)
        model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow_functional")
        model.compile(optimizer=build_optimizer(hp, spec), loss=loss, metrics=spec.labels.metrics())
        return model
    configs = {out.name: out for out in cfg.outputs}
    outputs, losses, weights, metrics = {}, {}, {}, {}
    for head in spec.labels.heads:
        h = x
        for i, units in enumerate(configs[head.name].hidden_units):
            h = keras.layers.Dense(units, activation=cfg.activation, name=f"{head.name}_dense_{i}")(h)
        units, activation, losses[head.name] = head.labels.output()
        if head.labels.task == "regression":  # learn a standardized target, answer in label units
            h = keras.layers.Dense(units, activation=activation, name=f"{head.name}_standardized")(h)
            outputs[head.name] = keras.layers.Rescaling(head.scale, offset=head.offset, name=head.name)(h)
        else:
            outputs[head.name] = keras.layers.Dense(units, activation=activation, name=head.name)(h)
        weights[head.name] = head.loss_weight
        metrics[head.name] = head.labels.metrics()
    model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow_functional")
    model.compile(optimizer=build_optimizer(hp, spec), loss=losses, loss_weights=weights, metrics=metrics)
    return model


def score_heads(model: Any, x: dict[str, np.ndarray], targets: pd.DataFrame, labels: OutputsSpec,
                encoded: dict[str, np.ndarray], reports: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
    """Scores every head of a multi-output model on held-out rows.

    Args:
        model: The trained model.
        x: Named inputs.
        targets: Raw targets, one column per head (`raw_targets`).
        labels: The outputs spec.
        encoded: Encoded targets by head.
        reports: Include classification reports and confusion matrices.
            Default true.

    Returns:
        `(evaluations, predictions)`: a `kerasflow.training.evaluate.Evaluation` per
        head, and one frame with `<head>.actual` next to each head's
        decoded predictions.
    """
    from kerasflow.training.evaluate import Evaluation, classification_evaluation, regression_metrics
    from kerasflow.features.tabular import as_model_inputs

    inputs = as_model_inputs(x)
    scores = model.evaluate(inputs, encoded, verbose=0, return_dict=True)
    raw = model.predict(inputs, verbose=0)
    evaluations: dict[str, Any] = {"": Evaluation(metrics={"loss": float(scores["loss"])})}
    frames = []
    for head in labels.heads:
        y = targets[head.name].rename(head.labels.column)
        predictions = decode_predictions(raw[head.name], head.labels)
        loss = float(scores.get(f"{head.name}_loss", float("nan")))
        if head.labels.task == "regression":
            evaluation = Evaluation(metrics={"loss": loss, **regression_metrics(
                y.to_numpy(dtype="float64"), predictions["prediction"].to_numpy())})
        else:
            evaluation = classification_evaluation(y.astype(str), predictions, head.labels, loss)
            if not reports:
                evaluation = Evaluation(metrics=evaluation.metrics)
        evaluations[head.name] = evaluation
        predictions.insert(0, "actual", y.to_numpy())
        frames.append(predictions.add_prefix(f"{head.name}."))
    return evaluations, pd.concat(frames, axis=1)


def head_metrics(evaluations: dict[str, Any]) -> dict[str, float]:
    """Flattens per-head evaluations into `loss` and `<head>.<metric>` names."""
    return {f"{head}.{k}" if head else k: v for head, e in evaluations.items() for k, v in e.metrics.items()}


def evaluate_heads(model: Any, x: dict[str, np.ndarray], targets: pd.DataFrame, labels: OutputsSpec,
                   encoded: dict[str, np.ndarray], out_dir: str | Path, reports: bool = True) -> tuple[Any, list[Path]]:
    """Scores every head of a multi-output model on held-out rows and writes its reports.

    Args:
        model: The trained model.
        x: Named inputs.
        targets: Raw targets, one column per head (`raw_targets`).
        labels: The outputs spec.
        encoded: Encoded targets by head.
        out_dir: Folder; each head's reports go to `<out_dir>/<head>/`.
        reports: Include classification reports and plots. Default true.

    Returns:
        `(evaluation, files)`: an `Evaluation` whose metrics are the total
        `loss` and `<head>.<metric>` for each head, and the files written.
    """
    from kerasflow.training.evaluate import Evaluation, save_reports

    evaluations, predictions = score_heads(model, x, targets, labels, encoded, reports)
    metrics = head_metrics(evaluations)
    files: list[Path] = []
    for head in labels.heads:
        prefix = f"{head.name}."
        own = predictions[[c for c in predictions.columns if c.startswith(prefix) and c != f"{prefix}actual"]]
        own = own.rename(columns=lambda c: c.removeprefix(prefix))
        y = targets[head.name].rename(head.labels.column)
        files += save_reports(evaluations[head.name], own, y, Path(out_dir) / head.name)
    summary = Path(out_dir) / "metrics.json"
    summary.write_text(json.dumps(metrics, indent=2))
    return Evaluation(metrics=metrics), [summary, *files]


def _branches(hp: Any, spec: Any) -> tuple[dict[str, Any], list[Any]]:
    from kerasflow.features.text_layers import TextSegment
    from kerasflow.models.text import TextEncoder, text_input, text_specs

    cfg = spec.model
    inputs: dict[str, Any] = {}
    parts: list[Any] = []
    if spec.features.columns != spec.features.text_columns:
        tabular, encoded = build_input_layers(spec.features)
        inputs.update(tabular)
        parts.append(encoded)
    texts = text_specs(spec.features)
    shared = TextEncoder(hp, spec, cfg.text, texts[0], "model.text", "shared") if cfg.shared_encoder else None
    for text in texts:
        key = text_input_name(text.column)
        if key not in inputs:
            inputs[key] = text_input(text.column)
        x = inputs[key]
        if text.segment != "all":
            x = TextSegment(text.segment, name=f"segment_{text.name}")(x)
        parts.append((shared or TextEncoder(hp, spec, cfg.text, text, "model.text", text.name))(x))
    return inputs, parts


def _trunk(x: Any, hp: Any, spec: Any) -> Any:
    import keras

    from kerasflow.models.core import choose

    cfg = spec.model
    layers = choose(hp, spec, "model.layers", len(cfg.hidden_units))
    activation = choose(hp, spec, "model.activation", cfg.activation)
    dropout = choose(hp, spec, "model.dropout", cfg.dropout)
    for i in range(layers):
        default = cfg.hidden_units[min(i, len(cfg.hidden_units) - 1)] if cfg.hidden_units else 64
        units = choose(hp, spec, "model.units", default)
        x = keras.layers.Dense(units, activation=activation, name=f"trunk_dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, seed=spec.seed + 300 + i, name=f"trunk_dropout_{i}")(x)
    return x


def _fit_branch(train: pd.DataFrame, cfg: Any, branches: list[tuple[str, str, str]],
                branch: tuple[str, str, str], shared: bool) -> TextSpec:
    name, column, segment = branch
    sources = [(text_series(train, c), s) for _, c, s in (branches if shared else [branch])]
    v = cfg.vectorize
    spec = fit_text_spec(sources, name=name, column=column, segment=segment, max_tokens=v.max_tokens,
                         output_mode=v.output_mode, sequence_length=v.sequence_length, standardize=v.standardize,
                         ngrams=v.ngrams, min_count=v.min_count)
    emb = cfg.embedding
    if emb.pretrained and cfg.encoder != "bag":
        prefix = "model" if hasattr(cfg, "kind") else "model.text"
        size = vectors_dim(emb.pretrained)
        if emb.dim is not None and emb.dim != size:
            raise FeatureError(f"{prefix}.embedding.dim is {emb.dim} but the vectors in {emb.pretrained} "
                               f"have {size} dimensions; drop dim or make them equal")
        spec.embedding_coverage = embedding_coverage(spec.vocabulary, emb.pretrained)
    return spec


def _check_text_features(config: Any) -> None:
    d, column = config.data, config.model.column
    if d.features not in (None, [column]) or d.categorical:
        raise FeatureError(f"a text model reads only its text column {column!r} (model.column); "
                           "use model.kind functional to add tabular columns (data.features, data.categorical)")


def _tabular_columns(config: Any, train: pd.DataFrame) -> tuple[list[str], list[str]]:
    tab = config.model.tabular_input
    if tab is None:
        return [], []
    return select_columns(train, config.data.target, tab.columns, tab.categorical)


def _check_no_leak(config: Any, input_columns: list[str]) -> None:
    outputs = getattr(config.model, "outputs", None)
    targets = [(o.name, o.target) for o in outputs if not o.statistic] if outputs else [("", config.data.target)]
    leaks = [f"{target!r}" + (f" (output {name})" if name else "") for name, target in targets
             if target in input_columns]
    if leaks:
        raise FeatureError(f"target column(s) {', '.join(leaks)} are also model inputs: remove them from the inputs")


def _column(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        raise FeatureError(f"target column {column!r} is not in the data; available: {list(frame.columns)}")
    return frame[column]


def _params(features: FeatureSpec, labels: Labels, texts: list[TextSpec]) -> dict[str, Any]:
    params: dict[str, Any] = {"numeric_columns": len(features.numeric),
                              "categorical_columns": len(features.categorical),
                              "text_branches": [t.name for t in texts]}
    if isinstance(labels, LabelSpec):
        params.update(task=labels.task, classes=labels.classes, loss=labels.output()[2])
    else:
        for head in labels.heads:
            params.update({f"{head.name}.task": head.labels.task, f"{head.name}.classes": head.labels.classes,
                           f"{head.name}.loss": head.labels.output()[2], f"{head.name}.loss_weight": head.loss_weight})
    return params


def _text_metrics(texts: list[TextSpec]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for t in texts:
        metrics[f"{t.name}.vocabulary_size"] = len(t.vocabulary)
        metrics[f"{t.name}.documents"] = t.documents
        if t.embedding_coverage is not None:
            metrics[f"{t.name}.embedding_coverage"] = t.embedding_coverage
    covered = [t.embedding_coverage for t in texts if t.embedding_coverage is not None]
    if covered:
        metrics["embedding_coverage"] = float(np.mean(covered))
    metrics["vocabulary_size"] = float(np.mean([len(t.vocabulary) for t in texts]))
    return metrics
