"""The design lint: every rule fires on a config that breaks it and stays quiet on one that does not."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kerasflow.lint import RULES, lint_config, profile_frame, profile_source
from kerasflow.schemas.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=None)
def _profile(config_file: str, *overrides: str):
    config = load_config(ROOT / "configs" / config_file, list(overrides))
    return config, profile_source(config)


def _rules(config_file: str, *overrides: str) -> dict[str, list[tuple[str, str]]]:
    """Findings by rule, as (severity, path)."""
    config, profile = _profile(config_file, *[o for o in overrides if o.startswith(("data.", "split."))])
    config = load_config(ROOT / "configs" / config_file, list(overrides))
    found: dict[str, list[tuple[str, str]]] = {}
    for finding in lint_config(config, profile).findings:
        found.setdefault(finding.rule, []).append((finding.severity, finding.path))
    return found


CASES = [  # rule, config, overrides that break it, overrides that keep it, expected (severity, path)
    ("bottleneck", "iris.yaml", ["model.hidden_units=[32, 2]"], [], ("warning", "model.hidden_units[1]")),
    ("task-and-labels", "penguins.yaml", ["data.task=regression"], [], ("error", "data.task")),
    ("task-and-labels", "diabetes.yaml", ["data.task=classification"], [], ("error", "data.task")),
    ("unscaled-features", "breast_cancer.yaml", ["preprocessing.normalize=false"], [],
     ("warning", "preprocessing.normalize")),
    ("small-data-without-kfold", "iris.yaml", [], ["split.kind=kfold"], ("note", "split.kind")),
    ("no-early-stopping", "iris.yaml", ["training.early_stopping.enabled=false"], [],
     ("warning", "training.early_stopping.enabled")),
    ("held-out-rows", "iris.yaml", ["split.test_fraction=0"], [], ("error", "split.test_fraction")),
    ("held-out-rows", "iris.yaml", ["split.shuffle=false"], [], ("error", "split.shuffle")),
    ("held-out-rows", "fine_foods_gru.yaml", ["data.test_source=data/fine_foods/train.csv"], [],
     ("error", "data.test_source")),
    ("unused-test-fraction", "fine_foods_gru.yaml", ["split.test_fraction=0.3"], ["split.test_fraction=0"],
     ("warning", "split.test_fraction")),
    ("strong-regularization", "iris.yaml", ["model.dropout=0.7"], [], ("warning", "model.dropout")),
    ("strong-regularization", "iris.yaml", ["model.l2=0.5"], [], ("warning", "model.l2")),
    ("learning-rate", "iris.yaml", ["training.optimizer.learning_rate=0.5"], [],
     ("warning", "training.optimizer.learning_rate")),
    ("batch-size", "iris.yaml", ["training.batch_size=512"], [], ("warning", "training.batch_size")),
    ("embedding-vocabulary", "fine_foods_gru.yaml", ["model.vectorize.max_tokens=200000"], [],
     ("warning", "model.vectorize.max_tokens")),
    ("recurrent-dropout", "fine_foods_gru.yaml", ["model.recurrent_dropout=0.0"], [],
     ("warning", "model.recurrent_dropout")),
    ("image-channels", "digits_folder.yaml", ["data.image.channels=3"], ["data.image.on_channel_mismatch=convert"],
     ("error", "data.image.channels")),
]


@pytest.mark.parametrize("rule, config_file, breaking, keeping, expected", CASES,
                         ids=[f"{c[0]}-{'-'.join(c[2]) or 'default'}" for c in CASES])
def test_a_rule_fires_only_on_a_config_that_breaks_it(rule: str, config_file: str, breaking: list[str],
                                                      keeping: list[str], expected: tuple[str, str]) -> None:
    assert expected in _rules(config_file, *breaking).get(rule, [])
    assert expected not in _rules(config_file, *keeping).get(rule, [])


def test_fine_tuning_faster_than_the_frozen_phase_is_an_error() -> None:
    config = load_config(ROOT / "configs/digits_cnn.yaml", ["training.optimizer.learning_rate=0.001"])
    profile = profile_frame(config, pd.DataFrame({"target": np.arange(100) % 10}))

    def findings(rate: float) -> list[tuple[str, str]]:
        config.model.base = config.model.__class__.model_fields["base"].annotation.__args__[0].model_validate(
            {"source": "base.keras", "fine_tune": {"layers": 2, "learning_rate": rate, "epochs": 1}})
        return [(f.severity, f.path) for f in lint_config(config, profile).findings if f.rule == "fine-tune-rate"]

    assert findings(0.001) == [("error", "model.base.fine_tune.learning_rate")]
    assert findings(0.0001) == []


def test_integer_targets_with_many_levels_are_flagged_as_possible_quantities() -> None:
    config = load_config(ROOT / "configs/iris.yaml", ["data.target=age"])
    frame = pd.DataFrame({"x": np.arange(300.0), "age": np.arange(300) % 15})
    assert [f.path for f in lint_config(config, profile_frame(config, frame)).findings
            if f.rule == "task-and-labels"] == ["data.task"]
    few = pd.DataFrame({"x": np.arange(300.0), "age": np.arange(300) % 4})
    assert not [f for f in lint_config(config, profile_frame(config, few)).findings if f.rule == "task-and-labels"]


def test_every_rule_has_a_case() -> None:
    assert {c[0] for c in CASES} | {"fine-tune-rate"} == set(RULES)


def test_every_rule_is_explained_in_english_where_its_findings_point() -> None:
    doc = (ROOT / "docs/rules.md").read_text()
    headings = [line[3:].strip() for line in doc.splitlines() if line.startswith("## ")]
    assert headings == list(RULES), "docs/rules.md has one section per rule, in the order of kerasflow/lint/rules.py"
    assert all(ord(c) < 0x2E80 for c in doc), "English only"
    config, profile = _profile("iris.yaml")
    finding = lint_config(config, profile).findings[0]
    assert finding.source == f"docs/rules.md#{finding.rule}" and str(finding).endswith(f"[{finding.source}]")


def test_bundled_configs_have_no_errors_or_warnings() -> None:
    for config_file in sorted(p.name for p in (ROOT / "configs").glob("*.yaml")):
        found = _rules(config_file)
        assert not [f for fs in found.values() for f in fs if f[0] != "note"], (config_file, found)


def test_the_cli_prints_the_findings_and_exits_2_on_an_error() -> None:
    cli = [sys.executable, "-m", "kerasflow.runtime.cli", "lint", "configs/iris.yaml"]
    clean = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and "design lint: 1 note" in clean.stdout, clean.stdout + clean.stderr
    broken = subprocess.run([*cli, "--set", "split.shuffle=false"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "error: split.shuffle: false: the rows are sorted by the target" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr


def test_a_run_stops_on_a_lint_error_with_the_report_logged(prefect_harness, mlflow_store: str) -> None:
    import mlflow

    from kerasflow.flows.train import train_flow
    from kerasflow.lint import DesignLintError

    with pytest.raises(DesignLintError, match="split.shuffle"):
        train_flow(str(ROOT / "configs/iris.yaml"), ["name=iris_lint", "split.shuffle=false"])
    client = mlflow.MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("iris_lint")
    run = client.search_runs([experiment.experiment_id])[0]
    assert run.info.status == "FAILED"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "lint")} == {"lint/report.json", "lint/report.txt"}
    assert run.data.params["lint.error"] == "1"
    assert "train/loss" not in run.data.metrics, "nothing was trained"
