"""Strong defaults: a config with only `name` and `data` gets sections chosen from the data's size and task,
and a `tuning` section without a `space` its model family's default space."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from kerasflow.lint.choose import choose_defaults, lint_profile
from kerasflow.lint.defaults import default_sections, describe_defaults
from kerasflow.lint.profile import profile_source
from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def _only_data(bundled: str, tmp_path: Path, **extra: object) -> str:
    raw = yaml.safe_load((ROOT / "configs" / bundled).read_text())
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump({"name": raw["name"], "data": raw["data"], **extra}))
    return str(path)


def _defaulted(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    """The config as a run completes it (`choose-defaults`, after `read-config`)."""
    return choose_defaults(load_config(path, overrides), path).config


def test_small_tables_get_kfold_and_a_wide_dense_network(tmp_path: Path) -> None:
    config = _defaulted(_only_data("iris.yaml", tmp_path))
    assert (config.split.kind, config.split.folds, config.split.final) == ("kfold", 5, "ensemble")
    assert config.model.kind == "dense" and config.model.hidden_units == [256, 256]
    assert config.model.initializer.name == "he_normal" and config.model.dropout == 0.1
    training = config.training
    assert training.early_stopping.enabled and training.early_stopping.restore_best_weights
    assert training.reduce_lr.enabled and training.batch_size == 32
    assert (training.optimizer.name, training.optimizer.learning_rate, training.early_stopping.patience) == \
        ("adamw", 2e-3, 16), "below 2,000 rows the dense network trains with TabM's recipe"


def test_the_kfold_threshold_is_the_model_family_s(tmp_path: Path) -> None:
    """Dense tables are cross-validated below 10,000 rows, other families below 2,000; streamed tables never."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    path = tmp_path / "digits_x3.csv"
    pd.concat([frame] * 3).to_csv(path, index=False)
    raw = {"name": "digits_x3", "data": {"source": str(path), "target": "target"}}
    only_data = tmp_path / "digits_x3.yaml"
    only_data.write_text(yaml.safe_dump(raw))
    config = _defaulted(str(only_data))
    assert config.model.kind == "dense" and config.split.kind == "kfold", "5,391 rows < 10,000 for dense"
    chosen = choose_defaults(load_config(only_data), str(only_data))
    assert "(5 folds, 5,391 rows < 10,000 for dense)" in chosen.describe()
    assert (config.training.optimizer.name, config.training.early_stopping.patience) == ("adam", 20), \
        "5,391 rows >= 2,000: Adam"
    tabm = _defaulted(str(only_data), ["model.kind=tabm"])
    assert tabm.split.kind == "holdout", "5,391 rows >= 2,000 for tabm"
    config = _defaulted(_only_data("digits.yaml", tmp_path), ["split.kind=holdout"])
    assert config.split.kind == "holdout" and config.model.hidden_units == [256, 256]
    text = _defaulted(_only_data("fine_foods_bow.yaml", tmp_path))
    assert text.model.kind == "text" and text.split.kind == "holdout", "4,000 rows >= 2,000 for text"
    streamed = _defaulted(_only_data("iris.yaml", tmp_path), ["data.streaming=true"])
    assert streamed.split.kind == "holdout", "a streamed table cannot be k-folded"


def test_text_and_image_data_get_their_model_kinds(tmp_path: Path) -> None:
    text = _defaulted(_only_data("fine_foods_bow.yaml", tmp_path))
    assert text.model.kind == "text" and text.model.column == "review"
    assert text.model.vectorize.output_mode == "tf_idf"
    assert text.model.vectorize.union[0].analyzer == "char_wb", "median 277 characters: words and char n-grams too"
    assert text.training.early_stopping.patience == 6, "the text family's own training defaults"
    assert "test_fraction" not in text.split.model_fields_set, "a test file: no fraction for unused-test-fraction"
    images = _defaulted(_only_data("digits_folder.yaml", tmp_path))
    assert images.model.kind == "cnn"
    assert images.model.head_dropout == 0.3, "validation inserts a `model` for image data; the file's keys decide"
    assert images.model.convs_per_block == 2 and images.training.epochs == 60, "the CNN's own training defaults"


def test_sections_the_config_sets_are_kept(tmp_path: Path) -> None:
    config = _defaulted(_only_data("iris.yaml", tmp_path, model={"hidden_units": [7]}), ["split.kind=holdout"])
    assert config.model.hidden_units == [7] and config.split.kind == "holdout"
    assert config.training.reduce_lr.enabled, "the training section is still chosen"
    bundled = load_config(ROOT / "configs/iris.yaml")
    given = set(yaml.safe_load((ROOT / "configs/iris.yaml").read_text()))
    assert default_sections(bundled, profile_source(bundled), given) == {}


def test_the_lint_command_checks_the_config_as_a_run_completes_it(tmp_path: Path) -> None:
    path = _only_data("iris.yaml", tmp_path)
    config, profile = lint_profile(load_config(path), path)
    assert config == _defaulted(path) and config.split.kind == "kfold"
    assert profile.train_rows == int(profile.rows * 0.8), "k-fold trains on every non-test row"


def test_a_tuning_section_without_a_space_searches_the_family_default_space(tmp_path: Path) -> None:
    path = _only_data("iris.yaml", tmp_path, tuning={"max_trials": 2})
    written = load_config(path)
    assert written.tuning.space is None and written.tuning.max_trials == 2, "space is optional"
    defaulted = choose_defaults(written, path)
    space = defaulted.config.tuning.space
    assert {"training.optimizer.learning_rate", "model.layers", "model.units", "model.dropout", "model.l2",
            "preprocessing.numeric_embedding"} <= set(space), "what the tabular literature tunes"
    assert space["training.optimizer.learning_rate"].sampling == "log"
    assert space["preprocessing.numeric_embedding"].values == ["none", "periodic", "piecewise_linear"]
    assert defaulted.config.preprocessing.numeric_embedding == "piecewise_linear", "the defaults' own, still searched"
    assert defaulted.config.tuning.max_trials == 2, "the section's own values are kept"
    assert "tuning space of the model family: training.optimizer.learning_rate" in defaulted.describe()


def test_each_family_chooses_its_own_space_and_a_given_one_is_kept(tmp_path: Path) -> None:
    path = _only_data("iris.yaml", tmp_path, tuning={"max_trials": 2})
    tabm = _defaulted(path, ["model.kind=tabm"]).tuning.space
    assert {"model.depth", "model.width", "model.dropout", "model.weight_decay"} <= set(tabm)
    assert "model.layers" not in tabm and tabm["training.optimizer.learning_rate"].max == 5e-3
    fixed = _defaulted(path, ["preprocessing.numeric_embedding=periodic"]).tuning.space
    assert "preprocessing.numeric_embedding" not in fixed, "the config fixes the encoding: not searched"
    given = {"model.units": {"type": "int", "min": 8, "max": 16}}
    own = _only_data("iris.yaml", tmp_path, tuning={"space": given}, split={"kind": "holdout"},
                     model={"hidden_units": [8]}, training={"epochs": 3})
    assert not choose_defaults(load_config(own), own).chosen, "nothing left out: nothing read or chosen"
    text = _defaulted(_only_data("fine_foods_bow.yaml", tmp_path, tuning={"max_trials": 2})).tuning.space
    assert set(text) == {"training.optimizer.learning_rate", "model.units", "model.dropout"}, "a smaller space"


def test_an_empty_space_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tuning.space"):
        load_config(_only_data("iris.yaml", tmp_path, tuning={"space": {}}))


def test_a_chosen_dense_model_embeds_numbers_piecewise_linearly_unless_the_file_says_otherwise(tmp_path: Path) -> None:
    config = _defaulted(_only_data("iris.yaml", tmp_path))
    assert config.preprocessing.numeric_embedding == "piecewise_linear"
    written = _defaulted(_only_data("iris.yaml", tmp_path, preprocessing={"impute": "median"}))
    assert (written.preprocessing.impute, written.preprocessing.numeric_embedding) == ("median", "piecewise_linear")
    kept = _defaulted(_only_data("iris.yaml", tmp_path, preprocessing={"numeric_embedding": "periodic"}))
    assert kept.preprocessing.numeric_embedding == "periodic"
    own_model = _defaulted(_only_data("iris.yaml", tmp_path, model={"hidden_units": [7]}))
    assert own_model.preprocessing.numeric_embedding == "none", "only a chosen model brings its embedding"
    path = _only_data("iris.yaml", tmp_path)
    chosen = default_sections(load_config(path), profile_source(load_config(path)), {"name", "data"})
    assert describe_defaults(chosen, profile_source(load_config(path))).endswith("numeric embedding piecewise_linear; "
                                                                                 "training batch 32, learning rate "
                                                                                 "0.002, up to 300 epochs, early "
                                                                                 "stopping, lr schedule")


def test_a_chosen_dense_model_embeds_categorical_columns_of_many_levels_from_1000_rows(tmp_path: Path) -> None:
    """Above 32 levels a categorical column is embedded (mlc_churn's 51 states), from 1,000 rows; else one-hot."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    frame["ink_top_row"] = "ink" + frame[[f"pixel_0_{i}" for i in range(8)]].sum(axis=1).astype(int).astype(str)
    assert frame["ink_top_row"].nunique() > 32 and len(frame) >= 1000

    def defaulted(rows: pd.DataFrame, name: str) -> PipelineConfig:
        rows.to_csv(tmp_path / f"{name}.csv", index=False)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "data": {"source": str(tmp_path / f"{name}.csv"),
                                                               "target": "target"}}))
        chosen = choose_defaults(load_config(path), str(path))
        assert ("categorical columns of more than 32 levels embedded" in chosen.describe()) == (
            chosen.config.preprocessing.categorical_embedding is not None)
        return chosen.config

    embedded = defaulted(frame, "digits_ink").preprocessing
    assert (embedded.categorical_embedding.above, embedded.numeric_embedding) == (32, "piecewise_linear")
    assert defaulted(frame.head(999), "digits_ink_999").preprocessing.categorical_embedding is None
    common = frame["ink_top_row"].value_counts().index[:31]
    thirty_two = frame.assign(ink_top_row=frame["ink_top_row"].where(frame["ink_top_row"].isin(common), "other"))
    assert defaulted(thirty_two, "digits_ink_32").preprocessing.categorical_embedding is None, "32 levels stay one-hot"
