"""The tabular encodings of the `preprocessing` section, with the `dense` and `tabm` families.

`normalize: standard | quantile | none`, `numeric_embedding: none | periodic
| piecewise_linear` and `categorical_embedding` on real tiny data (penguins:
numeric and categorical columns with missing values; breast_cancer): the
config accepts and refuses what it should (piecewise-linear bins with
streaming, naming the path), the feature spec fits its statistics on the
training rows only, every setting builds, trains and survives a `.keras`
round trip with identical predictions, k-fold ensembles register and serve,
and a tiny search chooses among the numeric embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.load import load_frame

ROOT = Path(__file__).resolve().parents[1]
DENSE = {"kind": "dense", "hidden_units": [16]}
TABM = {"kind": "tabm", "k": 2, "width": 16, "depth": 1}
FAST = {"epochs": 3, "batch_size": 32, "early_stopping": {"patience": 2}}


def _penguins() -> pd.DataFrame:
    frame = load_frame("penguins")
    return frame[frame["species"].notna()].reset_index(drop=True)


def _config(tmp_path: Path, overrides: list[str] | None = None, **sections: Any):
    from kerasflow.schemas.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "data": {"source": "penguins", "target": "species"}, **sections}))
    return load_config(path, overrides)


def test_the_preprocessing_section_takes_the_encodings_and_the_old_booleans(tmp_path: Path) -> None:
    from kerasflow.schemas.config import ConfigError

    assert _config(tmp_path).preprocessing.normalize == "standard"
    assert _config(tmp_path, preprocessing={"normalize": True}).preprocessing.normalize == "standard"
    assert _config(tmp_path, preprocessing={"normalize": False}).preprocessing.normalize == "none"
    config = _config(tmp_path, preprocessing={"normalize": "quantile", "numeric_embedding": "periodic",
                                              "categorical_embedding": {"above": 2}}, model=TABM)
    p = config.preprocessing
    assert (p.normalize, p.numeric_embedding, p.categorical_embedding.above, p.categorical_embedding.dim) == \
        ("quantile", "periodic", 2, "auto")
    for bad, path in [(["preprocessing.normalize=minmax"], r"preprocessing\.normalize"),
                      (["preprocessing.numeric_embedding=splines"], r"preprocessing\.numeric_embedding"),
                      (["preprocessing.numeric_bins=0"], r"preprocessing\.numeric_bins"),
                      (["preprocessing.categorical_embedding.dim=0"], r"preprocessing\.categorical_embedding\.dim")]:
        with pytest.raises(ConfigError, match=path):
            _config(tmp_path, bad, preprocessing={"categorical_embedding": {"above": 4}})


@pytest.mark.parametrize("model", [DENSE, TABM])
def test_piecewise_linear_bins_are_refused_with_streaming_naming_the_path(tmp_path: Path, model: dict) -> None:
    from kerasflow.schemas.config import ConfigError

    with pytest.raises(ConfigError, match=r"preprocessing\.numeric_embedding: data\.streaming"):
        _config(tmp_path, ["data.streaming=true", "preprocessing.numeric_embedding=piecewise_linear"], model=model)
    streamed = _config(tmp_path, ["data.streaming=true"], model=model,
                       preprocessing={"numeric_embedding": "periodic", "normalize": "quantile"})
    assert streamed.data.streaming and streamed.preprocessing.numeric_embedding == "periodic"


def test_a_search_may_vary_the_numeric_embedding_and_then_fits_bins(tmp_path: Path) -> None:
    from kerasflow.features.options import preprocessing_options
    from kerasflow.schemas.config import ConfigError

    space = {"preprocessing.numeric_embedding": {"type": "choice", "values": ["none", "piecewise_linear"]}}
    config = _config(tmp_path, tuning={"space": space}, model=TABM)
    assert preprocessing_options(config)["bins"] and not preprocessing_options(_config(tmp_path))["bins"]
    with pytest.raises(ConfigError, match=r"tuning\.space\.preprocessing\.numeric_embedding: value 'splines'"):
        _config(tmp_path, tuning={"space": {"preprocessing.numeric_embedding": {
            "type": "choice", "values": ["none", "splines"]}}})


def test_quantile_normalization_is_fitted_on_training_rows_as_scikit_learn_does() -> None:
    import keras
    from sklearn.preprocessing import QuantileTransformer

    from kerasflow.features.encodings import quantile_count
    from kerasflow.features.inputs import build_input_layers
    from kerasflow.features.tabular import as_model_inputs, fit_features, frame_to_inputs

    frame = load_frame("breast_cancer")
    train, test = frame.iloc[:400], frame.iloc[400:]
    numeric = [c for c in frame.columns if c != "target"]
    spec = fit_features(train, numeric, [], normalize="quantile")
    assert spec.normalize == "quantile" and len(spec.quantiles[0]) == quantile_count(400) == 13
    inputs, encoded = build_input_layers(spec)
    scores = keras.Model(inputs, encoded).predict(as_model_inputs(frame_to_inputs(test, spec)), verbose=0)
    expected = QuantileTransformer(n_quantiles=13, output_distribution="normal").fit(train[numeric]).transform(
        test[numeric])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert quantile_count(100) == 10 and quantile_count(10**6) == 1000


def test_bins_and_embedding_sizes_come_from_the_training_rows(tmp_path: Path) -> None:
    from kerasflow.features.encodings import embedding_size, quantile_normal
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import FeatureSpec, fit_features, select_columns
    from kerasflow.schemas.config import CategoricalEmbeddingConfig

    frame = _penguins()
    frame["bill"] = frame["bill_length_mm"].round().astype("Int64").astype(str)  # a column of many levels
    numeric, categorical = select_columns(frame, "species")
    train = frame.iloc[:200]
    spec = fit_features(train, numeric, categorical, normalize="quantile", numeric_embedding="piecewise_linear",
                        categorical_embedding=CategoricalEmbeddingConfig(above=3))
    filled = train[numeric].fillna(pd.Series(spec.fill, index=numeric)).to_numpy("float64")
    normal = quantile_normal(filled, spec.quantiles)
    for j, edges in enumerate(spec.bins):  # the quantiles of the normalized training values
        assert np.all(np.diff(edges) > 0) and 2 <= len(edges) <= 49
        assert edges[0] == pytest.approx(normal[:, j].min()) and edges[-1] == pytest.approx(normal[:, j].max())
    levels = len(spec.vocabularies["bill"])
    assert categorical == ["island", "sex", "bill"] and levels > 20
    # island and sex have 3 training levels each (sex: male, female and missing): at the threshold, one-hot
    assert spec.embedded == {"bill": embedding_size(levels + 1)} and 8 <= spec.embedded["bill"] <= 16
    assert embedding_size(4) == 4 and embedding_size(10**6) == 16 and embedding_size(50, 7) == 7
    assert fit_features(train, numeric, categorical, normalize="quantile").bins == []  # only when asked
    few = fit_features(train, numeric, categorical, numeric_embedding="piecewise_linear", n_bins=8)
    assert all(2 <= len(edges) <= 9 for edges in few.bins) and max(len(edges) for edges in few.bins) == 9
    assert preprocessing_options(_config(tmp_path, preprocessing={"numeric_bins": 8}))["n_bins"] == 8
    legacy = tmp_path / "features.json"  # a spec saved before `normalize` named its method
    spec.save(legacy)
    legacy.write_text(legacy.read_text().replace('"normalize": "quantile"', '"normalize": false'))
    assert FeatureSpec.load(legacy).normalize == "none"


@pytest.mark.parametrize(("model", "preprocessing"), [
    (DENSE, {"normalize": "quantile", "numeric_embedding": "periodic"}),
    (DENSE, {"numeric_embedding": "piecewise_linear", "categorical_embedding": {"above": 2, "dim": 3}}),
    (DENSE, {"normalize": "none", "categorical_embedding": {"above": 0}}),
    (TABM, {"normalize": "quantile", "numeric_embedding": "piecewise_linear", "categorical_embedding": {"above": 2}}),
    (TABM, {"numeric_embedding": "periodic"}),
    (TABM, {"categorical_embedding": {"above": 0}}),
])
def test_every_setting_trains_and_survives_a_keras_round_trip(tmp_path: Path, model: dict,
                                                              preprocessing: dict) -> None:
    import keras

    from kerasflow.features.inputs import feature_widths
    from kerasflow.features.labels import encode_labels, fit_labels
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import as_model_inputs, fit_features, frame_to_inputs
    from kerasflow.models.families import build_model
    from kerasflow.training.final import model_spec
    from kerasflow.training.fitting import fit_model, set_seed, split_encoder

    config = _config(tmp_path, model=model, preprocessing=preprocessing, training=FAST)
    frame = _penguins()
    train, rest = frame.iloc[::2], frame.iloc[1::2]
    features = fit_features(train, ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"],
                            ["island", "sex"], **preprocessing_options(config))
    labels = fit_labels(train["species"])
    set_seed(0)
    network = build_model(None, model_spec(config, features, labels))
    first = next(layer for layer in network.layers if type(layer).__name__ == "LinearBatchEnsemble") \
        if model["kind"] == "tabm" else network.get_layer("dense_0")
    assert first.input.shape[-1] == sum(feature_widths(features))
    if model["kind"] == "dense":  # the fixed encoding still splits off, untrained, so rows are encoded once
        assert not split_encoder(network).encoder.trainable_weights
    fit_model(network, frame_to_inputs(train, features), encode_labels(train["species"], labels), config.training)
    path = tmp_path / "model.keras"
    network.save(path)
    loaded = keras.saving.load_model(path)
    rows = as_model_inputs(frame_to_inputs(rest, features))
    probabilities = loaded.predict(rows, verbose=0)
    np.testing.assert_array_equal(probabilities, network.predict(rows, verbose=0))
    assert probabilities.shape == (len(rest), 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_tabm_gives_each_input_feature_one_chunk_of_its_first_adapter() -> None:
    from kerasflow.features.inputs import D_EMBEDDING, feature_widths
    from kerasflow.features.tabular import fit_features
    from kerasflow.schemas.config import CategoricalEmbeddingConfig

    frame = _penguins().iloc[:200]
    frame = frame.assign(bill=frame["bill_length_mm"].round().astype("Int64").astype(str))
    spec = fit_features(frame, ["bill_length_mm", "body_mass_g"], ["bill", "sex"], numeric_embedding="periodic",
                        categorical_embedding=CategoricalEmbeddingConfig(above=3, dim=5))
    # two embedded numbers, bill embedded (many levels), sex one-hot (male, female, "" and the OOV slot)
    assert feature_widths(spec) == [D_EMBEDDING, D_EMBEDDING, 5, 4]
    assert feature_widths(spec, "none") == [1, 1, 5, 4]


def test_a_kfold_ensemble_with_every_encoding_registers_and_serves(prefect_harness, mlflow_store: str,
                                                                    tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    name = "penguins-encodings-test"
    path = tmp_path / "kfold.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "data": {"source": "penguins", "target": "species"},
        "split": {"kind": "kfold", "folds": 2, "test_fraction": 0.2, "seed": 42},
        "preprocessing": {"normalize": "quantile", "numeric_embedding": "piecewise_linear",
                          "numeric_bin_edges": "target", "categorical_embedding": {"above": 2}},
        "model": DENSE, "training": {**FAST, "epochs": 10}, "registry": {"model_name": name}}))
    result = train_flow(str(path))
    assert result.metrics["accuracy"] > 0.6
    evaluated = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="evaluation/predictions.csv", tracking_uri=mlflow_store))
    rows = _penguins().head(5).drop(columns="species")
    served = mlflow.pyfunc.load_model(f"models:/{name}/{result.version}").predict(rows)
    assert served["prediction"].notna().all() and len([c for c in served if c.startswith("proba_")]) == 3
    assert len(evaluated) > 0


def test_a_tiny_search_chooses_among_the_numeric_embeddings(tmp_path: Path) -> None:
    from kerasflow.data.split import split_holdout
    from kerasflow.features.labels import fit_labels
    from kerasflow.features.options import preprocessing_options
    from kerasflow.features.tabular import fit_features, select_columns
    from kerasflow.training.search import run_search, search_data

    space = {"preprocessing.numeric_embedding": {"type": "choice", "values": ["periodic", "piecewise_linear"]}}
    config = _config(tmp_path, model=DENSE, training={**FAST, "epochs": 2},
                     preprocessing={"categorical_embedding": {"above": 2}},
                     tuning={"tuner": "random", "max_trials": 2, "space": space})
    frame = _penguins()
    split = split_holdout(frame["species"], test_fraction=0.2, val_fraction=0.2, seed=0)
    numeric, categorical = select_columns(frame, "species")
    features = fit_features(frame.iloc[split.train], numeric, categorical, **preprocessing_options(config))
    data = search_data(config, frame, split, features, fit_labels(frame.iloc[split.train]["species"]))
    result = run_search(config, data, tmp_path / "search", fingerprint="f")
    assert [t.status for t in result.trials] == ["COMPLETED"] * 2
    assert {t.values["preprocessing.numeric_embedding"] for t in result.trials} == set(space[
        "preprocessing.numeric_embedding"]["values"])


def test_a_streamed_tabm_with_quantiles_periodic_and_categorical_embeddings_trains_and_serves(
        prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.features.encodings import quantile_count
    from kerasflow.features.tabular import FeatureSpec
    from kerasflow.flows.train import train_flow

    frame = load_frame("penguins")
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(shards / f"part-{i}.parquet", index=False)
    name = "penguins-stream-encodings-test"
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "data": {"source": str(shards), "target": "species", "streaming": True},
        "split": {"test_fraction": 0.2, "val_fraction": 0.15, "seed": 7},
        "preprocessing": {"normalize": "quantile", "numeric_embedding": "periodic",
                          "categorical_embedding": {"above": 2}},
        "model": TABM, "training": {**FAST, "epochs": 4, "batch_size": 16}, "registry": {"model_name": name}}))
    result = train_flow(str(path))
    spec = FeatureSpec.load(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="preprocessing/features.json", tracking_uri=mlflow_store))
    assert spec.normalize == "quantile" and spec.numeric_embedding == "periodic" and set(spec.embedded) == {
        "island", "sex"}
    # quantiles of the sample's training rows (here every training row: the sample holds the small table)
    assert quantile_count(len(frame) * 2 // 3) == 10 and np.asarray(spec.quantiles).shape == (len(spec.numeric), 10)
    served = mlflow.pyfunc.load_model(f"models:/{name}/{result.version}").predict(
        frame.drop(columns="species").head(5))
    assert set(served["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
