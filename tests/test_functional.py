"""Functional models: several inputs, several outputs with their own losses, a shared encoder.

Real data: fine_foods reviews, with a second text column (each review's
first sentence as its `summary`, the rest as `review`) and a numeric column
(exclamation marks) derived in the test, since the file has one text column.
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

from kerasflow.features.labels import LabelSpec, OutputsSpec  # noqa: E402
from kerasflow.features.outputs import (  # noqa: E402
    decode_outputs,
    encode_targets,
    raw_targets,
    text_statistic,
)
from kerasflow.features.tabular import FeatureError, as_model_inputs, frame_to_inputs  # noqa: E402
from kerasflow.models.families import build_model, fit_model_inputs  # noqa: E402
from kerasflow.models.spec import ModelSpec  # noqa: E402
from kerasflow.schemas.config import ConfigError, OptimizerConfig, PipelineConfig, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = {"encoder": "conv1d", "filters": 8, "kernel_size": 3, "embedding": {"dim": 8},
        "vectorize": {"max_tokens": 400, "sequence_length": 30}}
OUTPUTS = [{"name": "score", "target": "score", "task": "classification"},
           {"name": "length", "target": "review", "statistic": "log_words", "loss_weight": 0.5}]


def _split_reviews(frame: pd.DataFrame) -> pd.DataFrame:
    """Two text columns and a number from each review: its first sentence, the rest, its `!` count."""
    parts = frame["review"].str.extract(r"^\s*([^.!?]*[.!?]*)(.*)$")
    return pd.DataFrame({"product": frame["product"], "summary": parts[0].str.strip(),
                         "review": parts[1].str.strip(), "exclamations": frame["review"].str.count("!"),
                         "score": frame["score"]})


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return _split_reviews(pd.read_csv(ROOT / "data/fine_foods/train.csv").head(300))


def _model_config(**model) -> dict:
    return {"kind": "functional", "text": TEXT, "hidden_units": [8], **model,
            "inputs": model.get("inputs", [{"type": "text", "name": "summary", "column": "summary"},
                                           {"type": "text", "name": "review", "column": "review"},
                                           {"type": "tabular", "columns": ["exclamations", "product"]}])}


def _build(model: dict, train: pd.DataFrame):
    config = PipelineConfig.model_validate({"name": "f", "data": {"source": "x.csv", "target": "score"},
                                            "model": model})
    fitted = fit_model_inputs(config, train)
    spec = ModelSpec(model=config.model, optimizer=OptimizerConfig(), features=fitted.features,
                     labels=fitted.labels)
    return build_model(None, spec), fitted


def test_shared_encoder_applies_the_same_weights_to_both_texts(reviews: pd.DataFrame) -> None:
    model, fitted = _build(_model_config(shared_encoder=True, outputs=OUTPUTS), reviews)
    assert sorted(i.name for i in model.inputs) == ["cat_product", "numeric", "text_review", "text_summary"]
    embedding = model.get_layer("embedding_shared")
    assert len(embedding._inbound_nodes) == 2, "one embedding layer called on both text inputs"
    assert not any(layer.name.startswith("embedding_summary") for layer in model.layers)
    assert fitted.features.text[0]["vocabulary"] == fitted.features.text[1]["vocabulary"]
    conv = model.get_layer("shared_conv1d_0")
    assert conv.count_params() == 8 * 3 * 8 + 8

    separate, _ = _build(_model_config(shared_encoder=False, outputs=OUTPUTS), reviews)
    assert {"embedding_summary", "embedding_review"} <= {layer.name for layer in separate.layers}
    assert separate.count_params() > model.count_params()


def test_heads_have_their_own_losses_weights_and_targets(reviews: pd.DataFrame) -> None:
    model, fitted = _build(_model_config(outputs=OUTPUTS), reviews)
    labels = fitted.labels
    assert isinstance(labels, OutputsSpec) and labels.names == ["score", "length"]
    compiled = model.get_compile_config()
    assert compiled["loss"] == {"score": "binary_crossentropy", "length": "mse"}
    assert compiled["loss_weights"] == {"score": 1.0, "length": 0.5}
    targets = raw_targets(reviews, labels)
    words = reviews["review"].str.replace(r"<[^>]*>", " ", regex=True).str.split().str.len()
    np.testing.assert_allclose(targets["length"], np.log1p(words))
    head = labels.heads[1]
    assert head.offset == pytest.approx(targets["length"].mean()) and head.scale == pytest.approx(targets["length"].std(ddof=0))
    encoded = encode_targets(targets, labels)
    assert set(encoded) == {"score", "length"} and encoded["score"].dtype == np.float32
    decoded = decode_outputs(model.predict(as_model_inputs(frame_to_inputs(reviews.head(3), fitted.features)),
                                           verbose=0), labels)
    assert list(decoded.columns) == ["score.prediction", "score.proba_great", "score.proba_other",
                                     "length.prediction"]


def test_outputs_spec_round_trips_through_label_spec_load(reviews: pd.DataFrame, tmp_path: Path) -> None:
    _, fitted = _build(_model_config(outputs=OUTPUTS), reviews)
    loaded = LabelSpec.load(fitted.labels.save(tmp_path / "labels.json"))
    assert loaded == fitted.labels
    single = _build(_model_config(), reviews)[1].labels
    assert isinstance(single, LabelSpec) and single.column == "score"


def test_text_statistics_ignore_html() -> None:
    texts = pd.Series(["one two<br />three", None, "a"])
    assert text_statistic(texts, "words").tolist() == [3.0, 0.0, 1.0]
    assert text_statistic(texts, "chars").tolist() == [13.0, 0.0, 1.0]


def test_segments_cut_one_column_into_two_branches(reviews: pd.DataFrame) -> None:
    frame = pd.read_csv(ROOT / "data/fine_foods/train.csv").head(200)
    inputs = [{"type": "text", "name": "opening", "column": "review", "segment": "first_sentence"},
              {"type": "text", "name": "body", "column": "review", "segment": "rest"}]
    model, fitted = _build(_model_config(inputs=inputs, shared_encoder=True), frame)
    assert [i.name for i in model.inputs] == ["text_review"]
    opening = model.get_layer("segment_opening")
    out = opening(np.array([["Great snack. Kids love it!"]], dtype=object))
    assert np.asarray(out).ravel()[0].decode() == "Great snack."
    assert model.get_layer("segment_body").part == "rest"


def test_leaks_and_bad_configs_are_named(reviews: pd.DataFrame, tmp_path: Path) -> None:
    leak = _model_config(inputs=[{"type": "tabular", "columns": ["exclamations", "score"]}])
    with pytest.raises(FeatureError, match="'score'"):
        _build(leak, reviews)
    raw = {"name": "f", "data": {"source": "x.csv", "target": "score"},
           "model": _model_config(shared_encoder=True, outputs=[*OUTPUTS, {"name": "score", "target": "x"}],
                                  inputs=[{"type": "text", "name": "a", "column": "review"},
                                          {"type": "tabular", "columns": ["a"]}, {"type": "tabular", "columns": ["b"]},
                                          {"type": "image", "name": "c"}])}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")
    assert "model.inputs.3: Input tag 'image'" in str(err.value) and "'text', 'tabular'" in str(err.value)
    raw["model"]["inputs"].pop()
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")
    text = str(err.value)
    assert "model.outputs.2.name: duplicate name 'score'" in text
    assert "model.inputs.2: at most one tabular input" in text
    assert "model.shared_encoder: sharing needs at least two text inputs" in text


def test_functional_flow_logs_per_output_metrics_and_serves_raw_columns(prefect_harness, mlflow_store: str,
                                                                       tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    _split_reviews(pd.read_csv(ROOT / "data/fine_foods/train.csv").head(400)).to_csv(tmp_path / "train.csv",
                                                                                     index=False)
    config = {
        "name": "fine_foods_two_texts",
        "data": {"source": str(tmp_path / "train.csv"), "target": "score"},
        "split": {"test_fraction": 0.2, "val_fraction": 0.15},
        "model": _model_config(shared_encoder=True, outputs=OUTPUTS),
        "training": {"epochs": 2, "batch_size": 32},
        "registry": {"model_name": "fine-foods-two-texts", "thresholds": {"score.accuracy": 0.1}},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    result = train_flow(str(tmp_path / "c.yaml"))

    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    metrics = run.data.metrics
    assert {"test/loss", "test/score.accuracy", "test/score.roc_auc", "test/length.mae", "test/length.r2",
            "test/score.class.great.recall", "train/score_accuracy", "train/length_loss"} <= set(metrics)
    assert result.blessed, result.reasons
    files = {a.path for folder in ("evaluation/score", "evaluation/length") for a in client.list_artifacts(
        run.info.run_id, folder)}
    assert {"evaluation/score/confusion_matrix.png", "evaluation/length/residuals.png"} <= files
    assert run.data.params["preprocessing.length.loss_weight"] == "0.5"

    model = mlflow.pyfunc.load_model(result.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["exclamations", "product", "summary", "review"]
    rows = _split_reviews(pd.read_csv(ROOT / "data/fine_foods/test.csv").head(5)).drop(columns="score")
    served = model.predict(rows)
    assert list(served.columns) == ["score.prediction", "score.proba_great", "score.proba_other",
                                    "length.prediction"]
    assert served["length.prediction"].between(0, 10).all() and served.index.equals(rows.index)


def test_slices_of_a_two_head_text_model_score_every_head(reviews: pd.DataFrame) -> None:
    from kerasflow.schemas.evaluation import EvaluationConfig
    from kerasflow.training.evaluate import Evaluation, head_metrics, score_heads
    from kerasflow.training.rows import make_partition, score_subset
    from kerasflow.training.slices import evaluate_slices

    model, fitted = _build(_model_config(outputs=OUTPUTS), reviews)
    test = make_partition(reviews, list(range(len(reviews))), fitted.features, fitted.labels)
    whole = Evaluation(metrics=head_metrics(score_heads(model, test.x, test.raw_y, fitted.labels, test.y,
                                                        reports=False)[0]))
    # by value: the product line (the id's first 4 characters: 10 lines of 2 to 97 rows), not the product id,
    # whose 300 one-row slices each cost a predict and an evaluate (85 s) and are all below min_slice_rows
    rows = reviews.assign(line=reviews["product"].str[:4])
    section = EvaluationConfig(slices=[{"column": "exclamations", "bins": 2}, "line"], min_slice_rows=20)
    sliced = evaluate_slices(whole, section, rows, rows, lambda mask: score_subset(model, test, fitted.labels, mask))
    bins = [r for r in sliced.slices if r["column"] == "exclamations"]
    assert sum(r["rows"] for r in bins) == len(reviews)
    assert {"loss", "score.accuracy", "length.mae"} <= set(bins[0])
    gated = [r for r in sliced.slices if r["gated"]]
    lines = [r for r in sliced.slices if r["column"] == "line"]
    assert sum(r["rows"] for r in lines) == len(reviews) and {"score.accuracy", "length.mae"} <= set(lines[0])
    assert {r["gated"] for r in lines} == {True, False}, "product lines above and below min_slice_rows"
    assert gated and sliced.metrics["slice_min.score.accuracy"] == min(r["score.accuracy"] for r in gated)
    assert sliced.metrics["slice_max.length.mae"] == max(r["length.mae"] for r in gated)
    assert sliced.worst["length.mae"].endswith(")") and "slice_min.length.mae" not in sliced.metrics
