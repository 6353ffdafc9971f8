"""training.distribute: the final fit on a MirroredStrategy, tried on two logical CPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from kerasflow.data.load import load_frame
from kerasflow.schemas.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_mirrored_training_on_two_logical_cpus_serves_raw_rows(mlflow_store: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "KERASFLOW_LOGICAL_CPUS": "2"}
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "run", "configs/penguins.yaml", "--no-lint",
                           "--set", "training.distribute=mirrored", "--set", "training.epochs=4",
                           "--set", "registry.model_name=penguins-mirrored"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = proc.stdout.split("MLflow run:")[1].split()[0]
    run = mlflow.MlflowClient(mlflow_store).get_run(run_id)
    assert run.data.params["train.replicas"] == "2", "one replica per logical CPU"
    assert run.data.params["training.distribute"] == "mirrored"
    rows = load_frame("penguins").drop(columns="species").head(8)
    answer = mlflow.pyfunc.load_model("models:/penguins-mirrored/1").predict(rows)
    assert len(answer) == 8 and set(answer["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}


def test_an_unknown_strategy_is_a_config_error_naming_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training.distribute"):
        load_config(ROOT / "configs/iris.yaml", ["training.distribute=tpu"])
