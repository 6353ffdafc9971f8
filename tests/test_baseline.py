"""The scikit-learn baseline of every run: fitted on the network's training rows, scored on its test rows, logged,
printed beside the network's result, and the `beats_baseline` rule of the `candidate` alias."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml

from kerasflow.data.split import Split
from kerasflow.flows.results import TrainResult
from kerasflow.models.families import family_of, fit_model_inputs
from kerasflow.promotion.gate import check_registration
from kerasflow.runtime.printing import print_train
from kerasflow.schemas.config import PipelineConfig, load_config
from kerasflow.schemas.gate import BeatsBaseline
from kerasflow.schemas.loading import ConfigError
from kerasflow.training.baseline import Baseline
from kerasflow.training.kinds import kind_of

ROOT = Path(__file__).resolve().parents[1]
FINE_FOODS = ROOT / "data/fine_foods"


class Quiet:
    """A `StepLog` that drops what a kind logs (these tests read the kind's outputs)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def prepared(config: PipelineConfig, folder: Path) -> tuple[str, str, str]:
    """Loads, splits and fits the labels of a config the way the data steps do: `(raw, split, labels)` paths."""
    kind = kind_of(config.data)
    raw = kind.load(config, str(folder), Quiet())
    split = kind.split(config, raw, str(folder), Quiet())
    if family_of(config.model).fit_inputs is not None:
        labels = fit_model_inputs(config, pd.read_parquet(raw).iloc[Split.load(split).train]).labels
    else:
        labels = kind.fit_features(config, raw, split).labels
    return raw, split, str(labels.save(folder / "labels.json"))


def baseline_of(config: PipelineConfig, folder: Path) -> Baseline:
    return kind_of(config.data).baseline(config, *prepared(config, folder))


def config_of(**sections: Any) -> PipelineConfig:
    return PipelineConfig.model_validate({"name": "baseline", **sections})


def fine_foods_subset(folder: Path, train: int = 400, test: int = 150) -> tuple[Path, Path]:
    """The first rows of the bundled fine-food reviews, as a small train and test file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.csv", folder / "test.csv"
    pd.read_csv(FINE_FOODS / "train.csv").head(train).to_csv(paths[0], index=False)
    pd.read_csv(FINE_FOODS / "test.csv").head(test).to_csv(paths[1], index=False)
    return paths


def test_a_table_gets_boosting_scored_on_the_test_rows_with_the_network_metrics(tmp_path: Path) -> None:
    config = config_of(data={"source": "breast_cancer", "target": "target"},
                       split={"test_fraction": 0.2, "val_fraction": 0.15, "seed": 42})
    baseline = baseline_of(config, tmp_path)
    split = Split.load(tmp_path / "split.json")
    assert baseline.model == "HistGradientBoostingClassifier" and baseline.name == "HistGradientBoosting"
    assert (baseline.train_rows, baseline.test_rows) == (len(split.train), len(split.test))
    assert {"accuracy", "f1_macro", "f1_weighted", "roc_auc", "recall_min"} <= set(baseline.metrics)
    assert "loss" not in baseline.metrics and baseline.metrics["accuracy"] > 0.9
    assert baseline.seconds < 10


def test_regression_and_kfold_use_every_non_test_row(tmp_path: Path) -> None:
    config = config_of(data={"source": "diabetes", "target": "target"}, split={"kind": "kfold", "folds": 3})
    baseline = baseline_of(config, tmp_path)
    split = Split.load(tmp_path / "split.json")
    assert baseline.model == "HistGradientBoostingRegressor"
    assert set(baseline.metrics) == {"mae", "rmse", "r2"}
    assert baseline.train_rows == len(split.train) == sum(len(v) for _, v in split.folds)
    assert baseline.test_rows == len(split.test)


def test_categorical_columns_with_missing_values_are_categories(tmp_path: Path) -> None:
    config = config_of(data={"source": "penguins", "target": "species"})
    baseline = baseline_of(config, tmp_path)
    assert baseline.model == "HistGradientBoostingClassifier" and baseline.metrics["accuracy"] > 0.9


def test_a_text_table_gets_tfidf_and_a_linear_model(tmp_path: Path) -> None:
    train, test = fine_foods_subset(tmp_path / "data")
    config = config_of(data={"source": str(train), "test_source": str(test), "target": "score"},
                       model={"kind": "text", "column": "review", "encoder": "bag",
                              "vectorize": {"output_mode": "tf_idf"}})
    baseline = baseline_of(config, tmp_path)
    assert (baseline.model, baseline.name) == ("LogisticRegression", "TF-IDF + LogisticRegression")
    assert baseline.test_rows == 150 and baseline.metrics["accuracy"] > 0.6


def test_images_have_no_baseline(tmp_path: Path) -> None:
    from image_data import write_digit_folder

    folder = write_digit_folder(tmp_path / "digits", classes=(0, 1), per_class=6)
    config = config_of(data={"source": str(folder), "target": "label", "image": {"size": [16, 16], "channels": 1}},
                       split={"test_fraction": 0.25, "val_fraction": 0.25, "stratify": True})
    baseline = kind_of(config.data).baseline(config, "unused", "unused", "unused")
    assert not baseline.model and "image" in baseline.reason


def test_a_streamed_table_has_no_baseline() -> None:
    config = config_of(data={"source": "shards/*.parquet", "target": "y", "streaming": True})
    baseline = kind_of(config.data).baseline(config, "unused", "unused", "unused")
    assert not baseline.model and "stream" in baseline.reason


def test_beats_baseline_is_a_flag_or_a_margin(tmp_path: Path) -> None:
    data = {"source": "iris", "target": "target"}
    assert config_of(data=data).registry.beats_baseline is None
    assert config_of(data=data, registry={"beats_baseline": True}).registry.beats_baseline == BeatsBaseline()
    assert config_of(data=data, registry={"beats_baseline": False}).registry.beats_baseline is None
    rule = config_of(data=data, registry={"beats_baseline": {"margin": 0.005, "metric": "f1_macro"}})
    assert rule.registry.beats_baseline == BeatsBaseline(metric="f1_macro", margin=0.005)
    assert config_of(data=data).evaluation.baseline is True
    for case, where in (({"registry": {"beats_baseline": True}, "evaluation": {"baseline": False}},
                         "registry.beats_baseline: the rule compares the network with the baseline"),
                        ({"registry": {"beats_baseline": {"margin": -1}}}, "registry.beats_baseline.margin")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "t", "data": data, **case}))
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "bad.yaml")
        assert any(problem.startswith(where) for problem in err.value.problems), err.value.problems


BOOSTING = Baseline(model="HistGradientBoostingClassifier", name="HistGradientBoosting",
                    metrics={"accuracy": 0.876, "f1_macro": 0.8})


def test_the_rule_refuses_a_network_that_loses_by_more_than_the_margin() -> None:
    weak = check_registration({"accuracy": 0.86}, {"accuracy": 0.8}, BeatsBaseline(margin=0.005), BOOSTING)
    assert not weak.passed and len(weak.reasons) == 2
    assert weak.violations == ["beats_baseline accuracy: expected >= 0.8710 (HistGradientBoosting 0.8760, "
                               "margin 0.005), observed 0.8600 -> FAIL"]
    assert check_registration({"accuracy": 0.872}, {}, BeatsBaseline(margin=0.005), BOOSTING).passed
    assert not check_registration({"accuracy": 0.872}, {}, BeatsBaseline(), BOOSTING).passed


def test_lower_is_better_metrics_and_a_missing_baseline() -> None:
    boosting = Baseline(model="HistGradientBoostingRegressor", name="HistGradientBoosting", metrics={"mae": 2.14})
    assert check_registration({"mae": 2.1}, {}, BeatsBaseline(), boosting).passed
    worse = check_registration({"mae": 2.7}, {}, BeatsBaseline(margin=0.1), boosting)
    assert worse.violations and "expected <= 2.2400" in worse.violations[0]
    none = check_registration({"accuracy": 0.9}, {}, BeatsBaseline(), Baseline(reason="image data have no baseline"))
    assert not none.passed and "image data have no baseline" in none.violations[0]
    plain = check_registration({"accuracy": 0.9}, {"accuracy": 0.8})
    assert plain.passed and plain.reasons == ["accuracy: expected >= 0.8, observed 0.9000 -> pass"]


def test_the_printed_result_shows_the_baseline_beside_the_network(capsys: pytest.CaptureFixture[str]) -> None:
    config = config_of(data={"source": "iris", "target": "target"}, registry={"tracking_uri": "sqlite:///x.db"})
    result = TrainResult(run_id="r", experiment_id="1", metrics={"loss": 0.3, "accuracy": 0.871}, model_uri="m",
                         mlflow_url="http://ui/r", baseline="HistGradientBoosting",
                         baseline_metrics={"accuracy": 0.876})
    print_train(result, config)
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == ["accuracy", "0.8710", "(HistGradientBoosting", "0.8760", "on", "the", "same",
                                "rows)"] for line in lines)
    assert any(line.split() == ["loss", "0.3000"] for line in lines)
    sampled = TrainResult(run_id="r", experiment_id="1", metrics={"accuracy": 0.871}, model_uri="m",
                          mlflow_url="http://ui/r", baseline="HistGradientBoosting", baseline_metrics={"accuracy": 0.876},
                          baseline_rows=200_000, baseline_sampled_from=800_000)
    print_train(sampled, config)
    assert "accuracy       0.8710  (HistGradientBoosting 0.8760 on the same test rows, fitted on 200,000 of " \
           "800,000 training rows)\n" in capsys.readouterr().out


# --- the training flow (integration: Prefect's test harness) ----------------------------------------------


def breast_cancer_config(tmp_path: Path, name: str, **changes: Any) -> str:
    """The bundled breast_cancer config, made small: 1 epoch of a tiny learning rate, its own registered name."""
    config = yaml.safe_load((ROOT / "configs/breast_cancer.yaml").read_text())
    config["name"] = name
    config["training"].update(epochs=1, optimizer={"name": "adam", "learning_rate": 1e-5})
    config["registry"] = {"model_name": name, "thresholds": {"accuracy": 0.5}}
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_weak_network_is_refused_by_beats_baseline(prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    path = breast_cancer_config(tmp_path, "baseline-weak", registry={"beats_baseline": {"margin": 0.005}},
                                evaluation={"baseline_rows": 200})  # below the training rows: a sample
    result = train_flow(path)
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    train_rows = int(run.data.params["split.train_rows"])
    assert run.data.params["baseline.model"] == "HistGradientBoostingClassifier"
    assert (run.data.params["baseline.rows"], run.data.params["baseline.sampled_from"]) == ("200", str(train_rows))
    assert (result.baseline_rows, result.baseline_sampled_from) == (200, train_rows)
    assert run.data.metrics["baseline/accuracy"] == pytest.approx(result.baseline_metrics["accuracy"])
    assert {"baseline/f1_macro", "baseline/roc_auc", "test/accuracy"} <= set(run.data.metrics)
    assert result.baseline == "HistGradientBoosting" and result.version and not result.blessed
    rule = [r for r in result.reasons if r.startswith("beats_baseline accuracy: expected >= ")]
    assert len(rule) == 1 and rule[0].endswith("-> FAIL") and "margin 0.005" in rule[0]
    with contextlib.redirect_stdout(io.StringIO()) as out:  # not capsys: the harness's logging outlives a test
        print_train(result, load_config(path))
    shown = out.getvalue()
    assert f"accuracy       {result.metrics['accuracy']:.4f}  (HistGradientBoosting " \
           f"{result.baseline_metrics['accuracy']:.4f} on the same test rows, fitted on 200 of {train_rows} " \
           "training rows)" in shown
    assert "gate: beats_baseline accuracy" in shown
    aliases = mlflow.MlflowClient(mlflow_store).get_registered_model("baseline-weak").aliases
    assert "candidate" not in aliases


def test_evaluation_baseline_false_fits_none(prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    result = train_flow(breast_cancer_config(tmp_path, "baseline-off", evaluation={"baseline": False}))
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert not [m for m in run.data.metrics if m.startswith("baseline/")]
    assert "baseline.model" not in run.data.params
    assert result.baseline is None and result.baseline_metrics == {}
    assert result.reasons and not [r for r in result.reasons if r.startswith("beats_baseline")]


def test_a_text_run_logs_the_tfidf_baseline(prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    train, test = fine_foods_subset(tmp_path / "data")
    config = yaml.safe_load((ROOT / "configs/fine_foods_bow.yaml").read_text())
    config.update(name="baseline-text", data={**config["data"], "source": str(train), "test_source": str(test)},
                  registry={"model_name": "baseline-text"})
    config["training"]["epochs"] = 2
    config["model"]["vectorize"]["max_tokens"] = 2000
    path = tmp_path / "text.yaml"
    path.write_text(yaml.safe_dump(config))
    result = train_flow(str(path))
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.params["baseline.model"] == "LogisticRegression"
    assert result.baseline == "TF-IDF + LogisticRegression" and "baseline/accuracy" in run.data.metrics


def test_a_large_training_set_is_sampled_with_the_seed_keeping_class_shares() -> None:
    import numpy as np

    from kerasflow.features.labels import fit_labels
    from kerasflow.training.baseline import sample_positions

    size, rows = 1_000, 1_200
    frame = pd.DataFrame({"x": range(rows), "y": ["rare" if i % 10 == 0 else "common" for i in range(rows)]})
    labels = fit_labels(frame["y"], "classification")
    first, again = (sample_positions(rows, frame["y"], labels, seed=7, size=size) for _ in range(2))
    assert len(first) == size == len(np.unique(first)) and np.array_equal(first, again)  # seeded: the same rows
    assert (frame["y"].iloc[first] == "rare").mean() == pytest.approx(0.1, abs=1e-3)
    assert not np.array_equal(np.sort(sample_positions(rows, frame["y"], labels, seed=8, size=size)), np.sort(first))


def test_the_sample_is_drawn_from_positions_without_copying_every_training_row() -> None:
    import numpy as np
    from sklearn.model_selection import train_test_split

    from kerasflow.features.labels import fit_labels
    from kerasflow.training.baseline import sample_positions

    size, rows = 1_000, 1_300
    frame = pd.DataFrame({"x": range(rows), "y": [("a", "b", "c")[i % 3] for i in range(rows)]})
    train = np.sort(np.random.default_rng(0).choice(rows, size + 200, replace=False))
    labels = fit_labels(frame["y"], "classification")
    chosen = train[sample_positions(len(train), frame["y"].iloc[train], labels, seed=5, size=size)]
    rows_of_train = frame.iloc[train]  # what scikit-learn draws from the training frame itself, stratified
    drawn, _ = train_test_split(rows_of_train, train_size=size, random_state=5, stratify=rows_of_train["y"])
    assert frame.iloc[chosen].equals(drawn)


def test_baseline_rows_caps_the_training_rows_with_a_seeded_sample(tmp_path: Path) -> None:
    data, split = {"source": "breast_cancer", "target": "target"}, {"test_fraction": 0.2, "seed": 42}
    assert config_of(data=data).evaluation.baseline_rows == 100_000
    for name in ("capped", "whole"):
        (tmp_path / name).mkdir()
    capped = baseline_of(config_of(data=data, split=split, evaluation={"baseline_rows": 150}), tmp_path / "capped")
    train, test = (len(rows) for rows in (Split.load(tmp_path / "capped/split.json").train,
                                          Split.load(tmp_path / "capped/split.json").test))
    assert (capped.train_rows, capped.sampled_from, capped.test_rows) == (150, train, test)
    assert capped.metrics["accuracy"] > 0.85
    whole = baseline_of(config_of(data=data, split=split, evaluation={"baseline_rows": None}), tmp_path / "whole")
    assert (whole.train_rows, whole.sampled_from) == (train, 0)
    for rows, where in ((99, "evaluation.baseline_rows"), (0, "evaluation.baseline_rows")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "t", "data": data,
                                                           "evaluation": {"baseline_rows": rows}}))
        with pytest.raises(ConfigError) as err:
            load_config(tmp_path / "bad.yaml")
        assert any(problem.startswith(where) for problem in err.value.problems), err.value.problems
