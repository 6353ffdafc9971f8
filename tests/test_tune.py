"""Keras Tuner search: strict search spaces, conditional parameters, test rows never seen,
trials as nested MLflow runs, resume and --fresh, and tuned training end to end."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from log_lines import LogLines

from kerasflow.data.load import load_frame
from kerasflow.flows.results import TrainResult, TuneResult
from kerasflow.schemas.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/wine_tuned.yaml")
FAST = ["training.epochs=3", "training.early_stopping.patience=2", "tuning.tuner=random"]


def _config_with(tmp_path: Path, tuning: dict, **sections) -> Path:
    raw = {"name": "t", "data": {"source": "wine", "target": "target"}, "tuning": tuning, **sections}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("tuning", "sections", "expected"), [
    ({"space": {"model.units": {"type": "integer", "min": 1, "max": 2}}}, {},
     "tuning.space.model.units: Input tag 'integer'"),
    ({"space": {"model.units": {"type": "int", "min": 64, "max": 8}}}, {}, "min must not exceed max"),
    ({"space": {"model.dropout": {"type": "float", "min": 0.1, "max": 0.5, "parent": "model.use_dropout",
                                  "parent_values": [True]}}}, {},
     "tuning.space.model.dropout: parent 'model.use_dropout' is not in the search space"),
    ({"space": {"model.widht": {"type": "int", "min": 1, "max": 2}}}, {},
     "tuning.space.model.widht: not a tunable parameter"),
    ({"space": {"training.optimizer.name": {"type": "choice", "values": ["adam", "adamax"]}}}, {},
     "tuning.space.training.optimizer.name: value 'adamax' is not allowed"),
    ({"space": {"training.optimizer.learning_rate": {"type": "float", "min": 0, "max": 0.1, "sampling": "log"}}},
     {}, "log sampling needs min > 0"),
    ({"space": {"model.dropout": {"type": "float", "min": 0.0, "max": 1.5}}}, {},
     "tuning.space.model.dropout: value 1.5 is not allowed"),
    ({"space": {"model.activation": {"type": "int", "min": 1, "max": 2}}}, {},
     "tuning.space.model.activation: type 'int' not allowed here (use choice)"),
    ({"space": {"model.units": {"type": "int", "min": 8, "max": 16, "stride": 2}}}, {},
     "tuning.space.model.units.int.stride: unknown key"),
    ({"objective": {"name": "accuracy"}, "space": {"model.units": {"type": "int", "min": 8, "max": 16}}}, {},
     "tuning.objective.name"),
    ({"objective": {"name": "val_data_loss", "direction": "max"}, "space": {"model.units": {"type": "int", "min": 8,
                                                                                "max": 16}}}, {},
     "tuning.objective: direction 'max' would search for the worst val_data_loss: it is better when lower"),
    ({"space": {"model.units": {"type": "int", "min": 8, "max": 16}}}, {"split": {"val_fraction": 0}},
     "tuning: the search needs validation rows"),
    ({"space": {"model.units_3": {"type": "int", "min": 8, "max": 16}}}, {},
     "tuning.space.model.units_3: never used"),
    ({"space": {"model.layers": {"type": "int", "min": 1, "max": 2},
                "model.units_4": {"type": "int", "min": 8, "max": 16}}}, {},
     "tuning.space.model.units_4: can never be active"),
])
def test_bad_search_spaces_name_their_path(tmp_path: Path, tuning: dict, sections: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config_with(tmp_path, tuning, **sections))
    assert expected in str(err.value)


def test_units_of_each_layer_are_conditioned_on_the_layer_count(tmp_path: Path) -> None:
    config = load_config(_config_with(tmp_path, {"objective": {"name": "val_accuracy"}, "space": {
        "model.layers": {"type": "int", "min": 1, "max": 3},
        "model.units_1": {"type": "int", "min": 8, "max": 16}}}))
    units = config.tuning.space["model.units_1"]
    assert (units.parent, units.parent_values) == ("model.layers", [2, 3])
    assert config.tuning.objective.direction == "max"


def _spec(space: dict, dropout: float = 0.0):
    from kerasflow.features.labels import fit_labels
    from kerasflow.features.tabular import fit_features
    from kerasflow.models.spec import ModelSpec
    from kerasflow.schemas.config import ModelConfig, OptimizerConfig

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "y": ["p", "q", "r", "p"]})
    return ModelSpec(model=ModelConfig(hidden_units=[8], dropout=dropout), optimizer=OptimizerConfig(),
                     features=fit_features(frame, ["a"], []), labels=fit_labels(frame["y"]), search_space=space)


# More layers and a second width, dropout only when it is on: the conditional space of two tests below.
CONDITIONAL_SPACE = {
    "model.layers": {"type": "int", "min": 1, "max": 3},
    "model.units_2": {"type": "int", "min": 4, "max": 12, "step": 4},
    "model.use_dropout": {"type": "boolean"},
    "model.dropout": {"type": "float", "min": 0.2, "max": 0.4, "parent": "model.use_dropout",
                      "parent_values": [True]},
}


def test_conditional_parameters_exist_only_when_their_condition_holds(tmp_path: Path) -> None:
    import keras_tuner

    from kerasflow.models.families import build_model
    from kerasflow.training.final import fixed_hyperparameters, search_space_of
    from kerasflow.training.search import declare_space

    config = load_config(_config_with(tmp_path, {"space": CONDITIONAL_SPACE}))
    spec = _spec(dict(config.tuning.space))
    hp = keras_tuner.HyperParameters()
    declare_space(hp, spec)
    assert {p.name for p in hp.space} == {"model.layers", "model.units_2", "model.use_dropout", "model.dropout"}
    assert not hp.is_active("model.dropout") and not hp.is_active("model.units_2")

    hp.values.update({"model.use_dropout": True, "model.layers": 3})
    hp.ensure_active_values()
    hp.values.update({"model.dropout": 0.3, "model.units_2": 12})
    trial = build_model(hp, spec)
    assert trial.get_layer("dropout_2").rate == pytest.approx(0.3) and trial.get_layer("dense_2").units == 12

    final = build_model(fixed_hyperparameters(hp.values), _spec(search_space_of(hp.values)))
    assert [layer.get_config().get("units") for layer in final.layers] == \
        [layer.get_config().get("units") for layer in trial.layers], "the final model is the trial's architecture"

    hp.values.update({"model.use_dropout": False, "model.layers": 1})
    hp.ensure_active_values()
    assert "model.dropout" not in hp.values and "model.units_2" not in hp.values
    names = {layer.name for layer in build_model(hp, spec).layers}
    assert "dense_1" not in names and not any(n.startswith("dropout") for n in names)


def test_a_random_search_first_tries_the_configured_values(tmp_path: Path) -> None:
    import keras_tuner

    from kerasflow.training.first_trial import configured_first_oracle
    from kerasflow.training.search import declare_space

    config = load_config(_config_with(tmp_path, {"space": {
        **CONDITIONAL_SPACE,
        "training.optimizer.name": {"type": "choice", "values": ["sgd", "adam"]},
        "training.optimizer.learning_rate": {"type": "float", "min": 1e-2, "max": 1e-1, "sampling": "log"}}}))
    hp = keras_tuner.HyperParameters()
    declare_space(hp, _spec(dict(config.tuning.space), dropout=0.3))
    oracle = configured_first_oracle(objective=keras_tuner.Objective("val_loss", "min"), max_trials=3, seed=1)
    oracle.update_space(hp)
    first = oracle.populate_space("0")
    assert first["status"] == "RUNNING"
    assert first["values"] == {"model.layers": 1, "model.use_dropout": True, "model.dropout": 0.3,
                               "training.optimizer.name": "adam",
                               "training.optimizer.learning_rate": 1e-2}, \
        "the config's values; units_2 is inactive with one layer; a learning rate of 1e-3 is below the range: its min"


def _search_inputs(config, poison: bool = True):
    from kerasflow.data.split import split_holdout
    from kerasflow.features.labels import fit_labels
    from kerasflow.features.tabular import fit_features, select_columns

    frame = load_frame("wine")
    split = split_holdout(frame["target"], test_fraction=0.2, val_fraction=0.15, seed=config.split.seed)
    if poison:  # any use of a test row (encoding, statistics, training) now fails or shows
        frame.loc[split.test, "target"] = "poison"
        frame.loc[split.test, [c for c in frame.columns if c != "target"]] = 1e12
    numeric, categorical = select_columns(frame, "target")
    features = fit_features(frame.iloc[split.train], numeric, categorical)
    return frame, split, features, fit_labels(frame.iloc[split.train]["target"])


class _Recorder:
    """A trial hook that records events and can stop the search like Ctrl-C."""

    def __init__(self, interrupt_at: str | None = None):
        self.started: list[str] = []
        self.ended: list = []
        self.interrupt_at = interrupt_at

    def trial_started(self, trial_id, values):
        self.started.append(trial_id)

    def epoch_ended(self, trial_id, label, epoch, logs):
        if trial_id == self.interrupt_at:
            raise KeyboardInterrupt

    def fold_ended(self, trial_id, fold, score, best_epoch):
        pass

    def trial_ended(self, record):
        self.ended.append(record)

    def trial_interrupted(self, trial_id, error):
        self.ended.append((trial_id, type(error).__name__))


@pytest.mark.parametrize("cv_folds", [None, 2])
def test_the_search_never_sees_test_rows(tmp_path: Path, cv_folds: int | None) -> None:
    from kerasflow.training.search import run_search, search_data

    config = load_config(CONFIG, FAST + ["tuning.max_trials=2", "training.epochs=2", f"tuning.cv_folds={cv_folds or 'null'}"])
    frame, split, features, labels = _search_inputs(config)
    assert "poison" not in labels.classes
    data = search_data(config, frame, split, features, labels)
    used = {row for train, val in data.rows for row in train + val}
    assert used and not used & set(split.test)
    assert len(data.folds) == (cv_folds or 1)
    recorder = _Recorder()
    result = run_search(config, data, tmp_path / "search", fingerprint="f", hook=recorder)
    assert [r.status for r in result.trials] == ["COMPLETED", "COMPLETED"]
    assert all(len(r.fold_scores) == (cv_folds or 1) for r in result.trials)
    assert 0 <= result.best_score <= 1


def test_an_interrupted_search_resumes_without_rerunning_completed_trials(tmp_path: Path) -> None:
    from kerasflow.training.search import TuningError, run_search, search_data

    config = load_config(CONFIG, FAST + ["tuning.max_trials=3", "training.epochs=2"])
    frame, split, features, labels = _search_inputs(config, poison=False)
    data = search_data(config, frame, split, features, labels)
    project = tmp_path / "search"

    interrupted = _Recorder(interrupt_at="1")
    with pytest.raises(KeyboardInterrupt):
        run_search(config, data, project, fingerprint="f", hook=interrupted)
    assert interrupted.started == ["0", "1"] and interrupted.ended[-1] == ("1", "KeyboardInterrupt")

    resumed = _Recorder()
    result = run_search(config, data, project, fingerprint="f", hook=resumed)
    assert resumed.started == ["1", "2"], "trial 0 completed before the interruption and is not run again"
    assert [t.trial_id for t in result.trials if t.new] == ["1", "2"] and len(result.trials) == 3
    configured = {"model.layers": 2, "model.units": 32, "model.use_dropout": True, "model.dropout": 0.1,
                  "training.optimizer.learning_rate": 0.003, "training.optimizer.name": "adam"}
    assert result.trials[0].values == configured, "a random search tries the config's values first"
    assert all(t.values != configured for t in result.trials[1:]), "the resumed search does not repeat them"

    with pytest.raises(TuningError, match="--fresh"):
        run_search(config, data, project, fingerprint="changed config", hook=_Recorder())
    fresh = _Recorder()
    run_search(config, data, project, fingerprint="changed config", fresh=True, hook=fresh)
    assert fresh.started == ["0", "1", "2"]


@pytest.fixture(scope="module")
def searches(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from kerasflow.flows.tune import tune_flow

    directory = tmp_path_factory.mktemp("tuning")
    overrides = FAST + [f"tuning.directory={directory}"]
    first = tune_flow(CONFIG, overrides + ["tuning.max_trials=2"])
    second = tune_flow(CONFIG, overrides + ["tuning.max_trials=3"])
    return {"first": first, "second": second, "overrides": overrides}


def _children(client: mlflow.MlflowClient, parent: TuneResult | TrainResult) -> list:
    runs = client.search_runs([parent.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    return sorted(runs, key=lambda r: r.data.tags["kerasflow.trial_id"])


def test_each_trial_is_a_nested_run_with_params_epochs_score_and_status(searches: dict, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    trials = _children(client, searches["first"])
    assert [t.data.tags["kerasflow.trial_id"] for t in trials] == ["0", "1"]
    for trial in trials:
        assert trial.info.status == "FINISHED" and trial.data.tags["kerasflow.trial_status"] == "COMPLETED"
        assert {"model.layers", "model.units", "training.optimizer.name"} <= set(trial.data.params)
        assert 0 <= trial.data.metrics["score"] <= 1
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, "val_accuracy")]
        assert steps == list(range(len(steps))) and 1 <= len(steps) <= 3

    parent = client.get_run(searches["first"].run_id)
    assert parent.data.tags["kerasflow.kind"] == "tune"
    best = searches["first"].hyperparameters
    expected = {f"tune.best.{k}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in best.items()}
    assert expected.items() <= parent.data.params.items()
    assert parent.data.metrics["tune/best_score"] == pytest.approx(max(t.data.metrics["score"] for t in trials))
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    assert {"tuning/trials.csv", "tuning/scores.png", "tuning/summary.txt"} <= files
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                            artifact_path="tuning/trials.csv",
                                                            tracking_uri=mlflow_store))
    assert list(table["trial_id"]) == [0, 1] and set(table["status"]) == {"COMPLETED"}
    assert {"score", "best_epoch", "model.layers", "training.optimizer.learning_rate"} <= set(table.columns)


def test_a_rerun_continues_the_search(searches: dict, mlflow_store: str) -> None:
    client = mlflow.MlflowClient(mlflow_store)
    second = searches["second"]
    assert second.new_trials == 1 and len(second.trials) == 3
    assert [t.data.tags["kerasflow.trial_id"] for t in _children(client, second)] == ["2"]


def test_cli_tune_prints_the_trials_and_fresh_starts_over(searches: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kerasflow.runtime.cli import app

    args = [f"--set={o}" for o in searches["overrides"] + ["tuning.max_trials=3"]]
    resumed = CliRunner().invoke(app, ["tune", CONFIG, *args])
    assert resumed.exit_code == 0, resumed.output
    assert "3 trials (0 new, 3 resumed" in resumed.output and "val_accuracy" in resumed.output
    assert "best val_accuracy:" in resumed.output and "model.units =" in resumed.output
    assert "trial 0: the configured values" in resumed.output, "the summary says what trial 0 tried"

    fresh = CliRunner().invoke(app, ["tune", CONFIG, *args[:-1], "--set=tuning.max_trials=1", "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "1 trials (1 new, 0 resumed" in fresh.output

    (tmp_path / "plain.yaml").write_text((ROOT / "configs/wine.yaml").read_text())
    untuned = CliRunner().invoke(app, ["tune", str(tmp_path / "plain.yaml")])
    assert untuned.exit_code == 2 and "no tuning section" in untuned.output


def test_run_with_a_tuning_section_refits_the_best_trial_and_tests_it(prefect_harness, mlflow_store: str,
                                                                      tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    result = train_flow(CONFIG, FAST + ["tuning.max_trials=2", "tuning.refit=train+val",
                                        f"tuning.directory={tmp_path}"], fresh=True)
    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    assert len(_children(client, result)) == 2 and result.version
    assert run.data.metrics["train/epochs_run"] == run.data.metrics["tune/best_epoch"]
    assert not client.get_metric_history(run.info.run_id, "train/val_loss"), "train+val refits without validation"
    assert "test/accuracy" in run.data.metrics and any(k.startswith("tune.best.") for k in run.data.params)


@pytest.fixture
def step_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    logger = logging.getLogger("kerasflow")
    handler = LogLines()
    monkeypatch.setattr(logger, "disabled", False)  # Prefect's logging set-up may disable it
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_each_finished_trial_reports_progress_and_the_best_score(step_lines: list[str]) -> None:
    from kerasflow.tasks.tune import MlflowTrialLogger
    from kerasflow.training.trials import TrialRecord

    logger = MlflowTrialLogger(None, "parent", "0", "", max_trials=3, direction="min")
    for trial, score in enumerate([0.5, 0.3, 0.4]):
        logger.report(TrialRecord(trial_id=str(trial), status="COMPLETED", score=score, values={},
                                  best_epoch=2, fold_scores=[score]))
    assert step_lines == ["trial 1/3: score 0.5000 (best 0.5000)", "trial 2/3: score 0.3000 (best 0.3000)",
                          "trial 3/3: score 0.4000 (best 0.3000)"]


def test_epoch_progress_lines_are_throttled_but_show_the_first_and_last_epoch(step_lines: list[str]) -> None:
    from kerasflow.tasks.progress import EpochProgress

    seen = []
    progress = EpochProgress(lambda epoch, logs: seen.append(epoch), total=50, what="train", every=3600)
    for epoch in range(50):
        progress(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 0.5})
    assert seen == list(range(50)), "every epoch reaches the wrapped hook"
    assert step_lines[0] == "train: epoch 1/50  loss 1.0000  val_loss 0.5000" and len(step_lines) == 2
    assert step_lines[1] == "train: epoch 50/50  loss 0.0200  val_loss 0.5000"


def test_on_a_terminal_a_live_bar_counts_the_epochs(step_lines: list[str]) -> None:
    import io

    from kerasflow.tasks.progress import EpochProgress

    terminal = io.StringIO()
    progress = EpochProgress(None, total=5, what="train", bar=True, file=terminal)
    for epoch in range(5):
        progress(epoch, {"loss": 0.5, "val_loss": 0.6})
    progress.close()
    assert progress.bar is None, "closed at the last epoch"
    assert "train:   0%|" in terminal.getvalue() and "0/5" in terminal.getvalue(), "the bar was drawn"
    assert step_lines[-1] == "train: epoch 5/5  loss 0.5000  val_loss 0.6000"


def test_concurrent_folds_show_prefixed_lines_no_bars_at_a_shared_rate(step_lines: list[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from kerasflow.tasks.progress import EpochProgress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # on a terminal
    alone = EpochProgress(None, total=8, what="train")
    assert alone.use_bar and alone.every == 10.0, "one loop: a bar, and a line every 10 s"
    folds = [EpochProgress(None, total=8, what=f"fold {k}/2", concurrent=2) for k in (1, 2)]
    assert [(f.use_bar, f.every) for f in folds] == [(False, 4.0), (False, 4.0)], "two threads: lines only"
    for epoch in range(8):
        for fold in folds:
            fold(epoch, {"loss": 0.5})
    assert [f.bar for f in folds] == [None, None]
    assert step_lines == ["fold 1/2: epoch 1/8  loss 0.5000", "fold 2/2: epoch 1/8  loss 0.5000",
                          "fold 1/2: epoch 8/8  loss 0.5000", "fold 2/2: epoch 8/8  loss 0.5000"]


def test_decoding_an_image_folder_shows_progress_only_when_it_is_slow(step_lines: list[str], tmp_path: Path) -> None:
    from image_data import write_digit_folder

    from kerasflow.data.images import scan_image_folder
    from kerasflow.progress import reporting_progress
    from kerasflow.tasks.progress import LoopProgress

    root = write_digit_folder(tmp_path / "digits", classes=(0, 1), per_class=5)
    with reporting_progress(LoopProgress(after=3600)):
        scan_image_folder(root, "label", [".png"])
    assert step_lines == [], "a loop shorter than `after` prints nothing"
    with reporting_progress(LoopProgress(after=0)):
        scan_image_folder(root, "label", [".png"])
    assert step_lines[0] == "decode digits: image 1/10" and step_lines[-1] == "decode digits: image 10/10"


def test_a_tuning_section_without_a_space_searches_the_family_default_space(prefect_harness, mlflow_store: str,
                                                                            tmp_path: Path) -> None:
    from kerasflow.flows.train import train_flow

    path = tmp_path / "iris_tuned.yaml"
    path.write_text(yaml.safe_dump({
        "name": "iris-default-space", "data": {"source": "iris", "target": "target"},
        "split": {"kind": "holdout", "test_fraction": 0.2, "val_fraction": 0.2},
        "training": {"epochs": 2, "batch_size": 32, "early_stopping": {"enabled": False}},
        "tuning": {"max_trials": 2, "directory": str(tmp_path / "tuning")}}))
    result = train_flow(str(path), [])
    client = mlflow.MlflowClient(mlflow_store)
    params = client.get_run(result.run_id).data.params
    assert params["tuning.space.model.layers.max"] == "4", "the chosen default space is logged with the config"
    assert params["tuning.space.training.optimizer.learning_rate.sampling"] == "log"
    trials = _children(client, result)
    assert len(trials) == 2 and all(t.data.tags["kerasflow.trial_status"] == "COMPLETED" for t in trials)
    assert {"model.layers", "model.units", "preprocessing.numeric_embedding"} <= set(trials[0].data.params)
    assert params["model.hidden_units"] == "[256, 256]"
    same = ("training.optimizer.learning_rate", "model.dropout", "model.l2", "preprocessing.numeric_embedding")
    assert trials[0].data.params == {"model.layers": "2", "model.units": "256", "model.use_dropout": "true",
                                     **{name: params[name] for name in same}}, "trial 0 is the untuned config"
    assert any(k.startswith("tune.best.model.") for k in params) and "accuracy" in result.metrics


def test_a_search_seed_of_0_seeds_the_search() -> None:
    import keras_tuner

    from kerasflow.training.first_trial import configured_first_oracle, oracle_seed

    def oracle(seed: int):
        return configured_first_oracle(objective=keras_tuner.Objective("val_loss", "min"), max_trials=5, seed=seed)

    unseeded = {oracle(0).seed for _ in range(5)}  # Keras Tuner takes 0 as none and draws one
    assert len(unseeded) > 1 or unseeded != {0}
    assert [oracle(oracle_seed(0)).seed for _ in range(3)] == [1, 1, 1]
    assert len({oracle_seed(seed) for seed in (-1, 0, 1, 2)}) == 4 and oracle_seed(-1) == -1


class _Logs(_Recorder):
    """Keeps every trial's epoch logs and fold scores."""

    def __init__(self):
        super().__init__()
        self.logs: dict[str, list[dict]] = {}
        self.scores: dict[str, float] = {}

    def epoch_ended(self, trial_id, label, epoch, logs):
        self.logs.setdefault(trial_id, []).append(logs)

    def fold_ended(self, trial_id, fold, score, best_epoch):
        self.scores[trial_id] = score


def test_trials_are_ranked_on_the_validation_loss_without_the_weight_penalty(tmp_path: Path) -> None:
    from kerasflow.schemas.tuning import ObjectiveConfig
    from kerasflow.training.search import run_search, search_data

    config = load_config(CONFIG, FAST + [
        "tuning.max_trials=2", "training.epochs=2", 'tuning.objective={"name": "val_data_loss"}',
        'tuning.space={"model.l2": {"type": "choice", "values": [0.0, 0.5]}}'])
    frame, split, features, labels = _search_inputs(config, poison=False)
    recorder = _Logs()
    result = run_search(config, search_data(config, frame, split, features, labels), tmp_path / "s",
                        fingerprint="f", hook=recorder)
    assert ObjectiveConfig().name == "val_data_loss"  # the default
    by_l2 = {t.values["model.l2"]: t.trial_id for t in result.trials}
    assert set(by_l2) == {0.0, 0.5}
    for l2, trial in by_l2.items():
        logs = recorder.logs[trial]
        gaps = [epoch["val_loss"] - epoch["val_data_loss"] for epoch in logs]
        assert all(gap > 0.01 for gap in gaps) if l2 else all(gap == 0 for gap in gaps), (l2, gaps)
        assert recorder.scores[trial] == pytest.approx(min(epoch["val_data_loss"] for epoch in logs))
