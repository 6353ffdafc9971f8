"""Image folders streamed from disk (`data.image.in_memory: false`): the same split, pixels and scores as in memory.

A tiny folder of real PNG digits goes through the image-folder kind twice,
once decoded into memory and once streamed with `tf.data`; the streamed
partitions are file paths, read batch by batch, and decode to exactly the
arrays the in-memory path holds. k-fold and the tuner train on them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from image_data import write_digit_folder

from kerasflow.data.split import Split
from kerasflow.schemas.config import PipelineConfig
from kerasflow.training.image_stream import StreamedImages, should_stream, streamed_bytes
from kerasflow.training.kinds import kind_of
from kerasflow.training.rows import make_partition

TINY = {"kind": "cnn", "filters": [4, 8], "dense_units": [8]}


class Quiet:
    """A `StepLog` that drops what a kind logs (the kinds' logging is tested in test_datakinds)."""

    def tags(self, tags: dict[str, Any]) -> None: ...

    def params(self, params: dict[str, Any], prefix: str = "") -> None: ...

    def metrics(self, metrics: dict[str, float], prefix: str = "", step: int = 0) -> None: ...

    def counts(self, counts: dict[str, float], prefix: str = "") -> None: ...

    def json(self, data: Any, artifact_file: str) -> None: ...

    def text(self, text: str, artifact_file: str) -> None: ...

    def dataset(self, frame: Any, *, source: str, digest: str, target: str, rows: int | None = None) -> None: ...

    def warning(self, message: str) -> None: ...


def _config(source: Path, in_memory: Any, test_source: Path | None = None, **sections: Any) -> PipelineConfig:
    return PipelineConfig.model_validate({
        "name": "stream-images", "model": TINY,
        "data": {"source": str(source), "target": "label", "test_source": str(test_source) if test_source else None,
                 "image": {"size": [16, 16], "channels": 1, "in_memory": in_memory}},
        "split": {"test_fraction": 0.25, "val_fraction": 0.25, "seed": 3},
        "training": {"epochs": 2, "batch_size": 8, "seed": 5}, **sections})


def _prepare(config: PipelineConfig, workdir: Path) -> tuple[Any, str, str, Any]:
    kind = kind_of(config.data)
    workdir.mkdir(parents=True, exist_ok=True)
    raw = kind.load(config, str(workdir), Quiet())
    split_path = kind.split(config, raw, str(workdir), Quiet())
    fitted = kind.fit_features(config, raw, split_path)
    return kind, raw, split_path, fitted


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("stream") / "digits", classes=(0, 1, 7), per_class=12)


def test_auto_streams_a_folder_whose_decoded_images_outgrow_the_budget() -> None:
    assert streamed_bytes(1000, (32, 32, 3)) == 1000 * 32 * 32 * 3 * 4
    plenty = 64 * 2**30
    assert not should_stream("auto", 5_000, (32, 32, 3), available=plenty)  # 61 MB: in memory
    assert should_stream("auto", 50_000, (32, 32, 3), available=plenty)  # 614 MB: over 256 MiB
    assert should_stream("auto", 5_000, (32, 32, 3), available=256 * 2**20)  # over an eighth of what is free
    assert should_stream(False, 10, (8, 8, 1)) and not should_stream(True, 10**7, (256, 256, 3))


def test_a_streamed_folder_splits_decodes_and_scores_as_in_memory(folder: Path, tmp_path: Path) -> None:
    from kerasflow.models.families import build_model
    from kerasflow.training.evaluate import evaluate_model
    from kerasflow.training.final import model_spec

    memory = _prepare(_config(folder, True), tmp_path / "memory")
    streamed = _prepare(_config(folder, False), tmp_path / "streamed")
    assert not memory[3].features.streamed and streamed[3].features.streamed
    assert streamed[3].params["streamed"] is True
    split_a, split_b = Split.load(memory[2]), Split.load(streamed[2])
    assert (split_a.train, split_a.val, split_a.test) == (split_b.train, split_b.val, split_b.test)

    frame, labels = pd.read_parquet(streamed[1]), streamed[3].labels
    held = make_partition(frame, split_b.test, memory[3].features, labels)
    lazy = make_partition(frame, split_b.test, streamed[3].features, labels)
    assert isinstance(lazy.x, StreamedImages) and len(lazy.x) == len(held) == len(split_b.test)
    batches = list(lazy.x.dataset(lazy.y, batch_size=4).as_numpy_iterator())
    assert np.array_equal(np.concatenate([x["image"] for x, _ in batches]), held.x["image"])  # same pixels, in order
    assert np.array_equal(np.concatenate([y for _, y in batches]), held.y)

    config = _config(folder, False)
    model = build_model(None, model_spec(config, streamed[3].features, labels))
    result = streamed[0].train(config, model, streamed[1], streamed[2], streamed[3].features, labels)
    assert result.epochs_run == 2 and "val_loss" in result.history and np.isfinite(result.history["loss"]).all()
    scored_lazy, predictions = evaluate_model(model, lazy.x, lazy.raw_y, labels, lazy.y)
    scored_held, _ = evaluate_model(model, held.x, held.raw_y, labels, held.y)
    assert len(predictions) == len(split_b.test)
    for name, value in scored_held.metrics.items():  # one model, both readings: the same scores
        assert scored_lazy.metrics[name] == pytest.approx(value, abs=1e-5), name


@pytest.mark.slow  # k-fold, a one-trial search and a test folder: 7 s quiet, ~40 s at load 20
def test_k_fold_the_tuner_and_a_test_folder_work_streamed(folder: Path, tmp_path: Path) -> None:
    from kerasflow.training.cv import train_fold
    from kerasflow.training.search import run_search, search_data

    tests = write_digit_folder(tmp_path / "tests", classes=(0, 1, 7), per_class=3)
    config = _config(folder, False, tests, split={"kind": "kfold", "folds": 2, "test_fraction": 0.25, "seed": 3},
                     tuning={"tuner": "random", "max_trials": 1, "objective": {"name": "val_loss"},
                             "space": {"model.dense_units": {"type": "choice", "values": [4, 8]}}})
    kind, raw, split_path, fitted = _prepare(config, tmp_path / "kfold")
    frame, split = pd.read_parquet(raw), Split.load(split_path)
    assert len(split.folds) == 2 and fitted.features.streamed
    assert split.test == list(range(36, 45))  # data.test_source: the test folder's files, after the training files
    assert all(path.startswith(str(tests.resolve())) for path in frame["path"].iloc[split.test])
    fold = train_fold(config, frame, split.folds[0], 0, fitted.features, fitted.labels)
    assert 0 <= fold.metrics["accuracy"] <= 1 and len(fold.predictions["row"]) == len(split.folds[0][1])
    data = search_data(config, frame, split, fitted.features, fitted.labels)
    assert all(isinstance(train.x, StreamedImages) for train, _ in data.folds)
    result = run_search(config, data, tmp_path / "search", fingerprint="f")
    assert [r.status for r in result.trials] == ["COMPLETED"]
