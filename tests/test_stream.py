"""Streaming mode: Parquet shards read batch by batch, a hash split, exact statistics, a model like any other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from kerasflow.data.load import load_frame
from kerasflow.data.stream import (
    TEST,
    TRAIN,
    VAL,
    StreamManifest,
    assign_partitions,
    check_scan,
    fit_stream_features,
    iter_chunks,
    scan_stream,
    split_stream,
    stream_files,
)
from kerasflow.features.tabular import fit_features

ROOT = Path(__file__).resolve().parents[1]


def write_shards(frame: pd.DataFrame, folder: Path, shards: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), shards)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def test_the_hash_split_is_the_same_in_any_batching_and_close_to_the_fractions() -> None:
    rows = np.arange(1_000_000)
    whole = assign_partitions(rows, seed=3, test_fraction=0.1, val_fraction=0.2)
    pieces = np.concatenate([assign_partitions(rows[i:i + 4096], 3, 0.1, 0.2) for i in range(0, len(rows), 4096)])
    assert np.array_equal(whole, pieces)
    shares = np.bincount(whole, minlength=3) / len(rows)
    assert shares[TEST] == pytest.approx(0.1, abs=0.002) and shares[VAL] == pytest.approx(0.2, abs=0.002)
    assert not np.array_equal(whole, assign_partitions(rows, 4, 0.1, 0.2)), "the seed changes the split"


def test_statistics_from_one_pass_equal_the_in_memory_fit(tmp_path: Path) -> None:
    frame = load_frame("penguins")
    files = stream_files(str(write_shards(frame, tmp_path / "shards")))
    assert [Path(f).name for f in files] == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    scan, sample = scan_stream(files, "species", sample_rows=100)
    assert scan.rows == len(frame) and scan.missing["sex"] == frame["sex"].isna().sum()
    assert len(sample) == len(frame[::3]) and list(sample.index[:3]) == [0, 3, 6], "every 3rd row, by row number"
    manifest, split = split_stream(StreamManifest(files=files, scan=scan, stride=3), 7, 0.2, 0.15)
    assert sum(manifest.sizes.values()) == len(frame) and len(split.train) + len(split.val) + len(split.test) == len(
        sample)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    features, labels = fit_stream_features(manifest, sample.iloc[split.train], numeric, ["island", "sex"], "species",
                                           impute="mean", normalize=True, max_categories=None, task="auto",
                                           encoding="integer", non_finite="fail")
    train_rows = np.flatnonzero(assign_partitions(np.arange(len(frame)), 7, 0.2, 0.15) == TRAIN)
    expected = fit_features(frame.iloc[train_rows], numeric, ["island", "sex"])
    assert np.allclose(features.mean, expected.mean) and np.allclose(features.variance, expected.variance)
    assert features.vocabularies == expected.vocabularies
    assert labels.classes == ["Adelie", "Chinstrap", "Gentoo"]


def test_the_full_pass_finds_what_the_sample_misses(tmp_path: Path) -> None:
    frame = load_frame("breast_cancer")
    frame.loc[401, "mean radius"] = np.inf  # not a sampled row (every 2nd row is)
    frame.loc[403, "target"] = np.nan
    files = stream_files(str(write_shards(frame, tmp_path / "shards")))
    scan, sample = scan_stream(files, "target", sample_rows=len(frame) // 2)
    assert not np.isinf(sample["mean radius"]).any()
    findings = check_scan(scan, "target", "auto", "fail", "shards")
    assert [(f.rule, f.column, f.rows) for f in findings] == [("missing_labels", "target", 1),
                                                              ("non_finite", "mean radius", 1)]
    assert findings[1].examples == [401] and "preprocessing.non_finite" in findings[1].fix
    assert [f.severity for f in check_scan(scan, "target", "auto", "missing", "shards")] == ["error", "warning"]


def test_chunks_carry_row_numbers_across_shards(tmp_path: Path) -> None:
    files = stream_files(str(write_shards(load_frame("iris"), tmp_path / "s")) + "/*.parquet")
    chunks = list(iter_chunks(files, ["target"], batch_rows=40))
    assert [c.index[0] for c in chunks] == [0, 40, 50, 90, 100, 140]
    assert sum(len(c) for c in chunks) == 150


def _cli(*args: str, store: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    return subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def _config(tmp_path: Path, source: Path, **data: object) -> Path:
    config = {"name": "penguins_stream", "data": {"source": str(source), "target": "species", "streaming": True,
                                                  **data},
              "split": {"test_fraction": 0.2, "val_fraction": 0.15, "seed": 7}, "model": {"hidden_units": [16]},
              "training": {"epochs": 4, "batch_size": 16}, "registry": {"model_name": "penguins-stream"}}
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_streamed_table_trains_evaluates_and_registers_through_the_cli(tmp_path: Path, mlflow_store: str) -> None:
    frame = load_frame("penguins")
    shards = write_shards(frame, tmp_path / "shards")
    proc = _cli("run", str(_config(tmp_path, shards)), "--no-lint", store=mlflow_store, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(mlflow_store)
    run_id = proc.stdout.split("MLflow run:")[1].split()[0]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kerasflow.streaming"] == "true"
    sizes = [int(run.data.params[f"split.{k}_rows"]) for k in ("train", "val", "test")]
    assert sum(sizes) == len(frame) and int(run.data.params["data.rows"]) == len(frame)
    test_rows = np.flatnonzero(assign_partitions(np.arange(len(frame)), 7, 0.2, 0.15) == TEST)
    assert sizes[2] == len(test_rows)
    predictions = pd.read_csv(client.download_artifacts(run_id, "evaluation/predictions.csv"))
    assert list(predictions["actual"]) == list(frame["species"].iloc[test_rows]), "every test row, in order"
    model = mlflow.pyfunc.load_model("models:/penguins-stream/1")
    answer = model.predict(frame.drop(columns="species").head(5))
    assert set(answer["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}


def test_infinite_values_anywhere_in_the_stream_are_bad_input(tmp_path: Path, mlflow_store: str) -> None:
    frame = load_frame("penguins")
    frame.loc[301, "body_mass_g"] = np.inf
    proc = _cli("run", str(_config(tmp_path, write_shards(frame, tmp_path / "shards"))), "--no-lint",
                store=mlflow_store, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "body_mass_g" in proc.stderr and "301" in proc.stderr and "Traceback" not in proc.stderr


def test_streaming_refuses_what_it_cannot_do_at_config_validation(tmp_path: Path, mlflow_store: str) -> None:
    path = _config(tmp_path, tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["split"] = {"kind": "kfold", "folds": 3}
    path.write_text(yaml.safe_dump(raw))
    proc = _cli("run", str(path), store=mlflow_store, cwd=ROOT)
    assert proc.returncode == 2 and "split.kind" in proc.stderr and "data.streaming" in proc.stderr


def test_checkpoints_of_a_stream_are_keyed_by_every_row_not_the_sample(tmp_path: Path) -> None:
    from kerasflow.schemas.config import DataConfig
    from kerasflow.training.kinds import kind_of
    from kerasflow.training.resume import checkpoint_root

    def key(frame: pd.DataFrame, folder: Path) -> Path:
        shards = str(write_shards(frame, folder / "shards"))
        files = stream_files(shards)
        scan, sample = scan_stream(files, "target", sample_rows=len(frame) // 4)
        sample.to_parquet(folder / "raw.parquet")
        StreamManifest(files=files, scan=scan, stride=4).save(folder / "stream.json")
        kind = kind_of(DataConfig(source=shards, target="target", streaming=True))
        return checkpoint_root("p", kind.checkpoint_key(folder / "raw.parquet"), "config")

    frame = load_frame("wine")
    changed = frame.copy()
    changed.loc[5, "alcohol"] += 1.0  # row 5 is not in the sample (every 4th row)
    assert key(frame, tmp_path / "a") != key(changed, tmp_path / "b")
