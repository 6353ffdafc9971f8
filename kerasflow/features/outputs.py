"""Model inputs and outputs of the `text` and `functional` families, fitted on training rows.

Plain functions (no Prefect, no MLflow). `fit_model_inputs` fits what the
`text` and `functional` families need on the training rows only: the
tabular `FeatureSpec`, one `TextSpec` per text branch (one shared
vocabulary for a shared encoder) and the labels, as a single `LabelSpec` or
an `OutputsSpec` with one `LabelSpec` per head. The helpers below compute
text-statistic labels, encode targets and decode predictions
(`<head>.prediction`, `<head>.proba_<class>`). The functional network is
built by `kerasflow.models.functional`; each head is scored by
`kerasflow.training.evaluate`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.features.labels import (
    HeadSpec,
    Labels,
    LabelSpec,
    OutputsSpec,
    decode_predictions,
    encode_labels,
    fit_labels,
)
from kerasflow.features.options import preprocessing_options
from kerasflow.features.tabular import FeatureError, FeatureSpec, fit_features
from kerasflow.features.text import TextSpec, embedding_coverage, fit_text_spec, text_series, vectors_dim
from kerasflow.schemas.config import DataConfig, PipelineConfig
from kerasflow.schemas.functional import OutputConfig
from kerasflow.schemas.text import TextEncoderConfig

_HTML_TAG = re.compile(r"<[^>]*>")


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


def fit_model_inputs(config: PipelineConfig, train: pd.DataFrame, *, branches: list[tuple[str, str, str]],
                     numeric: list[str], categorical: list[str], encoder: TextEncoderConfig, encoder_path: str,
                     shared: bool = False, outputs: list[OutputConfig] | None = None) -> FittedInputs:
    """Fits the tabular inputs, text branches and labels of a model on training rows.

    The `text` and `functional` families call it with what their `model`
    section lists (`kerasflow.models.text`, `kerasflow.models.functional`).

    Args:
        config: The pipeline config (`data`, `preprocessing`).
        train: The training rows only.
        branches: `(name, column, segment)` of each text branch.
        numeric: Numeric tabular columns.
        categorical: Categorical tabular columns.
        encoder: The text encoder section (`vectorize`, `embedding`, `encoder`).
        encoder_path: Its config path with the trailing dot (`model.`, `model.text.`).
        shared: All branches share one vocabulary. Default false.
        outputs: The listed output heads, or None (one head on `data.target`).

    Returns:
        The `FittedInputs`.

    Raises:
        FeatureError: Columns are missing, an output target is also an
            input, or a text column has no tokens.
    """
    _check_no_leak(config.data, outputs, numeric + categorical + [column for _, column, _ in branches])
    labels = fit_output_labels(config.data, train, outputs, config.preprocessing.target_transform)
    features = fit_features(train, numeric, categorical, **preprocessing_options(config, train, labels))
    texts = [_fit_branch(train, encoder, encoder_path, branches, b, shared) for b in branches]
    features.text = [t.as_dict() for t in texts]
    return FittedInputs(features, labels, _params(features, labels, texts), _text_metrics(texts))


def fit_output_labels(data: DataConfig, train: pd.DataFrame, outputs: list[OutputConfig] | None,
                      target_transform: str | None = None) -> Labels:
    """Fits the label spec: one `LabelSpec`, or an `OutputsSpec` when output heads are listed.

    Args:
        data: The `data` config section (`target`, `task`, `label_encoding`).
        train: Training rows.
        outputs: The listed output heads (`model.outputs`), or None.
        target_transform: `preprocessing.target_transform` of a single
            regression output (see `fit_labels`); listed heads standardize
            their own labels (`HeadSpec.offset`, `HeadSpec.scale`).

    Returns:
        The label spec.
    """
    if not outputs:
        return fit_labels(_column(train, data.target), data.task, data.label_encoding, target_transform)
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


def _fit_branch(train: pd.DataFrame, cfg: TextEncoderConfig, path: str, branches: list[tuple[str, str, str]],
                branch: tuple[str, str, str], shared: bool) -> TextSpec:
    name, column, segment = branch
    sources = [(text_series(train, c), s) for _, c, s in (branches if shared else [branch])]
    v = cfg.vectorize
    spec = fit_text_spec(sources, name=name, column=column, segment=segment, max_tokens=v.max_tokens,
                         output_mode=v.output_mode, sequence_length=v.sequence_length, standardize=v.standardize,
                         ngrams=v.ngram_range[1], min_count=v.min_count, analyzer=v.analyzer,
                         ngram_min=v.ngram_range[0], sublinear_tf=v.sublinear_tf, l2_normalize=v.l2_normalize,
                         union=[{"analyzer": a.analyzer, "ngram_min": a.ngram_range[0], "ngrams": a.ngram_range[1],
                                 "max_tokens": a.max_tokens, "min_count": a.min_count} for a in v.union])
    emb = cfg.embedding
    if emb.pretrained and cfg.encoder != "bag":
        size = vectors_dim(emb.pretrained)
        if emb.dim is not None and emb.dim != size:
            raise FeatureError(f"{path}embedding.dim is {emb.dim} but the vectors in {emb.pretrained} "
                               f"have {size} dimensions; drop dim or make them equal")
        spec.embedding_coverage = embedding_coverage(spec.vocabulary, emb.pretrained)
    return spec


def _check_no_leak(data: DataConfig, outputs: list[OutputConfig] | None, input_columns: list[str]) -> None:
    targets = [(o.name, o.target) for o in outputs if not o.statistic] if outputs else [("", data.target)]
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
        params.update(task=labels.task, classes=labels.classes, loss=labels.output()[2], **labels.target_params())
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
