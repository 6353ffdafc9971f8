"""Evaluates a trained model on held-out rows: the untouched test split, or a validation fold.

A model with several outputs (`OutputsSpec`) is scored head by head
(`<head>.<metric>`), each head with the metrics of its own task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kerasflow.features.labels import LabelSpec, OutputsSpec, class_codes, decode_predictions
from kerasflow.features.tabular import as_model_inputs, inference_batch_size
from kerasflow.training.encoded import encode_rows, encoded_batch_size, split_encoder
from kerasflow.training.image_stream import PREDICT_BATCH, is_streamed
from kerasflow.training.plots import pyplot, save_figure


@dataclass
class Evaluation:
    """Test-split results.

    Args:
        metrics: Scalar metrics by name (`loss`, `accuracy`, `f1_macro`, ...).
        report_text: scikit-learn's classification report, or empty.
        report: The same report as a dict, or empty.
        confusion: Confusion matrix rows (classification only).
        classes: Class names of the matrix rows and columns.
        slices: One row per slice of `evaluation.slices` (`slice`, `column`,
            `value`, `rows`, `gated`, then the metrics), or empty.
        worst: The worst gated slice of each `slice_min.*`/`slice_max.*`
            metric, by metric name, e.g. `{"accuracy": "sex=female (n=41)"}`.
    """

    metrics: dict[str, float]
    report_text: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    worst: dict[str, str] = field(default_factory=dict)


def evaluate_model(model: Any, x: dict[str, np.ndarray], y: pd.Series, labels: LabelSpec,
                   encoded: np.ndarray) -> tuple[Evaluation, pd.DataFrame]:
    """Scores a model on held-out rows.

    Args:
        model: A trained `keras.Model`.
        x: Named inputs of the test rows.
        y: Raw test labels.
        labels: The label spec.
        encoded: Test labels encoded for the model's loss.

    Returns:
        `(evaluation, predictions)`: the metrics and reports, and the decoded
        predictions of every test row. A multi-output model (`labels` an
        `OutputsSpec`, `y` a frame by output) gives `loss` and
        `<output>.<metric>` metrics, and `<output>.*` prediction columns.
    """
    if not isinstance(labels, LabelSpec):  # several outputs, each scored on its own
        evaluations, predictions = score_heads(model, x, y, labels, encoded)
        return Evaluation(metrics=head_metrics(evaluations)), predictions
    if is_streamed(x):  # image files read from disk batch by batch (`image_stream`)
        keras_scores = model.evaluate(x.dataset(encoded, batch_size=PREDICT_BATCH), verbose=0, return_dict=True)
        raw = model.predict(x.dataset(batch_size=PREDICT_BATCH), verbose=0)
    else:
        keras_scores, raw = _scores(model, x, encoded)
    predictions = decode_predictions(raw, labels)
    if labels.task == "regression":
        scores = regression_metrics(y.to_numpy(dtype="float64"), predictions["prediction"].to_numpy())
        return Evaluation(metrics={"loss": float(keras_scores["loss"]), **scores}), predictions
    return classification_evaluation(y.astype(str), predictions, labels, keras_scores["loss"]), predictions


def _scores(model: Any, x: dict[str, np.ndarray], encoded: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Keras's metrics and the raw predictions of a single-output model on the same rows.

    A model with a fixed feature encoder (`training.encoded.split_encoder`)
    encodes the rows once for both (text is tokenized once, not twice).
    """
    split = split_encoder(model)
    if split is not None:
        model, x = split.core, encode_rows(split, x)
        batch = encoded_batch_size(split)
    else:
        x = as_model_inputs(x)
        batch = inference_batch_size(x)
    scores = model.evaluate(x, encoded, batch_size=batch, verbose=0, return_dict=True)
    return scores, model.predict(x, batch_size=batch, verbose=0)


def classification_evaluation(y: pd.Series, predictions: pd.DataFrame, labels: LabelSpec,
                              loss: float) -> Evaluation:
    """Builds the classification metrics and reports.

    Args:
        y: True class names.
        predictions: Decoded predictions with a `prediction` column.
        labels: The label spec.
        loss: Test loss from Keras.

    Returns:
        An `Evaluation` with accuracy, macro and weighted F1, per-class
        precision/recall/F1, ROC AUC where defined, and the confusion matrix.
    """
    from sklearn import metrics as skm  # deferred: scikit-learn loads while validation runs (heavy.prefetch_light)

    classes = labels.classes
    truth, pred = class_codes(y, classes), class_codes(predictions["prediction"], classes)  # sklearn is fast on ints
    codes = list(range(len(classes)))
    report = skm.classification_report(truth, pred, labels=codes, target_names=classes, output_dict=True,
                                       zero_division=0)
    scores = {
        "loss": float(loss),
        "accuracy": float(np.mean(truth == pred)),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "f1_weighted": float(report["weighted avg"]["f1-score"]),
        **_roc_auc(truth, predictions, classes),
        "recall_min": min((float(report[n]["recall"]) for n in classes if report[n]["support"]), default=0.0),
        **_per_class(report, classes),
    }
    return Evaluation(
        metrics=scores,
        report_text=skm.classification_report(truth, pred, labels=codes, target_names=classes, zero_division=0,
                                              digits=4),
        report=report,
        confusion=skm.confusion_matrix(truth, pred, labels=codes).tolist(),
        classes=list(classes),
    )


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Returns MAE, RMSE and R² of regression predictions.

    Args:
        y: True values.
        pred: Predicted values.

    Returns:
        `{"mae": ..., "rmse": ..., "r2": ...}`.
    """
    from sklearn import metrics as skm  # deferred: scikit-learn loads while validation runs (heavy.prefetch_light)

    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(skm.root_mean_squared_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)),
    }


def save_reports(evaluation: Evaluation, predictions: pd.DataFrame, y: pd.Series, directory: str | Path) -> list[Path]:
    """Writes the evaluation's reports and plots into a folder.

    Args:
        evaluation: The evaluation.
        predictions: Decoded test predictions.
        y: True test labels.
        directory: Output folder (created).

    Returns:
        The files written.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = [_write(out / "metrics.json", json.dumps(evaluation.metrics, indent=2))]
    frame = predictions.copy()
    frame.insert(0, "actual", y.to_numpy())
    frame.to_csv(out / "predictions.csv", index=False)
    files.append(out / "predictions.csv")
    if evaluation.report:
        files.append(_write(out / "classification_report.txt", evaluation.report_text))
        files.append(_write(out / "classification_report.json", json.dumps(evaluation.report, indent=2)))
        files.append(plot_confusion(evaluation.confusion, evaluation.classes, out / "confusion_matrix.png"))
    else:
        files.append(plot_residuals(y.to_numpy(dtype="float64"), predictions["prediction"].to_numpy(), out / "residuals.png"))
    return files


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
        `(evaluations, predictions)`: an `Evaluation` per
        head, and one frame with `<head>.actual` next to each head's
        decoded predictions.
    """
    inputs = as_model_inputs(x)
    batch = inference_batch_size(inputs)
    scores = model.evaluate(inputs, encoded, batch_size=batch, verbose=0, return_dict=True)
    raw = model.predict(inputs, batch_size=batch, verbose=0)
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


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    """Saves a confusion-matrix PNG with class names on both axes."""
    from sklearn import metrics as skm  # deferred: scikit-learn loads while validation runs (heavy.prefetch_light)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    skm.ConfusionMatrixDisplay(np.asarray(matrix), display_labels=classes).plot(ax=ax, colorbar=False)
    return save_figure(fig, path)


def plot_residuals(y: np.ndarray, pred: np.ndarray, path: Path) -> Path:
    """Saves a residuals-versus-predicted PNG."""
    from sklearn import metrics as skm  # deferred: scikit-learn loads while validation runs (heavy.prefetch_light)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    skm.PredictionErrorDisplay(y_true=y, y_pred=pred).plot(ax=ax, kind="residual_vs_predicted")
    return save_figure(fig, path)


def _roc_auc(truth: np.ndarray, predictions: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    from sklearn import metrics as skm  # deferred: scikit-learn loads while validation runs (heavy.prefetch_light)

    proba = predictions[[f"proba_{c}" for c in classes]].to_numpy()
    present = set(np.unique(truth).tolist())
    if len(present) < 2:
        return {}
    if len(classes) == 2:
        return {"roc_auc": float(skm.roc_auc_score(truth == 1, proba[:, 1]))}
    if present != set(range(len(classes))):
        return {}
    return {"roc_auc_ovr": float(skm.roc_auc_score(truth, proba, multi_class="ovr", labels=list(range(len(classes)))))}


CHARTED_CLASSES = 10


def per_class_table(evaluation: Evaluation) -> pd.DataFrame:
    """Returns one row per class: precision, recall, F1 and support on the test rows.

    Args:
        evaluation: A classification `Evaluation` (with its report).

    Returns:
        A frame with columns `class`, `precision`, `recall`, `f1`, `support`,
        empty for a regression evaluation.
    """
    rows = [{"class": name, "precision": evaluation.report[name]["precision"],
             "recall": evaluation.report[name]["recall"], "f1": evaluation.report[name]["f1-score"],
             "support": int(evaluation.report[name]["support"])} for name in evaluation.classes]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def charted_metrics(evaluation: Evaluation) -> dict[str, float]:
    """Returns the metrics worth a chart each: per-class scores only for up to 10 classes.

    Every metric stays in `evaluation.metrics` (a gate may name
    `class.<name>.recall`); above `CHARTED_CLASSES` classes the per-class
    scores are read from the per-class table instead of hundreds of charts.

    Args:
        evaluation: The evaluation.

    Returns:
        The metrics to log as MLflow metrics.
    """
    if len(evaluation.classes) <= CHARTED_CLASSES:
        return dict(evaluation.metrics)
    return {name: value for name, value in evaluation.metrics.items() if not name.startswith("class.")}


def _per_class(report: dict[str, Any], classes: list[str]) -> dict[str, float]:
    out = {}
    for name in classes:
        for key in ("precision", "recall", "f1-score"):
            out[f"class.{_safe(name)}.{key.replace('-score', '')}"] = float(report[name][key])
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
