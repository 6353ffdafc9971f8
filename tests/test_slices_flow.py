"""Sliced evaluation through the training flow: the table artifact, the summary metric, the worst-slice tag, a gate."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from kerasflow.data.load import load_frame
from kerasflow.flows.results import TrainResult

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, name: str, threshold: float, **promotion: float) -> str:
    config = yaml.safe_load((ROOT / "configs/penguins.yaml").read_text())
    config["evaluation"] = {"slices": ["sex", "island", {"column": "body_mass_g", "bins": 2}], "min_slice_rows": 20}
    config["registry"] = {"model_name": name, "thresholds": {"slice_min.accuracy": threshold}}
    config["promotion"] = promotion
    config["training"].update(epochs=8, early_stopping={"monitor": "val_loss", "patience": 3})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def sliced_run(prefect_harness, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One training of penguins (8 epochs) with slices, whose slice threshold is above any accuracy."""
    from kerasflow.flows.train import train_flow

    return train_flow(_config(tmp_path_factory.mktemp("sliced"), "penguins-sliced", 1.01))


def test_penguins_sliced_by_sex_island_and_mass(sliced_run: TrainResult, mlflow_store: str) -> None:
    from prefect.artifacts import Artifact

    # above any accuracy: the slice threshold must fail, and its line name the worst slice
    result = sliced_run

    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    table = pd.read_json(client.download_artifacts(result.run_id, "evaluation/slices.json"), orient="split")
    assert {"slice", "column", "value", "rows", "gated", "accuracy", "f1_macro", "loss"} <= set(table.columns)
    assert set(table["column"]) == {"sex", "island", "body_mass_g"}
    for column in ("sex", "island", "body_mass_g"):
        assert table.loc[table["column"] == column, "rows"].sum() == int(run.data.params["split.test_rows"])
    gated = table[table["gated"]]
    assert (table.loc[~table["gated"], "rows"] < 20).all() and (gated["rows"] >= 20).all()
    worst = gated.loc[gated["accuracy"].idxmin()]
    observed = result.metrics["slice_min.accuracy"]
    assert run.data.metrics["test/slice_min.accuracy"] == pytest.approx(observed) == worst["accuracy"]
    assert run.data.metrics["test/slice_max.loss"] == pytest.approx(gated["loss"].max())
    named = f"{worst['slice']} (n={worst['rows']})"
    assert run.data.tags["kerasflow.worst_slice.accuracy"] == named

    assert not result.blessed
    line = next(r for r in result.reasons if r.startswith("slice_min.accuracy"))
    assert "expected >= 1.01" in line and f"observed {observed:.4f}" in line and named in line
    description = client.get_model_version("penguins-sliced", result.version).description
    assert named in description
    artifact = Artifact.get(key="slices-penguins")
    assert artifact is not None and artifact.type == "table" and "sex=female" in str(artifact.data)


def test_penguins_with_missing_values(sliced_run: TrainResult) -> None:
    """The registered penguins model answers rows with missing values (imputed as at training)."""
    model = mlflow.pyfunc.load_model(sliced_run.model_uri)
    rows = load_frame("penguins").drop(columns="species")
    rows = rows[rows.isna().any(axis=1)].head(5)
    assert len(rows) and model.predict(rows)["prediction"].notna().all()


def test_retrain_refuses_a_challenger_worse_on_a_slice(prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from kerasflow.flows.retrain import retrain_flow

    path = _config(tmp_path, "penguins-slice-gate", 0.0, slice_margin=0.0)
    first = retrain_flow(path)
    assert first.outcome == "first-champion" and any(r.startswith("worst slice of accuracy: ") for r in first.reasons)
    # a challenger that barely trains: worse than the champion on some gated slice, which the margin refuses
    weak = retrain_flow(path, ["training.epochs=1", "training.optimizer.learning_rate=0.00001"], force=True)
    assert weak.outcome == "rejected" and not weak.promoted and weak.champion == first.version
    assert "gated slice check(s) worse than the champion beyond promotion.slice_margin" in weak.reasons[0]
    assert any(f"accuracy where {column} " in weak.reasons[0] for column in ("sex", "island", "body_mass_g"))
    params = mlflow.MlflowClient(mlflow_store).get_run(weak.run_id).data.params
    assert int(params["gate.slice_checks"]) >= 1 and int(params["gate.slice_violations"]) >= 1
