"""Shared fixtures: a temporary SQLite MLflow store and a Prefect test harness.

Both are real: MLflow writes to a SQLite file under a temporary folder, and
Prefect runs flows against its test harness's temporary server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kerasflow.heavy import import_tensorflow
from kerasflow.quiet import silence

ROOT = Path(__file__).resolve().parents[1]
silence()
# CLI subprocesses start the shared local Prefect server in a PREFECT_HOME of this session, not ~/.prefect,
# on a free port, not 4200; it is stopped when the session ends (see `_stop_shared_server`).
SESSION_PREFECT_HOME = tempfile.mkdtemp(prefix="kerasflow-test-prefect-")
os.environ["PREFECT_HOME"] = SESSION_PREFECT_HOME
# Step caching off, so that every test computes what it checks; tests/test_caching.py turns it on.
os.environ["KERASFLOW_CACHE_DAYS"] = "0"
# Infra validation (a fresh process that loads each registered version) off for configs that leave
# `promotion.infra_validation` out; tests/test_infra_validation.py sets it in its configs.
os.environ["KERASFLOW_INFRA_VALIDATION"] = "off"
# Checkpoints, finished folds and cached steps of this session in a folder of its own, so that a
# developer's earlier session (or `kerasflow run` in the clone) is never resumed by a test.
os.environ["KERASFLOW_HOME"] = tempfile.mkdtemp(prefix="kerasflow-test-home-")


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_server():
    """Gives the session's shared Prefect server a free port; stops it at the end of the session."""
    from kerasflow.runtime.processes import free_port

    os.environ["KERASFLOW_PREFECT_PORT"] = str(free_port())  # never a developer's server on 4200
    yield
    env = {**os.environ, "PREFECT_HOME": SESSION_PREFECT_HOME}
    subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "server", "stop"], cwd=ROOT, env=env,
                   capture_output=True, timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _kept_validation_worker():
    """Keeps the Great Expectations worker between the in-process flow runs of this test process.

    Each flow that validates would otherwise start a fresh worker and import
    GX again (about 4 CPU s, some 60 times a session); see
    `kerasflow.data.expectations.run.keep_validator`. The CLI's commands, run
    in subprocesses, never keep it; `validator_per_job` gives a test that
    behaviour in process.
    """
    from kerasflow.data.expectations.run import keep_validator

    keep_validator(True)
    yield


@pytest.fixture
def validator_per_job():
    """The validation worker as a command has it, not kept between jobs (the session's kept one is stopped)."""
    from kerasflow.data.expectations.run import keep_validator

    keep_validator(False)
    yield
    keep_validator(True)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Points MLflow at a fresh SQLite store for the whole session."""
    store = tmp_path_factory.mktemp("mlruns")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    SESSION_STORE.append(uri)
    return uri


SESSION_STORE: list[str] = []  # the `mlflow_store` URI, once a test of this worker asked for it


@pytest.fixture(scope="session")
def prefect_harness(mlflow_store: str):
    """Runs flows against Prefect's test harness (one temporary server per session).

    Not the session's shared local server that the CLI's commands start: with
    both the in-process flows and the commands on it, whole `make test` runs
    took 18-19 min against 16.5-17.5 min with the harness (2026-12-08), though
    each module alone ran faster on the shared one. The harness's ephemeral
    server runs fewer background services.
    """
    from prefect.testing.utilities import prefect_test_harness

    import_tensorflow()
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _mlflow_uris_handed_back():
    """After every test, MLflow's global tracking and registry URIs point at the session's store again.

    A test that points them at a server of its own (stopped at its end)
    would otherwise send a later test's fluent calls, such as
    `mlflow.pyfunc.load_model("models:/...")`, to a closed port. The target
    is the session store itself, not the URIs seen before the test: before
    any test asked for `mlflow_store`, those are MLflow's defaults (a
    `mlflow.db` in the working folder), and `mlflow.set_tracking_uri` also
    writes its URI into `MLFLOW_TRACKING_URI`, so handing them "back" sent
    every later in-process run of the worker to that file.
    """
    yield
    mlflow = sys.modules.get("mlflow")  # not imported: nothing to hand back
    if not SESSION_STORE or mlflow is None:
        return
    store = SESSION_STORE[0]
    if (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) != (store, store):
        mlflow.set_tracking_uri(store)
        mlflow.set_registry_uri(store)
    os.environ["MLFLOW_TRACKING_URI"] = store


@pytest.fixture(autouse=True)
def _project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs every test from the project root, where config paths are relative to."""
    monkeypatch.chdir(ROOT)


# `make test-fast` runs every test not marked `integration` (or `slow`): the unit tests of the library on tiny
# data, in under three minutes. A test is `integration` when it runs whole flows through Prefect (it uses
# `prefect_harness`), starts the CLI or servers in other processes, or trains models for longer than a few
# seconds: its module is listed here, or the test itself when its module is otherwise fast.
INTEGRATION_MODULES = {
    "test_caching", "test_cli_exit", "test_cnn", "test_cv", "test_deployments", "test_distribute", "test_flow",
    "test_infra_validation", "test_noise_gate", "test_gx_worker", "test_ui",
    "test_outages", "test_prefect_server", "test_read_once", "test_registry_names", "test_resume", "test_retrain", "test_serving",
    "test_slices_flow",
    "test_stream", "test_tabm", "test_team", "test_toy_family", "test_tracking_server", "test_tune",
    "test_tune_dask", "test_unattended",
}
INTEGRATION_TESTS = {
    "test_four_processes_create_one_new_store_at_once", "test_a_server_started_within_the_budget_is_waited_for",
    "test_a_store_that_stays_down_fails_when_the_budget_ends", "test_two_runs_of_one_config_at_once_both_finish",
    "test_broken_file_through_the_cli", "test_a_test_folder_is_the_test_split_of_a_cli_run",
    "test_text_flow_uses_the_test_file_and_serves_raw_strings", "test_racing_champion_moves_lose_no_update",
    "test_worker_death_is_reported_clearly", "test_functional_flow_logs_per_output_metrics_and_serves_raw_columns",
    "test_a_small_tabm_learns_breast_cancer", "test_help_shows_plain_metavars",
    "test_slices_of_a_two_head_text_model_score_every_head",
    "test_a_cross_validated_search_chooses_by_its_own_fold_scores_and_rechooses_without_training",
}


# Seconds the heaviest modules take on the two-core CI machine: the sums of their tests' `--durations` in the last
# full run, less what later changes removed (only their order matters). `make test` runs `--dist loadfile
# --no-loadscope-reorder`: xdist hands the modules to its two workers in collection order, so the modules are
# collected longest first (the others by `_estimate`): the workers then end together, instead of one running a
# long module of a few tests, which xdist's own order (by number of tests) hands out last.
MODULE_SECONDS = {
    "test_tune_dask": 110, "test_team": 105, "test_reliability": 100, "test_unattended": 95, "test_outages": 92,
    "test_prefect_server": 77, "test_tune": 67, "test_retrain": 66, "test_deployments": 61, "test_contract": 53,
    "test_cv": 45, "test_tabular_encodings": 43, "test_scaffold": 43, "test_tabm": 41, "test_ui": 39, "test_flow": 39,
    "test_gx_worker": 38, "test_resume": 36, "test_cnn": 36, "test_slices_flow": 35, "test_serving": 33,
    "test_infra_validation": 32, "test_cli_exit": 28, "test_stream": 24, "test_text_analyzers": 23,
    "test_registry_names": 23, "test_text_encode_once": 22, "test_retrain_kfold": 22, "test_tracking_server": 21,
    "test_read_once": 20, "test_noise_gate_regression": 19, "test_caching": 19, "test_images": 18,
    "test_distribute": 18, "test_noise_gate": 16, "test_validate": 15, "test_toy_family": 15,
    "test_image_defaults": 15, "test_baseline": 15, "test_promote": 14,
}


def _module(item: pytest.Item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1] if item.module else ""


def _estimate(module: str, items: list[pytest.Item]) -> float:
    """A module's seconds: measured (`MODULE_SECONDS`), else 8 s per integration or slow test and 0.5 s per other."""
    if module in MODULE_SECONDS:
        return MODULE_SECONDS[module]
    return sum(8 if item.get_closest_marker("integration") or item.get_closest_marker("slow") else 0.5
               for item in items)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the integration tests (see `INTEGRATION_MODULES`), so `-m "not integration"` is the fast subset.

    Then orders the modules longest first (`MODULE_SECONDS`), each module's tests in their own order.
    """
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        module = _module(item)
        if (module in INTEGRATION_MODULES or getattr(item, "originalname", item.name) in INTEGRATION_TESTS
                or "prefect_harness" in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        by_module.setdefault(module, []).append(item)
    seconds = {module: _estimate(module, group) for module, group in by_module.items()}
    items.sort(key=lambda item: -seconds[_module(item)])  # stable: a module's tests keep their order
