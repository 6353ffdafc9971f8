"""A command reads its config file once and its data once, even when the data choose the config's defaults.

Registration reads no rows: the drift reference it logs was computed by the preprocessing step.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml

from kerasflow.data import load as data_load
from kerasflow.data.load import load_frame
from kerasflow.schemas import config as config_schema
from kerasflow.schemas.config import load_config


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the reads of every data file (`kerasflow.data.load._read_file`) and config file (`read_raw_config`)."""
    counts: Counter = Counter()
    read_file, read_raw = data_load._read_file, config_schema.read_raw_config

    def counting_read_file(path: Path, reader: Any) -> Any:
        counts[Path(path).resolve()] += 1
        return read_file(path, reader)

    def counting_read_raw(path: str | Path) -> dict[str, Any]:
        counts[Path(path).resolve()] += 1
        return read_raw(path)

    monkeypatch.setattr(data_load, "_read_file", counting_read_file)
    monkeypatch.setattr(config_schema, "read_raw_config", counting_read_raw)
    return counts


def _only_data(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A CSV copy of iris and a config that holds only `name` and `data`: split, training and model are chosen."""
    csv = tmp_path / "iris.csv"
    load_frame("iris").to_csv(csv, index=False)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "data": {"source": str(csv), "target": "target"}}))
    return path, csv.resolve()


def _params(run_id: str) -> dict[str, str]:
    return mlflow.MlflowClient().get_run(run_id).data.params


def test_a_run_given_the_validated_config_reads_the_file_and_the_data_once(
        prefect_harness, mlflow_store: str, tmp_path: Path, reads: Counter) -> None:
    from kerasflow.flows.train import train_flow

    path, csv = _only_data(tmp_path, "iris_read_once")
    overrides = ["training.epochs=3"]  # only to keep the test short: split and model stay chosen from the data
    config = load_config(path, overrides)  # as the CLI's preflight validates it
    result = train_flow(str(path), overrides, config=config)
    assert reads[path.resolve()] == 1, "the flow takes the CLI's config: the YAML is not read again"
    assert reads[csv] == 1, "the defaults are chosen from the rows the load step checks: one read of the data"
    params = _params(result.run_id)
    assert params["split.kind"] == "kfold" and params["model.kind"] == "dense", "the run logs the chosen defaults"
    assert params["model.hidden_units"] == "[256, 256]" and params["training.epochs"] == "3"


def test_a_run_from_the_path_alone_reads_the_file_and_the_data_once(
        prefect_harness, mlflow_store: str, tmp_path: Path, reads: Counter) -> None:
    from kerasflow.flows.validate import validate_flow

    path, csv = _only_data(tmp_path, "iris_read_once_path")
    result = validate_flow(str(path))  # as a deployment runs it: a path only
    assert result.passed
    assert reads[path.resolve()] == 1 and reads[csv] == 1
    params = _params(result.run_id)
    assert (params["split.kind"], params["training.batch_size"]) == ("kfold", "32"), "logged defaulted, as before"


def test_a_config_that_sets_every_section_is_read_by_the_load_step_alone(
        prefect_harness, mlflow_store: str, tmp_path: Path, reads: Counter) -> None:
    from kerasflow.flows.validate import validate_flow

    path, csv = _only_data(tmp_path, "iris_read_once_full")
    overrides = ["split.kind=holdout", "training.epochs=3", "model.hidden_units=[4]"]
    result = validate_flow(str(path), overrides, config=load_config(path, overrides))
    assert reads[path.resolve()] == 1 and reads[csv] == 1
    assert _params(result.run_id)["model.hidden_units"] == "[4]"


def test_registration_reads_no_rows_its_drift_reference_comes_from_the_preprocessing(
        prefect_harness, mlflow_store: str, tmp_path: Path) -> None:
    from prefect import flow

    from kerasflow.data.drift import reference_stats
    from kerasflow.data.split import Split
    from kerasflow.flows.final import fit_final_model
    from kerasflow.flows.prepare import prepare_data
    from kerasflow.tasks.evaluate import evaluate_model
    from kerasflow.tasks.register import register_model
    from kerasflow.tasks.runs import open_pipeline_run
    from kerasflow.tracking.artifacts import REFERENCE_STATS, load_run_json

    path, csv = _only_data(tmp_path, "iris_register_no_rows")
    config = load_config(path, ["split.kind=holdout", "training.epochs=2", "model.hidden_units=[4]",
                                "registry.drift.bins=4"])
    gone = tmp_path / "gone"
    gone.mkdir()

    @flow(name="register-without-rows")
    def register_without_rows() -> tuple[str, dict[str, Any], pd.DataFrame]:
        with open_pipeline_run(config, "train") as run:
            prepared = prepare_data(run, config)
            model = fit_final_model(run, config, prepared, search=False)
            evaluate_model(run.tracker, config, prepared, model)
            raw = Path(prepared.raw).rename(gone / "raw.parquet")  # the rows are gone once evaluated: the
            csv.rename(gone / csv.name)  # registration must not read them, nor the source
            registered = register_model(run.tracker, config, prepared, model)
            return run.id, registered, pd.read_parquet(raw).iloc[Split.load(prepared.split).train]

    run_id, registered, train = register_without_rows()
    assert registered["version"] is not None, "the version is registered without the rows"
    stats = load_run_json(mlflow.MlflowClient(), run_id, REFERENCE_STATS)
    features = [c for c in train.columns if c != "target"]
    assert stats == json.loads(json.dumps({**reference_stats(train, features, [], [], bins=4, seed=config.split.seed),
                                           "target": "target"})), "the training rows' statistics, as before"
