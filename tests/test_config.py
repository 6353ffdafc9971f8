"""Config validation: unknown keys, wrong types and impossible values name their path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kerasflow.schemas.config import ConfigError, PipelineConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _base() -> dict:
    return {"name": "t", "data": {"source": "iris", "target": "target"}}


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_configs_validate(config: Path) -> None:
    assert isinstance(load_config(config), PipelineConfig)


def test_defaults_fill_every_section(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, _base()))
    assert cfg.split.kind == "holdout" and cfg.training.optimizer.name == "adam"
    assert cfg.model_name == "t"


@pytest.mark.parametrize(
    ("patch", "path", "fragment"),
    [
        ({"data": {"source": "iris", "target": "target", "colour": 1}}, "data.colour", "allowed: categorical"),
        ({"training": {"epochs": -3}}, "training.epochs", "greater than 0"),
        ({"training": {"epochs": "many"}}, "training.epochs", "valid integer"),
        ({"model": {"activation": "relux"}}, "model.activation", "'leaky_relu'"),
        ({"training": {"optimizer": {"name": "sgdd"}}}, "training.optimizer.name", "'rmsprop'"),
        ({"split": {"test_fraction": 0.5, "val_fraction": 0.5}}, "split", "must be below 1"),
        ({"model": {"dropout": 1.5}}, "model.dropout", "less than 1"),
        ({"bogus_section": {}}, "bogus_section", "unknown key"),
    ],
)
def test_bad_values_name_their_path(tmp_path: Path, patch: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, {**_base(), **patch}))
    line = next(p for p in err.value.problems if p.startswith(f"{path}:"))
    assert fragment in line


def test_every_problem_is_listed(tmp_path: Path) -> None:
    data = {**_base(), "training": {"epochs": 0, "batch_size": -1}}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    assert len(err.value.problems) == 2


def test_yaml_is_never_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, _base())
    assert load_config(path, ["training.epochs=3", "model.hidden_units=[8, 4]"]).model.hidden_units == [8, 4]
    with pytest.raises(ConfigError, match="training.epochs"):
        load_config(path, ["training.epochs=-1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["nonsense"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
