"""Text vectorized once: a text model trains its layers after the vectorization on rows encoded once.

Real data (the fine_foods reviews), real Keras layers; tiny vocabularies and
one or two epochs. The model that is saved and served still takes raw strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.heavy import import_tensorflow

import_tensorflow()

from kerasflow.features.labels import encode_labels  # noqa: E402
from kerasflow.features.tabular import as_model_inputs, frame_to_inputs  # noqa: E402
from kerasflow.models.families import build_model, fit_model_inputs  # noqa: E402
from kerasflow.models.spec import ModelSpec  # noqa: E402
from kerasflow.schemas.config import OptimizerConfig, PipelineConfig  # noqa: E402
from kerasflow.training.encoded import SPARSE_WIDTH, encode_rows, split_encoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UNION = {"ngrams": [1, 2], "max_tokens": 600, "sublinear_tf": True, "l2_normalize": True,
         "union": [{"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 1200}]}


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data/fine_foods/train.csv").head(240)
    extra = pd.DataFrame({"review": ["", "<br />", "zzzq", "Great coffee!"], "score": "great"})
    return pd.concat([frame, extra], ignore_index=True)


def _model(train: pd.DataFrame, model: dict) -> tuple[object, object]:
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "score"},
                                            "model": {"kind": "text", "column": "review", "units": 8, **model}})
    fitted = fit_model_inputs(config, train)
    spec = ModelSpec(model=config.model, optimizer=OptimizerConfig(), features=fitted.features, labels=fitted.labels)
    return build_model(None, spec), fitted


@pytest.mark.parametrize("model", [
    {"encoder": "bag", "vectorize": {"output_mode": "tf_idf", **UNION}},
    {"encoder": "bag", "wide": True, "vectorize": {"output_mode": "tf_idf", **UNION}},
    {"encoder": "bag", "vectorize": {"output_mode": "tf_idf", "ngrams": 2, "max_tokens": 500}},
    {"encoder": "gru", "vectorize": {"output_mode": "int", "max_tokens": 500, "sequence_length": 20}},
], ids=["union", "wide_and_deep", "words", "sequence"])
def test_the_raw_string_model_equals_its_trained_layers_on_encoded_rows(reviews: pd.DataFrame, tmp_path: Path,
                                                                        model: dict) -> None:
    import keras

    import kerasflow.features.layers  # noqa: F401  (the loaders' custom objects)
    from kerasflow.schemas.config import TrainingConfig
    from kerasflow.training.fitting import fit_model

    train, test = reviews.iloc[:200], reviews.iloc[200:]
    network, fitted = _model(train, model)
    split = split_encoder(network)
    assert split is not None and not split.encoder.trainable_weights
    assert all(layer.name.startswith("vectorize_") or layer.name.startswith("text_review")
               for layer in split.encoder.layers)
    y = encode_labels(train["score"], fitted.labels)
    result = fit_model(network, frame_to_inputs(train, fitted.features), y,
                       TrainingConfig(epochs=2, batch_size=32))  # trains the core on encoded rows
    assert result.epochs_run == 2 and np.isfinite(result.history["loss"]).all()

    inputs = as_model_inputs(frame_to_inputs(test, fitted.features))
    raw = network.predict(inputs, verbose=0)
    encoded = encode_rows(split, frame_to_inputs(test, fitted.features))
    wide = split.shapes[0][0] >= SPARSE_WIDTH and model["vectorize"]["output_mode"] != "int"
    assert hasattr(encoded, "tocsr") == wide, "wide bag vectors are kept sparse"
    dense = encoded.toarray() if wide else encoded
    np.testing.assert_array_equal(np.asarray(split.encoder(inputs)), dense)
    np.testing.assert_array_equal(np.asarray(split.core(dense)), np.asarray(network(inputs)))
    np.testing.assert_allclose(split.core.predict(encoded, verbose=0), raw, rtol=1e-6, atol=1e-7)

    network.save(tmp_path / "model.keras")  # the saved model takes raw strings, as before
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.inputs[0].dtype == "string"
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), raw)
    again = split_encoder(loaded)  # a loaded model splits the same way (evaluation)
    np.testing.assert_array_equal(np.asarray(again.core(dense)), np.asarray(split.core(dense)))


def test_evaluation_scores_the_encoded_rows_like_the_whole_model(reviews: pd.DataFrame) -> None:
    from kerasflow.training.evaluate import evaluate_model

    train, test = reviews.iloc[:200], reviews.iloc[200:]
    network, fitted = _model(train, {"encoder": "bag", "vectorize": {"output_mode": "tf_idf", **UNION}})
    network.fit(as_model_inputs(frame_to_inputs(train, fitted.features)), encode_labels(train["score"], fitted.labels),
                epochs=1, verbose=0)
    x, y = frame_to_inputs(test, fitted.features), encode_labels(test["score"], fitted.labels)
    evaluation, predictions = evaluate_model(network, x, test["score"], fitted.labels, y)
    inputs = as_model_inputs(x)
    whole = network.evaluate(inputs, y, verbose=0, return_dict=True)
    assert evaluation.metrics["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    proba = predictions[[c for c in predictions.columns if c.startswith("proba_")]].to_numpy()
    np.testing.assert_allclose(proba[:, -1], network.predict(inputs, verbose=0).reshape(-1), rtol=1e-5, atol=1e-6)


def test_a_shared_text_encoder_trains_whole(reviews: pd.DataFrame) -> None:
    """A vectorizer called on two inputs has no single output to split at; the model trains as one."""
    config = PipelineConfig.model_validate({
        "name": "t", "data": {"source": "x.csv", "target": "score"},
        "model": {"kind": "functional", "shared_encoder": True,
                  "inputs": [{"type": "text", "name": "head", "column": "review", "segment": "first_sentence"},
                             {"type": "text", "name": "body", "column": "review", "segment": "rest"}],
                  "text": {"encoder": "bag", "units": 8, "vectorize": {"output_mode": "tf_idf", "max_tokens": 300}}}})
    fitted = fit_model_inputs(config, reviews)
    spec = ModelSpec(model=config.model, optimizer=OptimizerConfig(), features=fitted.features, labels=fitted.labels)
    assert split_encoder(build_model(None, spec)) is None
