"""A registered name holds one kind of model: registering other input columns under it is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from kerasflow.errors import BadInputError
from kerasflow.flows.results import TrainResult
from kerasflow.promotion.inputs import (
    IncompatibleInputsError,
    check_same_inputs,
    choose_reference,
    compare_inputs,
)

ROOT = Path(__file__).resolve().parents[1]
NAME = "iris-names"
IRIS = {"sepal_length_cm": "double", "sepal_width_cm": "double", "petal_length_cm": "double",
        "petal_width_cm": "double"}
FAST = ["training.epochs=2", f"registry.model_name={NAME}"]


def test_same_columns_in_another_order_are_compatible() -> None:
    change = compare_inputs(IRIS, dict(reversed(list(IRIS.items()))))
    assert change.compatible and change.lines() == []
    check_same_inputs(NAME, "3", "@champion", IRIS, dict(IRIS))


def test_added_removed_and_retyped_columns_are_each_listed() -> None:
    new = {**{c: t for c, t in IRIS.items() if c != "petal_width_cm"}, "sepal_length_cm": "string", "colour": "string"}
    change = compare_inputs(IRIS, new)
    assert change.added == {"colour": "string"} and change.removed == {"petal_width_cm": "double"}
    assert change.retyped == {"sepal_length_cm": ("double", "string")} and not change.compatible
    with pytest.raises(IncompatibleInputsError) as err:
        check_same_inputs(NAME, "3", "@champion", IRIS, new)
    message = str(err.value)
    assert message.startswith(f"registry.model_name '{NAME}': this model's input columns differ from those of "
                              "its version 3 (@champion):")
    assert "columns this model adds: 'colour' (string)" in message
    assert "columns this model lacks: 'petal_width_cm' (double)" in message
    assert "columns whose type changes: 'sepal_length_cm' double -> string" in message
    assert "nothing was registered" in message and f"--set registry.model_name={NAME}-2" in message
    assert isinstance(err.value, BadInputError)


def test_reference_is_champion_then_candidate_then_newest() -> None:
    assert choose_reference({"champion": "2", "candidate": "5"}, ["1", "2", "5", "10"]) == ("2", "@champion")
    assert choose_reference({"candidate": "5"}, ["1", "2", "5", "10"]) == ("5", "@candidate")
    assert choose_reference({"previous-champion": "1"}, ["1", "2", "10", "9"]) == ("10", "newest")
    assert choose_reference({}, []) is None


@pytest.fixture(scope="module")
def registered(prefect_harness, mlflow_store: str) -> TrainResult:
    from kerasflow.flows.train import train_flow
    from kerasflow.tracking.registry import promote

    first = train_flow(str(ROOT / "configs/iris.yaml"), FAST)
    promote(mlflow.MlflowClient(mlflow_store, mlflow_store), NAME, first.version)
    return first


@pytest.mark.slow
def test_same_columns_register_a_new_version(registered: TrainResult, mlflow_store: str) -> None:
    from kerasflow.flows.train import train_flow

    second = train_flow(str(ROOT / "configs/iris.yaml"), [*FAST, "model.hidden_units=[8]"])
    assert int(second.version) == int(registered.version) + 1


@pytest.mark.slow
def test_other_columns_are_refused_before_any_registry_change(registered: TrainResult, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    versions = sorted(v.version for v in client.search_model_versions(f"name='{NAME}'"))
    aliases = dict(client.get_registered_model(NAME).aliases)
    champion = aliases["champion"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}

    proc = subprocess.run(
        [sys.executable, "-m", "kerasflow.runtime.cli", "run", "configs/iris.yaml", "--set", "training.epochs=2",
         "--set", f"registry.model_name={NAME}",
         "--set", "data.features=[sepal_length_cm, sepal_width_cm, petal_length_cm]"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)

    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (f"cannot register under this name: registry.model_name '{NAME}': this model's input columns differ "
            f"from those of its version {champion} (@champion):") in proc.stderr
    assert "columns this model lacks: 'petal_width_cm' (double)" in proc.stderr
    assert f"--set registry.model_name={NAME}-2" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(v.version for v in client.search_model_versions(f"name='{NAME}'")) == versions
    assert dict(client.get_registered_model(NAME).aliases) == aliases
    experiment = client.get_experiment_by_name("iris").experiment_id
    failed = client.search_runs([experiment], "attributes.status = 'FAILED' and params.`registry.model_name` = "
                                f"'{NAME}'", order_by=["attributes.start_time DESC"])
    assert failed and failed[0].data.tags["kerasflow.error"].startswith("IncompatibleInputsError: ")
