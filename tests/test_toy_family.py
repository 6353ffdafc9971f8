"""A model family defined in this test module alone trains, evaluates, registers and serves end to end.

The proof that a family describes itself: `ToyModelConfig` (its config
section) and `build_toy` (its builder) are registered through the public
functions `kerasflow.schemas.families.register_family_config` and
`kerasflow.models.families.register_family`, and nothing else in the
project knows the kind `toy`. Every other hook keeps its default: a plain
tabular family (the table's columns, one encoded input, one label).
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.load import load_frame
from kerasflow.features.inputs import build_input_layers
from kerasflow.flows.results import TrainResult
from kerasflow.models.families import family, register_family
from kerasflow.models.hyper import build_optimizer, choose
from kerasflow.schemas.base import PositiveInt, Section
from kerasflow.schemas.families import register_family_config

ROOT = Path(__file__).resolve().parents[1]
NAME = "breast_cancer-toy"


class ToyModelConfig(Section):
    """One hidden layer of `units` ReLU units.

    Args:
        kind: `toy`.
        units: Width of the hidden layer. Default 8.
    """

    kind: Literal["toy"]
    units: PositiveInt = 8


def build_toy(hp: Any, spec: Any) -> Any:
    """Builds and compiles the toy network on the tabular inputs."""
    import keras

    inputs, x = build_input_layers(spec.features)
    x = keras.layers.Dense(choose(hp, spec, "model.units", spec.model.units), activation="relu", name="hidden")(x)
    units, activation, loss = spec.labels.output()
    outputs = keras.layers.Dense(units, activation=activation, name="output")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="kerasflow")
    model.compile(optimizer=build_optimizer(hp, spec), loss=loss, metrics=spec.labels.metrics())
    return model


register_family_config(ToyModelConfig, tunables={"model.units": (("int", "choice"), PositiveInt)})
register_family("toy", build=build_toy, default_values=lambda model: {"model.units": model.units})


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "breast_cancer_toy.yaml"
    path.write_text(yaml.safe_dump({
        "name": "breast_cancer_toy",
        "data": {"source": "breast_cancer", "target": "target"},
        "validation": {"suite": "schemas/suites/breast_cancer.json"},
        "split": {"test_fraction": 0.2, "val_fraction": 0.15, "seed": 42},
        "model": {"kind": "toy", "units": 16},
        "training": {"epochs": 8, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.003},
                     "early_stopping": {"patience": 3}},
        "registry": {"model_name": NAME},
    }))
    return path


@pytest.fixture(scope="module")
def toy_run(prefect_harness, mlflow_store: str, config_file: Path) -> TrainResult:
    from kerasflow.flows.train import train_flow
    from kerasflow.tracking.registry import promote

    result = train_flow(str(config_file))
    promote(mlflow.MlflowClient(mlflow_store, mlflow_store), NAME, result.version)
    return result


def test_the_config_parses_with_the_toy_section(config_file: Path) -> None:
    from kerasflow.schemas.config import ConfigError, load_config

    config = load_config(config_file)
    assert isinstance(config.model, ToyModelConfig) and config.model.units == 16
    assert family(config.model.kind).tabular  # every hook but build keeps its tabular default
    with pytest.raises(ConfigError, match=r"model\.unit: unknown key \(allowed: kind, units\)"):
        load_config(config_file, ["model.unit=3"])
    with pytest.raises(ConfigError, match=r"model\.units: Input should be greater than 0"):
        load_config(config_file, ["model.units=0"])


def test_the_toy_family_trains_evaluates_and_registers(toy_run: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    run = client.get_run(toy_run.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.kind"] == "toy" and run.data.params["model.units"] == "16"
    assert run.data.metrics["test/accuracy"] == pytest.approx(toy_run.metrics["accuracy"])
    assert toy_run.metrics["accuracy"] > 0.8
    assert client.get_model_version(NAME, toy_run.version).run_id == toy_run.run_id


def test_the_served_toy_model_predicts_in_this_and_a_fresh_process(toy_run: TrainResult, mlflow_store: str,
                                                                   tmp_path: Path) -> None:
    rows = load_frame("breast_cancer").drop(columns="target").sample(10, random_state=0)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    served = model.predict(rows)
    probas = [c for c in served.columns if c.startswith("proba_")]
    assert list(served.columns) == ["prediction", *probas] and len(probas) == 2
    np.testing.assert_allclose(served[probas].sum(axis=1), 1.0, rtol=1e-5)
    assert set(served["prediction"]) <= {c.removeprefix("proba_") for c in probas}
    # A fresh process that never imports this module loads and scores the model: the family lives
    # in the code that builds a model, not in the model that is served.
    batch = tmp_path / "rows.csv"
    rows.to_csv(batch, index=False)
    script = ("import sys, mlflow, pandas as pd; "
              f"served = mlflow.pyfunc.load_model('models:/{NAME}@champion').predict(pd.read_csv(sys.argv[1])); "
              "print(served.to_json(orient='split'))")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    done = subprocess.run([sys.executable, "-c", script, str(batch)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = pd.read_json(StringIO(done.stdout.strip().splitlines()[-1]), orient="split")
    assert list(fresh.columns) == list(served.columns)
    np.testing.assert_allclose(fresh[probas].to_numpy(), served[probas].to_numpy(), rtol=1e-5)
