"""Character n-gram analyzers and unions of analyzers in text bags: scikit-learn's tokens, shipped inside the model.

Real data (the fine_foods reviews), real Keras layers and scikit-learn's own
analyzers as the reference; tiny vocabularies and one or two epochs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.heavy import import_tensorflow

import_tensorflow()

from kerasflow.features.tabular import as_model_inputs, frame_to_inputs  # noqa: E402
from kerasflow.features.text import fit_text_spec, standardize_texts, text_tokens  # noqa: E402
from kerasflow.models.families import build_model, fit_model_inputs  # noqa: E402
from kerasflow.models.spec import ModelSpec  # noqa: E402
from kerasflow.schemas.config import OptimizerConfig, PipelineConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ANALYZERS = [("word", (1, 2)), ("word", (2, 3)), ("char", (1, 3)), ("char", (2, 5)), ("char_wb", (2, 5)),
             ("char_wb", (4, 6))]


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data/fine_foods/train.csv").head(240)


def _config(vectorize: dict, **model) -> PipelineConfig:
    return PipelineConfig.model_validate({
        "name": "t", "data": {"source": "x.csv", "target": "score"},
        "model": {"kind": "text", "column": "review", "encoder": "bag", "units": 8,
                  "vectorize": {"output_mode": "tf_idf", **vectorize}, **model}})


def _sklearn_tokens(texts: list[str], analyzer: str, ngram_range: tuple[int, int]) -> list[list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyze = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, lowercase=False,
                              token_pattern=r"\S+").build_analyzer()
    return [analyze(text) for text in texts]


@pytest.mark.parametrize("analyzer, ngram_range", ANALYZERS)
def test_tokens_agree_with_sklearn(reviews: pd.DataFrame, analyzer: str, ngram_range: tuple[int, int]) -> None:
    texts = list(reviews["review"].head(60)) + ["a", "  two  spaces\tand a tab ", "I'd", ""]
    for standardize in ("lower_strip_html", "none"):
        ours = text_tokens(texts, standardize, analyzer=analyzer, ngram_min=ngram_range[0], ngrams=ngram_range[1])
        standardized = [t.decode("utf-8") for t in standardize_texts(texts, standardize).numpy()]
        theirs = _sklearn_tokens(standardized, analyzer, ngram_range)
        for text, mine, reference in zip(texts, ours, theirs):
            assert Counter(mine) == Counter(reference), (standardize, text[:60])


def test_char_wb_pads_words_and_counts_short_words_once() -> None:
    assert sorted(text_tokens(["ab"], "none", analyzer="char_wb", ngram_min=2, ngrams=5)[0]) == sorted(
        [" a", "ab", "b ", " ab", "ab ", " ab "])
    assert text_tokens(["a bc"], "none", analyzer="char_wb", ngram_min=5, ngrams=6)[0] == [" a ", " bc "]


def test_char_vocabulary_comes_from_training_rows_only(reviews: pd.DataFrame) -> None:
    train = reviews["review"].head(120)
    spec = fit_text_spec([(train, "all")], name="review", column="review", max_tokens=100_000, output_mode="tf_idf",
                         analyzer="char_wb", ngram_min=3, ngrams=4)
    held_out = {t for doc in text_tokens(reviews["review"].tail(120), analyzer="char_wb", ngram_min=3, ngrams=4)
                for t in doc}
    unseen = held_out - set(spec.vocabulary)
    assert unseen and len(spec.idf_weights) == len(spec.vocabulary)
    assert all(3 <= len(t) <= 4 for t in spec.vocabulary)


def test_union_specs_have_their_own_vocabularies(reviews: pd.DataFrame) -> None:
    fitted = fit_model_inputs(_config({"ngrams": 2, "max_tokens": 300,
                                       "union": [{"analyzer": "char_wb", "ngrams": [2, 4], "max_tokens": 200}]}),
                              reviews)
    spec = fitted.features.text[0]
    assert len(spec["vocabulary"]) == 298 and spec["analyzer"] == "word"
    (char,) = spec["union"]
    assert char["analyzer"] == "char_wb" and (char["ngram_min"], char["ngrams"]) == (2, 4)
    assert len(char["vocabulary"]) == 198 and len(char["idf_weights"]) == 198


@pytest.mark.parametrize("vectorize", [
    {"analyzer": "char", "ngrams": [1, 3], "max_tokens": 300, "output_mode": "count"},
    {"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 400, "sublinear_tf": True, "l2_normalize": True},
    {"analyzer": "word", "ngrams": 2, "max_tokens": 300, "output_mode": "multi_hot", "l2_normalize": True,
     "union": [{"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 300}]},
    {"ngrams": [1, 2], "max_tokens": 300, "sublinear_tf": True, "l2_normalize": True,
     "union": [{"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 400},
               {"analyzer": "char", "ngrams": 3, "max_tokens": 100}]},
])
def test_analyzers_train_save_and_load_with_identical_predictions(reviews: pd.DataFrame, tmp_path: Path,
                                                                  vectorize: dict) -> None:
    import keras

    import kerasflow.features.layers  # noqa: F401  (the loaders' custom objects)
    from kerasflow.features.labels import encode_labels

    train, test = reviews.head(200), reviews.tail(40)
    config = _config(vectorize, dropout=0.2)
    fitted = fit_model_inputs(config, train)
    spec = ModelSpec(model=config.model, optimizer=OptimizerConfig(), features=fitted.features, labels=fitted.labels)
    model = build_model(None, spec)
    x = as_model_inputs(frame_to_inputs(train, fitted.features))
    history = model.fit(x, encode_labels(train["score"], fitted.labels), epochs=2, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    rows = pd.concat([test, pd.DataFrame({"review": ["", "<br />", "zzzq", "Great coffee!"], "score": "great"})])
    inputs = as_model_inputs(frame_to_inputs(rows, fitted.features))
    before = model.predict(inputs, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), before, rtol=1e-6, atol=1e-7)
    assert np.isfinite(before).all()
    if vectorize.get("l2_normalize"):
        weights = [layer for layer in loaded.layers if layer.name.endswith("_weights")]
        assert len(weights) == 1 + len(vectorize.get("union", []))
        for layer in weights:
            vectors = np.asarray(keras.Model(loaded.inputs, layer.output)(inputs))
            norms = np.linalg.norm(vectors, axis=1)
            assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


def test_sublinear_tf_idf_matches_counts_by_hand(reviews: pd.DataFrame) -> None:
    from kerasflow.models.text import BagVectorizer

    fitted = fit_model_inputs(_config({"analyzer": "char_wb", "ngrams": [2, 3], "max_tokens": 500,
                                       "sublinear_tf": True}), reviews)
    spec = fitted.features.text[0]
    texts = list(reviews["review"].head(3))
    vectors = np.asarray(BagVectorizer(_text_spec(spec), "t")(np.array([[t] for t in texts])))
    index = {token: i + 1 for i, token in enumerate(spec["vocabulary"])}
    for row, tokens in zip(vectors, text_tokens(texts, analyzer="char_wb", ngram_min=2, ngrams=3)):
        expected = np.zeros(len(index) + 1)
        for token, count in Counter(tokens).items():
            if token in index:
                expected[index[token]] = (1 + np.log(count)) * spec["idf_weights"][index[token] - 1]
        np.testing.assert_allclose(row[1:], expected[1:], rtol=1e-5)


def _text_spec(data: dict):
    from kerasflow.features.text import TextSpec

    return TextSpec.from_dict(data)


@pytest.mark.parametrize("vectorize, message", [
    ({"analyzer": "char_wb", "ngrams": [5, 2]}, r"model\.vectorize\.ngrams: .*empty"),
    ({"analyzer": "char", "output_mode": "int"}, r"model\.vectorize\.analyzer: character analyzers"),
    ({"output_mode": "int", "union": [{"analyzer": "char_wb"}]}, r"model\.vectorize\.analyzer: .*union"),
    ({"union": [{"analyzer": "chars"}]}, r"model\.vectorize\.union\.0\.analyzer"),
])
def test_analyzer_config_errors_name_their_path(tmp_path: Path, vectorize: dict, message: str) -> None:
    import yaml

    from kerasflow.schemas.config import ConfigError, load_config

    model = {"kind": "text", "column": "review", "encoder": "bag" if vectorize.get("output_mode") != "int" else "gru",
             "vectorize": {"output_mode": "tf_idf", **vectorize}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "t", "data": {"source": "x.csv", "target": "score"},
                                                     "model": model}))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml")


def test_defaults_unite_words_and_char_ngrams_at_every_length() -> None:
    from kerasflow.lint.defaults import default_training
    from kerasflow.lint.profile import DataProfile
    from kerasflow.models.text import default_section
    from kerasflow.models.text import default_training as text_training

    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "score"}})
    for length in (40.0, 277.0, 3000.0):
        profile = DataProfile(rows=5000, train_rows=3500, task="classification", classes=2,
                              text_columns=["review"], text_median_length=length)
        section = default_section(config, profile)
        assert section["vectorize"]["union"] == [{"analyzer": "char_wb", "ngrams": [2, 5], "max_tokens": 30000}]
        assert section["vectorize"]["sublinear_tf"] and section["vectorize"]["l2_normalize"]
    validated = PipelineConfig.model_validate({**config.model_dump(mode="json", exclude_unset=True),
                                               "model": section})
    assert validated.model.vectorize.analyzers[1].ngram_range == (2, 5) and not validated.model.wide
    training = text_training(default_training(profile), profile)
    assert training["early_stopping"]["patience"] == 6 and training["reduce_lr"]["patience"] == 3
    assert training["early_stopping"]["restore_best_weights"] and training["epochs"] == 300


def test_wide_needs_a_bag(tmp_path: Path) -> None:
    import yaml

    from kerasflow.schemas.config import ConfigError, load_config

    model = {"kind": "text", "column": "review", "encoder": "gru", "wide": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "t", "data": {"source": "x.csv", "target": "score"},
                                                     "model": model}))
    with pytest.raises(ConfigError, match="model.wide: wide feeds bag vectors"):
        load_config(tmp_path / "c.yaml")


def test_defaults_only_text_flow_serves_raw_strings_through_char_ngrams(prefect_harness, mlflow_store: str,
                                                                         tmp_path: Path) -> None:
    import keras
    import mlflow
    import yaml

    import kerasflow.features.layers  # noqa: F401  (the loaders' custom objects)
    from kerasflow.features.tabular import FeatureSpec
    from kerasflow.flows.train import train_flow

    for name, rows in (("train", 300), ("test", 80)):  # short texts: the reviews' first 150 characters
        frame = pd.read_csv(ROOT / f"data/fine_foods/{name}.csv").head(rows)
        frame.assign(review=frame["review"].str[:150]).to_csv(tmp_path / f"{name}.csv", index=False)
    config = {"name": "fine_foods_chars",
              "data": {"source": str(tmp_path / "train.csv"), "test_source": str(tmp_path / "test.csv"),
                       "target": "score"},
              "split": {"kind": "holdout", "val_fraction": 0.15},
              "training": {"epochs": 2, "batch_size": 32},
              "registry": {"model_name": "fine-foods-chars"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    result = train_flow(str(tmp_path / "c.yaml"))

    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = pd.DataFrame({"review": ["Delicious!<br />My dog loves these treats.", "Stale and awful.", ""]})
    served = model.predict(rows)
    assert set(served["prediction"]) <= {"great", "other"}
    folder = Path(mlflow.artifacts.download_artifacts(result.model_uri))
    spec = FeatureSpec.load(next(folder.rglob("features.json")))
    assert spec.text[0]["union"][0]["analyzer"] == "char_wb", "a defaults-only config"
    keras_model = keras.models.load_model(next(folder.rglob("*.keras")))
    assert {"vectorize_text_1", "vectorize_text_union"} <= {layer.name for layer in keras_model.layers}
    raw = keras_model.predict(as_model_inputs(frame_to_inputs(rows, spec)), verbose=0)
    np.testing.assert_allclose(served["proba_other"].to_numpy(), raw.reshape(-1), rtol=1e-5)
