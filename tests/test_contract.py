"""The data contract: every broken file of the catalogue through the real CLI, plus the report's own rules.

The catalogue (`tests/data/bad/`, written by `make_catalogue.py` from the
bundled datasets) holds one file per class of defect. Each runs through the
training flow against a temporary SQLite MLflow store: a refused file
fails with a message naming file, column and rows, leaves a FAILED run and
an unchanged registry; a repairable one trains with the named warning.
One case of each way the command ends (`CLI_CASES`: refused by the flow,
refused by the config before it, repaired) runs through `kerasflow run` in
a process of its own, which must exit 2 or 0 with that message and no
traceback; the others run the same flow in this process (a command costs
about 8 CPU s, mostly importing Prefect and MLflow), and their message is
the command's: `describe` of the error, and the warnings the flow logs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from log_lines import LogLines

from kerasflow.data.contract import check_contract, read_sources
from kerasflow.data.findings import require_contract
from kerasflow.data.load import Table
from kerasflow.errors import BadInputError, describe
from kerasflow.schemas.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "tests" / "data" / "bad"
sys.path.insert(0, str(CATALOGUE))
from make_catalogue import CASES, Case, write_catalogue  # noqa: E402

MODEL = "contract-bad"
CLI_CASES = ("single_class", "bad_set_value", "polluted_numeric")  # exit 2 from the flow, from the config; exit 0


def _config(case: Case, folder: Path) -> Path:
    data = {"source": str(CATALOGUE / case.file), "target": case.target, **case.data}
    if case.test_file:
        data["test_source"] = str(CATALOGUE / case.test_file)
    model = {"kind": "cnn", "filters": [4]} if "image" in case.data else {"hidden_units": [8]}
    raw = {"name": "contract", "data": data, "model": model, "split": {"kind": "holdout"},
           "training": {"epochs": 1, "batch_size": 64},
           "evaluation": {"confusion_matrix": False}, "registry": {"model_name": MODEL}}
    path = folder / f"{case.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _registry(client: mlflow.MlflowClient) -> tuple[list[str], dict[str, str]]:
    versions = sorted(v.version for v in client.search_model_versions(f"name='{MODEL}'"))
    if not versions:
        return [], {}
    return versions, dict(client.get_registered_model(MODEL).aliases)


def _latest_run(client: mlflow.MlflowClient) -> mlflow.entities.Run:
    experiment = client.get_experiment_by_name("contract")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]


def _cases(cli: bool) -> list:
    return [pytest.param(c, id=c.name) for c in CASES if (c.name in CLI_CASES) == cli]


def _check_output(case: Case, output: str) -> None:
    for word in case.words:
        assert word.lower() in output.lower(), f"{word!r} not in:\n{output}"
    for word in case.absent:
        assert word.lower() not in output.lower(), f"{word!r} in:\n{output}"


def _check_refused(case: Case, client: mlflow.MlflowClient, before: tuple) -> None:
    """A refused file leaves the registry unchanged and a FAILED run with its error and its report."""
    assert _registry(client) == before
    run = _latest_run(client)
    assert run.info.status == "FAILED"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "errors")} == {"errors/error.txt"}
    contract = {a.path for a in client.list_artifacts(run.info.run_id, "contract")}
    if "image" in case.data:  # image folders have their own report
        assert "images/report.json" in {a.path for a in client.list_artifacts(run.info.run_id, "images")}
    elif case.name != "bad_set_value":  # every data problem, a file that cannot be read included
        assert contract == {"contract/report.json", "contract/report.txt"}
        report = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/contract/report.json")
        assert report["passed"] is False and report["errors"] >= 1


@pytest.mark.parametrize("case", _cases(cli=True))
def test_broken_file_through_the_cli(case: Case, tmp_path: Path, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    before = _registry(client)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "run", str(_config(case, tmp_path)),
                           *(arg for item in case.overrides for arg in ("--set", item))],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == case.exit_code, output
    assert "Traceback" not in output, output
    _check_output(case, output)
    if case.exit_code == 2:
        _check_refused(case, client, before)


@pytest.mark.parametrize("case", _cases(cli=False))
def test_broken_file_through_the_flow(case: Case, tmp_path: Path, mlflow_store: str, prefect_harness) -> None:
    from kerasflow.flows.train import train_flow

    client = mlflow.MlflowClient(mlflow_store)
    before = _registry(client)
    logged = LogLines()
    logging.getLogger("prefect").addHandler(logged)  # the run and task loggers propagate to it
    try:
        if case.exit_code == 2:  # what the command prints, and exits 2 for: `describe` of a BadInputError
            with pytest.raises(BadInputError) as refused:
                train_flow(str(_config(case, tmp_path)), list(case.overrides))
            output = describe(refused.value)
        else:
            output = ""
            train_flow(str(_config(case, tmp_path)), list(case.overrides))
    finally:
        logging.getLogger("prefect").removeHandler(logged)
    _check_output(case, "\n".join([output, *logged.lines]))
    if case.exit_code == 2:
        _check_refused(case, client, before)
    else:
        assert _latest_run(client).info.status == "FINISHED"


def test_catalogue_is_reproducible(tmp_path: Path) -> None:
    for written in write_catalogue(tmp_path):
        name = written.relative_to(tmp_path)
        assert written.read_bytes() == (CATALOGUE / name).read_bytes(), name


def test_a_column_constant_only_in_the_test_file_is_kept() -> None:
    config = PipelineConfig.model_validate({"name": "t", "data": {
        "source": str(CATALOGUE / "clean.csv"), "target": "target",
        "test_source": str(CATALOGUE / "test_constant.csv")}})
    report = require_contract(check_contract(config, *read_sources(config.data)))
    assert report.findings == [] and report.dropped == []
    assert report.frame["mean_smoothness"].iloc[-1] == 0.1


def test_configured_decimal_comma_reads_numbers() -> None:
    config = PipelineConfig.model_validate({"name": "t", "data": {
        "source": str(CATALOGUE / "decimal_comma.csv"), "target": "target", "decimal": ","}})
    report = require_contract(check_contract(config, *read_sources(config.data)))
    assert report.frame["mean_radius"].dtype == "float64" and report.frame["mean_radius"].iloc[0] == 17.99


def test_prediction_input_is_read_as_the_model_training_data_was(mlflow_store: str, tmp_path: Path) -> None:
    """`kerasflow predict` reads a `;`-separated file with decimal commas by the model's `data.*` params."""
    from kerasflow.data.chunks import read_chunks
    from kerasflow.tasks.predict import read_input
    from kerasflow.tracking import Tracker, log_config
    from kerasflow.tracking.registry import ModelRef

    config = PipelineConfig.model_validate({"name": "t", "data": {
        "source": str(CATALOGUE / "decimal_comma.csv"), "target": "target", "delimiter": ";", "decimal": ","}})
    client = mlflow.MlflowClient(mlflow_store)
    training = client.create_run(client.create_experiment("decimal-comma-training")).info.run_id
    log_config(client, training, config)
    predicting = client.create_run(client.get_run(training).info.experiment_id).info.run_id
    model = ModelRef(uri=f"runs:/{training}/model", run_id=training)

    source, options = read_input.fn(Tracker(predicting, mlflow_store), str(CATALOGUE / "decimal_comma.csv"), model)

    frame = next(read_chunks(source, **options))
    assert frame["mean_radius"].dtype == "float64" and frame["mean_radius"].iloc[0] == 17.99


@pytest.mark.parametrize("overrides, rule, words", [
    ({"preprocessing": {"non_finite": "missing"}}, "non_finite", "treated as missing"),
    ({"preprocessing": {"non_finite": "clip"}}, "non_finite", "clipped to"),
    ({"preprocessing": {"invalid_numbers": "fail"}}, "invalid_numbers", "'abc'"),
])
def test_config_chooses_the_repair(overrides: dict, rule: str, words: str) -> None:
    file = "polluted_numeric.csv" if rule == "invalid_numbers" else "infinite.csv"
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": str(CATALOGUE / file), "target": "target"},
                                            **overrides})
    report = check_contract(config, *read_sources(config.data))
    finding = next(f for f in report.findings if f.rule == rule)
    assert words in str(finding)
    assert finding.severity == ("error" if rule == "invalid_numbers" else "warning")
    if finding.severity == "warning":
        column = report.frame[finding.column]
        assert column.notna().sum() + (rule == "non_finite" and "missing" in str(finding)) * 2 == len(column)


def test_configured_encoding_reads_a_latin1_file() -> None:
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": str(CATALOGUE / "latin1.csv"),
                                                                  "target": "target", "encoding": "latin-1"}})
    report = require_contract(check_contract(config, *read_sources(config.data)))
    assert "Hôpital Nord" in set(report.frame["clinic"])


def _check(frame: pd.DataFrame, **data: object) -> object:
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "y", **data}})
    return check_contract(config, Table(frame, "x.csv"))


def test_clean_frame_passes_untouched() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 3, "b": ["u", "v", "w", "u"] * 3, "y": ["p", "q"] * 6})
    report = require_contract(_check(frame))
    assert report.findings == [] and report.frame.equals(frame)


def test_clip_policy_clips_to_the_finite_range() -> None:
    frame = pd.DataFrame({"a": [1.0, float("inf"), -5.0, 2.0] * 3, "y": ["p", "q"] * 6})
    report = _check(frame)
    assert [f.rule for f in report.errors] == ["non_finite"]
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "y"},
                                            "preprocessing": {"non_finite": "clip"}})
    repaired = check_contract(config, Table(frame, "x.csv"))
    assert repaired.frame["a"].max() == 2.0 and not repaired.errors


def test_text_column_stays_categorical() -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Rome", "Lima", "1"] * 3, "y": ["p", "q"] * 6})
    report = _check(frame)
    assert report.findings == [] and report.frame["city"].tolist() == frame["city"].tolist()


def test_kfold_needs_folds_members_per_class() -> None:
    frame = pd.DataFrame({"a": range(14), "y": ["p"] * 10 + ["q"] * 4})
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "y"},
                                            "split": {"kind": "kfold", "folds": 5}})
    report = check_contract(config, Table(frame, "x.csv"))
    assert [f.rule for f in report.errors] == ["rare_class"]
    assert "'q' (4 rows)" in report.errors[0].message and "6 rows per class" in report.errors[0].message


def test_decimal_commas_in_a_mostly_integer_column_are_refused_not_dropped() -> None:
    frame = pd.DataFrame({"a": ["3", "3,5", "4", "5", "6,25", "7"] * 3, "y": ["p", "q"] * 9})
    (finding,) = _check(frame).findings
    assert finding.rule == "decimal_comma" and finding.severity == "error" and "'3,5'" in str(finding)
    thousands = _check(pd.DataFrame({"a": ["1,234", "2,500"] * 6, "y": ["p", "q"] * 6})).findings[0]
    assert "thousands separator" in str(thousands)


def test_non_finite_regression_labels_are_named_in_their_own_file() -> None:
    config = PipelineConfig.model_validate({"name": "t", "data": {"source": "x.csv", "target": "y",
                                                                  "test_source": "t.csv"}})
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 3, "y": [1.5, 2.5, float("inf"), 4.5] * 3})
    test = pd.DataFrame({"a": [1.0, 2.0], "y": [float("inf"), 1.5]})
    report = check_contract(config, Table(train, "x.csv"), Table(test, "t.csv"))
    assert [(f.file, f.examples) for f in report.errors] == [("x.csv", [3, 7, 11]), ("t.csv", [1])]
