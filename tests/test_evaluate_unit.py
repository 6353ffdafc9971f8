"""Per-class scores: a table always, charts only for a handful of classes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kerasflow.features.labels import LabelSpec
from kerasflow.training.evaluate import charted_metrics, classification_evaluation, per_class_table


def evaluate(classes: list[str], y: list[str], pred: list[str]):
    proba = np.zeros((len(pred), len(classes)))
    for row, name in enumerate(pred):
        proba[row, classes.index(name)] = 1.0
    predictions = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes]).assign(prediction=pred)
    return classification_evaluation(pd.Series(y), predictions, LabelSpec("classification", "label", classes), 0.5)


def test_per_class_table_has_one_row_per_class() -> None:
    evaluation = evaluate(["a", "b", "c"], ["a", "a", "b", "c"], ["a", "b", "b", "c"])
    table = per_class_table(evaluation)
    assert list(table["class"]) == ["a", "b", "c"] and list(table["support"]) == [2, 1, 1]
    assert table.loc[0, "recall"] == 0.5 and evaluation.metrics["recall_min"] == 0.5
    assert "class.a.recall" in charted_metrics(evaluation)


def test_many_classes_are_a_table_not_hundreds_of_charts() -> None:
    classes = [f"k{i:02d}" for i in range(12)]
    evaluation = evaluate(classes, classes, classes)
    charted = charted_metrics(evaluation)
    assert not [name for name in charted if name.startswith("class.")] and charted["accuracy"] == 1.0
    assert "class.k11.recall" in evaluation.metrics, "a gate may still name any class"
    assert len(per_class_table(evaluation)) == 12
