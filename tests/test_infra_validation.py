"""Infra validation and the model card, through the train flow with a real SQLite store and real fresh processes.

A k-fold ensemble trained on scikit-learn's bundled breast cancer set loads
and answers in a fresh process, gets `@candidate` and a model card whose
head is the version's description. A model whose network holds a layer
class defined only in this test module trains and evaluates here, but a
fresh process (which imports only what was logged with the model) cannot
load it: the version is refused, tagged `kerasflow.infra=failed`, and no
alias moves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import keras
import mlflow
import pytest
import yaml

from kerasflow.features.inputs import build_input_layers
from kerasflow.flows.results import TrainResult
from kerasflow.models.families import register_family
from kerasflow.models.hyper import build_optimizer
from kerasflow.promotion.card import card_head
from kerasflow.schemas.base import Section
from kerasflow.schemas.families import register_family_config

ROOT = Path(__file__).resolve().parents[1]
GOOD, BROKEN = "infra-ensemble", "infra-unloadable"
PURPOSE = "Flags biopsies for a second reading; not a diagnosis."


@keras.saving.register_keras_serializable(package="kerasflow_infra_test")
class Doubled(keras.layers.Layer):
    """Doubles its input: a layer class only this module defines, so only this process can load it."""

    def call(self, inputs: Any) -> Any:
        return inputs * 2.0


class UnloadableModelConfig(Section):
    """A family whose network holds `Doubled`, against the rule that custom layers live in `kerasflow.features`.

    Args:
        kind: `unloadable`.
    """

    kind: Literal["unloadable"]


def build_unloadable(hp: Any, spec: Any) -> Any:
    """A dense network with a `Doubled` layer after the encoded inputs."""
    inputs, x = build_input_layers(spec.features)
    x = keras.layers.Dense(8, activation="relu")(Doubled()(x))
    units, activation, loss = spec.labels.output()
    model = keras.Model(inputs=inputs, outputs=keras.layers.Dense(units, activation=activation)(x), name="kerasflow")
    model.compile(optimizer=build_optimizer(hp, spec), loss=loss, metrics=spec.labels.metrics())
    return model


register_family_config(UnloadableModelConfig)
register_family("unloadable", build=build_unloadable, default_values=lambda model: {})


def _config(folder: Path, name: str, model: dict[str, Any], split: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name.replace("-", "_"),
        "description": PURPOSE,
        "data": {"source": "breast_cancer", "target": "target"},
        "split": {"test_fraction": 0.2, "seed": 42, **split},
        "model": model,
        "training": {"epochs": 4, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 0.01}},
        "registry": {"model_name": name, "thresholds": {"accuracy": 0.5}},
        "promotion": {"infra_validation": "load_and_query", "canary_rows": 20},
    }))
    return path


@pytest.fixture(scope="module")
def ensemble_run(prefect_harness, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    from kerasflow.flows.train import train_flow

    folder = tmp_path_factory.mktemp("infra")
    return train_flow(str(_config(folder, GOOD, {"kind": "dense", "hidden_units": [8]},
                                  {"kind": "kfold", "folds": 2, "final": "ensemble"})), lint=False)


@pytest.fixture(scope="module")
def broken_run(prefect_harness, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    from kerasflow.flows.train import train_flow

    folder = tmp_path_factory.mktemp("infra-broken")
    return train_flow(str(_config(folder, BROKEN, {"kind": "unloadable"}, {"val_fraction": 0.15})), lint=False)


def _client(store: str) -> Any:
    return mlflow.MlflowClient(store, store)


def test_a_k_fold_ensemble_passes_and_becomes_candidate(ensemble_run: TrainResult, mlflow_store: str) -> None:
    client = _client(mlflow_store)
    version = client.get_model_version(GOOD, ensemble_run.version)
    assert ensemble_run.blessed
    assert {a: str(v) for a, v in client.get_registered_model(GOOD).aliases.items()} == {"candidate": ensemble_run.version}
    assert version.tags["kerasflow.infra"] == "passed" and version.tags["kerasflow.blessed"] == "true"
    assert "scored 5 example and 20 test rows" in version.tags["kerasflow.infra_details"]
    data = client.get_run(ensemble_run.run_id).data
    metrics, params = data.metrics, data.params
    assert metrics["infra/load_seconds"] > 0 and metrics["infra/row_ms"] > 0
    assert params["infra.rows"] == "25" and params["infra.passed"] == "1"


def test_the_card_is_logged_and_its_head_is_the_description(ensemble_run: TrainResult, mlflow_store: str,
                                                            tmp_path: Path) -> None:
    client = _client(mlflow_store)
    card = Path(client.download_artifacts(ensemble_run.run_id, "model_card.md", str(tmp_path))).read_text()
    description = client.get_model_version(GOOD, ensemble_run.version).description
    assert description == card_head(card) and card.startswith(description)
    assert description.startswith("Gate decision: blessed") and f"Intended use: {PURPOSE}" in description
    assert "Infra validation: passed (load_and_query)" in description
    for section in ("## Intended use", "## Data", "## Test metrics", "## Decisions", "## Lineage"):
        assert section in card
    # not logged by this run (no slices, no baseline, the lint off): left out
    assert "## Baseline" in card and "HistGradientBoostingClassifier" in card, "the baseline step ran"
    assert "## Slices" not in card and "## Design lint" not in card
    assert "- Source: `breast_cancer`" in card and "- Classes (2): benign, malignant" in card
    assert "- Config hash: " in card and "- Prefect flow run: " in card
    data = client.download_artifacts(ensemble_run.run_id, "model_card.json", str(tmp_path))
    assert '"intended_use": "' + PURPOSE + '"' in Path(data).read_text()


def test_kerasflow_card_prints_the_candidates_card(ensemble_run: TrainResult, mlflow_store: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    done = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "card", f"{GOOD}@candidate"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    description = _client(mlflow_store).get_model_version(GOOD, ensemble_run.version).description
    assert done.stdout.startswith(description) and f"# Model card: {GOOD} v{ensemble_run.version}" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "card", f"{GOOD}@champion"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "has no alias 'champion'" in missing.stderr


def test_a_model_a_fresh_process_cannot_load_is_refused(broken_run: TrainResult, mlflow_store: str) -> None:
    client = _client(mlflow_store)
    version = client.get_model_version(BROKEN, broken_run.version)
    assert broken_run.metrics["accuracy"] > 0.5  # it met the threshold in this process
    assert not broken_run.blessed
    assert client.get_registered_model(BROKEN).aliases == {}
    assert version.tags["kerasflow.infra"] == "failed" and version.tags["kerasflow.blessed"] == "false"
    assert "Doubled" in version.tags["kerasflow.infra_details"]
    assert version.description.startswith("Gate decision: not blessed: passed every threshold, but infra validation "
                                          "failed")
    assert any("Infra validation: FAILED" in reason for reason in broken_run.reasons)
    run = client.get_run(broken_run.run_id)
    assert run.data.tags["kerasflow.infra"] == "failed" and run.data.params["infra.passed"] == "0"


def test_the_package_map_is_made_in_the_background_and_the_pins_match(caplog: pytest.LogCaptureFixture) -> None:
    """`map_installed_packages` builds MLflow's map off the main thread; the logged pins then check clean."""
    from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

    from kerasflow.tracking.models import _requirements, map_installed_packages

    thread = map_installed_packages()
    assert thread.daemon
    thread.join(timeout=120)
    assert not thread.is_alive()
    with caplog.at_level("WARNING", logger="mlflow"):
        warn_dependency_requirement_mismatches(_requirements())  # what `log_model` checks
    assert not [r for r in caplog.records if "mismatch" in r.getMessage()], caplog.text
