"""The scikit-learn baseline of a table: fitted on the network's training rows, scored on its test rows.

A table's features get `HistGradientBoostingClassifier` or `...Regressor`
(default settings, categorical columns as pandas categories); a model that
reads text columns gets TF-IDF of word 1-2-grams and `char_wb` 2-5-grams
with `LogisticRegression` or `Ridge`. The rows are the network's (the
split's training rows, which a k-fold split makes every non-test row; above
`evaluation.baseline_rows` of them, a seeded random sample of that many) and
the metrics are computed on all its test rows by the same functions as its
evaluation (`kerasflow.training.evaluate`), so the two results are comparable.

Plain code: no Prefect, no MLflow. The data kinds call it
(`kerasflow.training.kinds.DataKind.baseline`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from kerasflow.data.contract import dropped_columns, feature_columns
from kerasflow.data.holdout import rows_at
from kerasflow.data.split import Split
from kerasflow.features.labels import LabelSpec
from kerasflow.features.outputs import raw_targets
from kerasflow.features.tabular import is_numeric
from kerasflow.models.families import model_outputs, text_section
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.evaluate import classification_evaluation, regression_metrics

# One OpenMP/BLAS thread: a small fit gains little from more, and on a busy 2-core machine two OpenMP threads
# wait on each other at every barrier (breast_cancer: 0.3 s on one thread, 15 s on two under load).
MAX_THREADS = 1
MAX_CATEGORIES = 250  # HistGradientBoosting bins a categorical column into at most 255 values (one for missing)


@dataclass(frozen=True)
class Baseline:
    """A scikit-learn baseline fitted on the training rows and scored on the test rows, or why there is none.

    Args:
        model: The estimator's class name (`HistGradientBoostingClassifier`,
            `LogisticRegression`, ...); empty when there is no baseline.
        name: The short name printed beside the network's result
            (`HistGradientBoosting`, `TF-IDF + LogisticRegression`).
        metrics: Its test metrics, named and computed as the network's
            (no `loss`: a Keras loss has no scikit-learn counterpart).
        reason: Why there is no baseline (empty when there is one).
        train_rows: The rows it was fitted on.
        test_rows: The rows it was scored on.
        seconds: Its fit and scoring time.
        sampled_from: The training rows it was sampled from, when there
            were more than `evaluation.baseline_rows`; 0 when it saw them all.
    """

    model: str = ""
    name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    train_rows: int = 0
    test_rows: int = 0
    seconds: float = 0.0
    sampled_from: int = 0


def fit_baseline(config: PipelineConfig, raw_path: str, split_path: str, labels_path: str) -> Baseline:
    """Fits the baseline of a table on its training rows and scores it on its test rows.

    Args:
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        labels_path: The fitted `LabelSpec` JSON.

    Returns:
        The `Baseline`; without a model (several outputs, no test rows, a
        column scikit-learn refuses) its `reason` says why.
    """
    if model_outputs(config.model):
        return Baseline(reason="the model has several outputs: no single baseline")
    split = Split.load(split_path)
    if not split.test:
        return Baseline(reason="the split has no test rows")
    labels = LabelSpec.load(labels_path)
    positions, cap = np.asarray(split.train), config.evaluation.baseline_rows
    sampled_from = len(positions) if cap is not None and len(positions) > cap else 0
    if sampled_from:  # drawn from the labels alone; the rows read are the sample's, in their order in the file
        values = read_target(raw_path, config.data.target)
        values = values.iloc[positions] if values is not None else None
        positions = np.sort(positions[sample_positions(len(positions), values, labels, config.training.seed, cap)])
    rows = rows_at(raw_path, np.concatenate([positions, split.test]))  # never a copy of every row
    train, test = rows.iloc[:len(positions)], rows.iloc[len(positions):]
    texts = text_section(config.model)
    started = time.perf_counter()
    try:
        if texts is not None and texts.columns:
            name, estimator, x_train, x_test = text_inputs(texts.columns, labels, train, test)
        else:
            name, estimator, x_train, x_test = table_inputs(config, raw_path, labels, train, test)
        metrics = fit_and_score(estimator, x_train, x_test, labels, train, test)
    except ValueError as exc:  # a column scikit-learn refuses: the run goes on without a baseline
        return Baseline(reason=f"the baseline could not be fitted: {exc}")
    return Baseline(model=type(estimator[-1] if hasattr(estimator, "steps") else estimator).__name__, name=name,
                    metrics=metrics, train_rows=len(train), test_rows=len(test),
                    seconds=time.perf_counter() - started, sampled_from=sampled_from)


def read_target(raw_path: str, target: str | None) -> pd.Series | None:
    """The label column of every raw row (one column read), or None when the rows have no such column."""
    import pyarrow.parquet as pq  # deferred: only the steps that read raw Parquet need it

    if target is None or target not in pq.ParquetFile(raw_path).schema_arrow.names:
        return None
    return pd.read_parquet(raw_path, columns=[target])[target]


def sample_positions(rows: int, target: pd.Series | None, labels: LabelSpec, seed: int, size: int) -> np.ndarray:
    """The positions of `size` of `rows` training rows, drawn uniformly at random with the config's seed.

    Drawn from their labels alone. A classifier's sample keeps the class
    shares (stratified) when every class has at least two rows; otherwise,
    and for regression, it is a plain random sample.

    Args:
        rows: How many training rows (more than `size`).
        target: Their labels, or None.
        labels: The fitted `LabelSpec` (its task).
        seed: `training.seed`.
        size: Rows in the sample.

    Returns:
        `size` positions, in scikit-learn's draw order (the rows
        `train_test_split` of the training frame itself would draw).
    """
    from sklearn.model_selection import train_test_split  # deferred: heavy

    stratify = None
    if labels.task != "regression" and target is not None:
        counts = target.value_counts(dropna=False)
        stratify = target if counts.min() >= 2 else None
    chosen, _ = train_test_split(np.arange(rows), train_size=size, random_state=seed, stratify=stratify)
    return chosen


def table_inputs(config: PipelineConfig, raw_path: str, labels: LabelSpec, train: pd.DataFrame,
                 test: pd.DataFrame) -> tuple[str, Any, pd.DataFrame, pd.DataFrame]:
    """The boosting baseline of a table's feature columns, and its training and test inputs.

    Categorical columns (declared, or not numeric) become pandas categories
    of the training rows' values (the most frequent `MAX_CATEGORIES`; others
    are missing), read with `categorical_features="from_dtype"`.

    Returns:
        `(name, estimator, x_train, x_test)`.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # deferred: heavy

    dropped = set(dropped_columns(raw_path))
    names, declared = feature_columns(config, train)
    names = [c for c in names if c not in dropped]
    categorical = [c for c in names if c in declared or not is_numeric(train[c])]
    x_train, x_test = train[names].copy(), test[names].copy()
    for column in names:
        if column in categorical:
            kept = train[column].astype(str).where(train[column].notna()).value_counts().index[:MAX_CATEGORIES]
            x_train[column], x_test[column] = (as_category(x[column], list(kept)) for x in (train, test))
        else:
            x_train[column], x_test[column] = (pd.to_numeric(x[column], errors="coerce").astype("float64")
                                               for x in (train, test))
    boosting = HistGradientBoostingRegressor if labels.task == "regression" else HistGradientBoostingClassifier
    return "HistGradientBoosting", boosting(categorical_features="from_dtype",
                                            random_state=config.training.seed), x_train, x_test


def as_category(values: pd.Series, categories: list[str]) -> pd.Series:
    """Values as text in a pandas category of the given categories; others (and missing ones) are missing."""
    text = values.astype(str).where(values.notna())
    return pd.Series(pd.Categorical(text, categories=categories), index=values.index)


def text_inputs(columns: list[str], labels: LabelSpec, train: pd.DataFrame,
                test: pd.DataFrame) -> tuple[str, Any, pd.Series, pd.Series]:
    """The TF-IDF linear baseline of a model's text columns (joined by a space), and its inputs.

    Word 1-2-grams and `char_wb` 2-5-grams (sublinear TF, terms in at least
    two rows), then `LogisticRegression` or `Ridge`.

    Returns:
        `(name, estimator, x_train, x_test)`.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # deferred: heavy
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline, make_union

    def joined(rows: pd.DataFrame) -> pd.Series:
        return rows[columns].fillna("").astype(str).agg(" ".join, axis=1)

    vectors = make_union(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
    linear = Ridge() if labels.task == "regression" else LogisticRegression(C=4.0, max_iter=2000)
    return f"TF-IDF + {type(linear).__name__}", make_pipeline(vectors, linear), joined(train), joined(test)


def fit_and_score(estimator: Any, x_train: Any, x_test: Any, labels: LabelSpec, train: pd.DataFrame,
                  test: pd.DataFrame) -> dict[str, float]:
    """Fits the estimator (on `MAX_THREADS` threads) and scores it as the network is scored.

    Returns:
        The test metrics, without `loss`.
    """
    y_train, y_test = raw_targets(train, labels), raw_targets(test, labels)
    with threadpool_limits(limits=MAX_THREADS):
        if labels.task == "regression":
            estimator.fit(x_train, y_train.to_numpy(dtype="float64"))
            return regression_metrics(y_test.to_numpy(dtype="float64"), estimator.predict(x_test))
        estimator.fit(x_train, y_train.astype(str).to_numpy())
        predictions = class_predictions(estimator.predict_proba(x_test), estimator.classes_, labels.classes)
    scores = classification_evaluation(y_test.astype(str), predictions, labels, float("nan")).metrics
    return {name: value for name, value in scores.items() if name != "loss"}


def class_predictions(proba: np.ndarray, fitted: Any, classes: list[str]) -> pd.DataFrame:
    """The estimator's class probabilities as the network's decoded predictions.

    Args:
        proba: `predict_proba` of the test rows, columns in `fitted` order.
        fitted: The estimator's `classes_`.
        classes: The label spec's classes (a class the training rows lack
            has probability 0).

    Returns:
        A frame with a `prediction` column and one `proba_<class>` column
        per class (`kerasflow.features.labels.decode_predictions`).
    """
    position = {str(c): i for i, c in enumerate(fitted)}
    columns = np.column_stack([proba[:, position[c]] if c in position else np.zeros(len(proba)) for c in classes])
    frame = pd.DataFrame(columns, columns=[f"proba_{c}" for c in classes])
    frame.insert(0, "prediction", np.asarray(classes, dtype=object)[columns.argmax(axis=1)])
    return frame
