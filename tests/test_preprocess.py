"""Preprocessing is fitted on training rows only and exported inside the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kerasflow.data.load import load_frame
from kerasflow.data.split import split_holdout
from kerasflow.features.labels import decode_predictions, encode_labels, fit_labels
from kerasflow.features.tabular import FeatureError, as_model_inputs, fit_features, frame_to_inputs, select_columns
from kerasflow.models.families import build_model
from kerasflow.models.spec import ModelSpec
from kerasflow.schemas.config import ModelConfig, OptimizerConfig


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_frame("penguins")


def test_columns_are_split_by_type(penguins: pd.DataFrame) -> None:
    numeric, categorical = select_columns(penguins, "species")
    assert categorical == ["island", "sex"]
    assert "bill_length_mm" in numeric and "species" not in numeric


def test_unknown_column_is_named(penguins: pd.DataFrame) -> None:
    with pytest.raises(FeatureError, match="wingspan"):
        select_columns(penguins, "species", features=["wingspan"])


def test_normalization_uses_training_statistics_only(penguins: pd.DataFrame) -> None:
    split = split_holdout(penguins["species"], seed=0)
    train = penguins.iloc[split.train]
    numeric, categorical = select_columns(penguins, "species")
    spec = fit_features(train, numeric, categorical)
    filled = train[numeric].fillna(train[numeric].mean())
    np.testing.assert_allclose(spec.mean, filled.mean().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(spec.variance, filled.var(ddof=0).to_numpy(), rtol=1e-9)
    assert not np.allclose(spec.mean, penguins[numeric].fillna(penguins[numeric].mean()).mean().to_numpy())
    model = build_model(None, _spec(spec, fit_labels(train["species"])))
    norm = model.get_layer("normalize")
    np.testing.assert_allclose(np.asarray(norm.mean).reshape(-1), spec.mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(norm.variance).reshape(-1), spec.variance, rtol=1e-5)


def test_missing_values_and_unknown_levels_are_handled(penguins: pd.DataFrame) -> None:
    numeric, categorical = select_columns(penguins, "species")
    spec = fit_features(penguins, numeric, categorical, impute="median")
    model = build_model(None, _spec(spec, fit_labels(penguins["species"])))
    rows = penguins.head(3).copy()
    rows.loc[rows.index[0], "bill_length_mm"] = np.nan
    rows.loc[rows.index[1], "island"] = "Atlantis"
    rows.loc[rows.index[2], "sex"] = None
    out = model.predict(as_model_inputs(frame_to_inputs(rows, spec)), verbose=0)
    assert np.isfinite(out).all() and out.shape == (3, 3)


@pytest.mark.parametrize(
    ("labels", "encoding", "expected"),
    [
        (pd.Series(["a", "b", "c", "a"]), "integer", (3, "softmax", "sparse_categorical_crossentropy")),
        (pd.Series(["a", "b", "c", "a"]), "one_hot", (3, "softmax", "categorical_crossentropy")),
        (pd.Series(["yes", "no", "no"]), "integer", (1, "sigmoid", "binary_crossentropy")),
        (pd.Series([0.5, 1.7, 2.25, 3.1]), "integer", (1, "linear", "mse")),
    ],
)
def test_loss_matches_label_encoding(labels: pd.Series, encoding: str, expected: tuple) -> None:
    spec = fit_labels(labels, encoding=encoding)
    assert spec.output() == expected
    encoded = encode_labels(labels, spec)
    if encoding == "one_hot":
        assert encoded.shape == (4, 3) and encoded.sum() == 4


def test_class_names_survive_decoding() -> None:
    spec = fit_labels(pd.Series(["cat", "dog", "emu"]))
    frame = decode_predictions(np.array([[0.1, 0.7, 0.2]]), spec)
    assert frame.loc[0, "prediction"] == "dog" and list(frame.columns)[1:] == ["proba_cat", "proba_dog", "proba_emu"]


def test_unknown_label_and_missing_labels_fail() -> None:
    spec = fit_labels(pd.Series(["a", "b"]))
    with pytest.raises(FeatureError, match="not among the training classes"):
        encode_labels(pd.Series(["z"]), spec)
    with pytest.raises(FeatureError, match="missing values"):
        fit_labels(pd.Series(["a", None]))


def test_text_in_numeric_column_fails(penguins: pd.DataFrame) -> None:
    numeric, categorical = select_columns(penguins, "species")
    spec = fit_features(penguins, numeric, categorical)
    bad = penguins.head(2).astype({"bill_length_mm": object})
    bad.loc[bad.index[0], "bill_length_mm"] = "long"
    with pytest.raises(FeatureError, match="non-numeric"):
        frame_to_inputs(bad, spec)


def _spec(features, labels, **model) -> ModelSpec:
    return ModelSpec(model=ModelConfig(**model), optimizer=OptimizerConfig(), features=features, labels=labels)
