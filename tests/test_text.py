"""Text models: standardization, vocabularies fitted on training rows, GloVe vectors, encoders, the flow.

Real data (the fine_foods reviews), real Keras layers, tiny vocabularies and
one or two epochs.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.heavy import import_tensorflow

import_tensorflow()

from kerasflow.features.labels import LabelSpec  # noqa: E402
from kerasflow.features.tabular import FeatureError, as_model_inputs, frame_to_inputs  # noqa: E402
from kerasflow.features.text import (  # noqa: E402
    embedding_coverage,
    embedding_matrix,
    fit_text_spec,
    fit_word_vectors,
    load_word_vectors,
    save_word_vectors,
    text_tokens,
)
from kerasflow.models.families import build_model, fit_model_inputs  # noqa: E402
from kerasflow.models.spec import ModelSpec  # noqa: E402
from kerasflow.schemas.config import ConfigError, OptimizerConfig, PipelineConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VECTORS = "data/fine_foods/vectors_50d.txt"


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data/fine_foods/train.csv").head(300)


def _config(model: dict, **sections) -> PipelineConfig:
    return PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "score"},
                                          "model": model, **sections})


def _build(config: PipelineConfig, train: pd.DataFrame, hp=None, space: dict | None = None):
    fitted = fit_model_inputs(config, train)
    spec = ModelSpec(model=config.model, optimizer=OptimizerConfig(), features=fitted.features,
                     labels=fitted.labels, search_space=space or {})
    return build_model(hp, spec), fitted


def test_standardizer_strips_html_entities_and_punctuation() -> None:
    tokens = text_tokens(["GREAT taste!<br /><br />I'd buy&amp;again...Really."])[0]
    assert tokens == ["great", "taste", "id", "buy", "again", "really"]
    assert text_tokens(["Stale. Never again!"], segment="rest")[0] == ["never", "again"]
    assert text_tokens(["a b c"], ngrams=2)[0] == ["a", "b", "c", "a b", "b c"]


def test_vocabulary_comes_from_training_rows_only(reviews: pd.DataFrame) -> None:
    train = reviews["review"].head(200)
    spec = fit_text_spec([(train, "all")], name="review", column="review", max_tokens=50, output_mode="tf_idf")
    assert len(spec.vocabulary) == 48 and spec.vocabulary[0] == "the"
    held_out = set(t for doc in text_tokens(reviews["review"].tail(100)) for t in doc)
    trained = set(t for doc in text_tokens(train) for t in doc)
    unseen = held_out - trained
    assert unseen and not unseen & set(spec.vocabulary)
    assert len(spec.idf_weights) == 48 and spec.idf_weights[0] < spec.idf_weights[-1]


def test_vectorizer_in_the_model_matches_the_fitted_tokens(reviews: pd.DataFrame) -> None:
    from kerasflow.models.text import build_vectorizer

    spec = fit_text_spec([(reviews["review"], "all")], name="r", column="review", max_tokens=200,
                         sequence_length=12)
    layer = build_vectorizer(spec, "v")
    text = reviews["review"].iloc[1]
    ids = np.asarray(layer(np.array([[text]], dtype=object)))[0]
    index = {t: i + 2 for i, t in enumerate(spec.vocabulary)}
    expected = [index.get(t, 1) for t in text_tokens([text])[0]][:12]
    assert ids.tolist() == expected + [0] * (12 - len(expected))


def test_glove_vectors_coverage_and_frozen_embedding(reviews: pd.DataFrame, tmp_path: Path) -> None:
    words, vectors = fit_word_vectors(reviews["review"], dim=8, words=200)
    path = save_word_vectors(words, vectors, tmp_path / "v.txt")
    index, matrix = load_word_vectors(path)
    assert matrix.shape == (200, 8) and list(index)[:3] == words[:3]
    vocabulary = [words[0], "zzzunseen", words[5]]
    assert embedding_coverage(vocabulary, path) == pytest.approx(2 / 3)
    weights = embedding_matrix(vocabulary, path)
    np.testing.assert_allclose(weights[2], matrix[index[words[0]]], atol=1e-4)
    assert not weights[0].any() and weights.shape == (5, 8)

    config = _config({"kind": "text", "column": "review", "encoder": "average",
                      "vectorize": {"max_tokens": 300, "sequence_length": 20},
                      "embedding": {"pretrained": str(path), "trainable": False}})
    model, fitted = _build(config, reviews)
    embedding = model.get_layer("embedding_text")
    assert not embedding.trainable and embedding.output_dim == 8
    assert 0 < fitted.metrics["embedding_coverage"] < 1
    first = next(t for t in fitted.features.text[0]["vocabulary"] if t in index)
    row = fitted.features.text[0]["vocabulary"].index(first) + 2
    np.testing.assert_allclose(embedding.get_weights()[0][row], matrix[index[first]], atol=1e-4)


def test_pretrained_dimension_mismatch_is_named(reviews: pd.DataFrame) -> None:
    config = _config({"kind": "text", "column": "review", "embedding": {"dim": 16, "pretrained": VECTORS}})
    with pytest.raises(FeatureError, match=r"model\.embedding\.dim is 16 .* 50 dimensions"):
        fit_model_inputs(config, reviews)


@pytest.mark.parametrize("model, layers", [
    ({"encoder": "bag", "vectorize": {"output_mode": "multi_hot"}, "layers": 2}, ["text_dense_0", "text_dense_1"]),
    ({"encoder": "average", "dropout": 0.1}, ["text_embedding_dropout", "text_average"]),
    ({"encoder": "simple_rnn"}, ["text_simple_rnn_0"]),
    ({"encoder": "lstm", "layers": 2, "dropout": 0.2, "recurrent_dropout": 0.1}, ["text_lstm_0", "text_lstm_1"]),
    ({"encoder": "gru", "bidirectional": True, "layers": 2}, ["text_bidirectional_0", "text_bidirectional_1"]),
    ({"encoder": "conv1d", "layers": 2, "kernel_size": 3}, ["text_conv1d_0", "text_pool_0", "text_global_max"]),
    ({"encoder": "conv1d_gru", "kernel_size": 3}, ["text_conv1d_0", "text_pool_0", "text_gru_0"]),
])
def test_encoders_build_their_layers(reviews: pd.DataFrame, model: dict, layers: list[str]) -> None:
    vectorize = {"max_tokens": 200, "sequence_length": 24, **model.pop("vectorize", {})}
    config = _config({"kind": "text", "column": "review", "units": 8, "filters": 8,
                      "embedding": {"dim": 8}, "vectorize": vectorize, **model})
    built, _ = _build(config, reviews)
    names = [layer.name for layer in built.layers]
    assert set(layers) <= set(names), names
    if model["encoder"] in ("lstm", "gru"):
        first, last = (built.get_layer(n) for n in layers)
        inner = getattr(first, "forward_layer", first)
        assert inner.return_sequences and not getattr(last, "forward_layer", last).return_sequences
    if model["encoder"] == "lstm":
        assert built.get_layer(layers[0]).dropout == pytest.approx(0.2)
        assert built.get_layer(layers[0]).recurrent_dropout == pytest.approx(0.1)
    assert built.inputs[0].dtype == "string" and built.output.shape[-1] == 1
    empty_and_unknown = np.array([[""], ["<br />"], ["zzzq"], ["Great coffee."]], dtype=object)
    assert np.isfinite(built.predict(as_model_inputs({"text_review": empty_and_unknown}), verbose=0)).all()


def test_encoder_settings_are_tunable(reviews: pd.DataFrame) -> None:
    import keras_tuner

    space = {"model.encoder": {"type": "choice", "values": ["gru", "conv1d"]},
             "model.embedding_dim": {"type": "choice", "values": [8, 12]},
             "model.units": {"type": "int", "min": 4, "max": 8, "step": 4}}
    config = _config({"kind": "text", "column": "review", "vectorize": {"max_tokens": 200, "sequence_length": 24},
                      "kernel_size": 3, "filters": 4})
    hp = keras_tuner.HyperParameters()
    hp.Fixed("model.encoder", "conv1d")
    hp.Fixed("model.embedding_dim", 12)
    model, _ = _build(config, reviews, hp=hp, space=space)
    assert model.get_layer("embedding_text").output_dim == 12
    assert model.get_layer("text_conv1d_0") is not None
    from kerasflow.models.families import family_defaults as default_values
    from kerasflow.schemas.tuning import TUNABLE

    defaults = default_values(config.model)
    assert set(defaults) <= set(TUNABLE) and defaults["model.encoder"] == "gru"
    functional = _config({"kind": "functional", "inputs": [{"type": "text", "name": "a", "column": "review"}]})
    assert set(default_values(functional.model)) <= set(TUNABLE)


def test_config_errors_name_their_path(tmp_path: Path) -> None:
    raw = {"name": "t", "data": {"source": "x.csv", "target": "score"},
           "model": {"kind": "text", "column": "review", "encoder": "bag", "units": 0, "vectorize": {"ngram": 2}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")
    text = str(err.value)
    assert "model.units: Input should be greater than 0" in text
    assert "model.vectorize.ngram: unknown key (allowed: analyzer, l2_normalize, max_tokens, min_count, ngrams" in text
    raw["model"] = {"kind": "text", "column": "review", "encoder": "bag"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"model\.vectorize\.output_mode: encoder bag needs bag-of-words"):
        load_config(tmp_path / "c.yaml")


def test_text_flow_uses_the_test_file_and_serves_raw_strings(prefect_harness, mlflow_store: str,
                                                              tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    train = pd.read_csv(ROOT / "data/fine_foods/train.csv").head(400)
    test = pd.read_csv(ROOT / "data/fine_foods/test.csv").head(120)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    config = yaml.safe_load((ROOT / "configs/fine_foods_conv1d.yaml").read_text())
    config["name"] = "fine_foods_tiny"
    config["data"].update(source=str(tmp_path / "train.csv"), test_source=str(tmp_path / "test.csv"))
    config["model"].update(vectorize={"max_tokens": 600, "sequence_length": 40}, filters=8)
    config["training"].update(epochs=2, batch_size=32)
    config["registry"] = {"model_name": "fine-foods-tiny"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    result = train_flow(str(tmp_path / "c.yaml"))

    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.params["split.test_rows"] == "120" and run.data.params["data.test_rows"] == "120"
    assert int(run.data.params["split.train_rows"]) + int(run.data.params["split.val_rows"]) == 400
    assert 0.5 < float(run.data.params["text.embedding_coverage"]) <= 1
    assert run.data.params["text.review.vocabulary_size"] == "598"
    model = mlflow.pyfunc.load_model(result.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["review"]
    rows = pd.DataFrame({"review": ["Delicious!<br />My dog loves these treats.", "Stale and awful.", None]})
    served = model.predict(rows)
    assert list(served.columns) == ["prediction", "proba_great", "proba_other"]
    assert set(served["prediction"]) <= {"great", "other"}
    np.testing.assert_allclose(served[["proba_great", "proba_other"]].sum(axis=1), 1.0, rtol=1e-5)
    _served_equals_keras(model, result.model_uri, rows.fillna(""))


def _served_equals_keras(model, uri: str, rows: pd.DataFrame) -> None:
    import keras

    import kerasflow.features.layers  # noqa: F401
    from kerasflow.features.tabular import FeatureSpec

    folder = Path(mlflow.artifacts.download_artifacts(uri))
    keras_model = keras.models.load_model(next(folder.rglob("*.keras")))
    spec = FeatureSpec.load(next(folder.rglob("features.json")))
    labels = LabelSpec.load(next(folder.rglob("labels.json")))
    raw = keras_model.predict(as_model_inputs(frame_to_inputs(rows, spec)), verbose=0)
    served = model.predict(rows)
    np.testing.assert_allclose(served[f"proba_{labels.classes[1]}"].to_numpy(), raw.reshape(-1), rtol=1e-5)
