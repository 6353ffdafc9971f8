"""Splits come from scikit-learn splitters, are seeded, disjoint and stratified."""

from __future__ import annotations

import pandas as pd
import pytest

from kerasflow.data.load import load_frame
from kerasflow.data.split import Split, SplitError, class_balance, split_holdout, split_kfold


@pytest.fixture(scope="module")
def labels() -> pd.Series:
    return load_frame("iris")["target"]


def test_holdout_sets_are_disjoint_and_complete(labels: pd.Series) -> None:
    split = split_holdout(labels, test_fraction=0.2, val_fraction=0.1, seed=1)
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(len(labels)))
    assert len(test) == 30 and len(val) == 15


def test_holdout_is_seeded_and_stratified(labels: pd.Series) -> None:
    a = split_holdout(labels, seed=7)
    assert a == split_holdout(labels, seed=7)
    assert a.test != split_holdout(labels, seed=8).test
    balance = class_balance(labels, a)["test"]
    assert set(balance.values()) == {10}


def test_kfold_keeps_test_aside(labels: pd.Series) -> None:
    split = split_kfold(labels, folds=5, test_fraction=0.2, seed=3)
    assert len(split.folds) == 5
    for train, val in split.folds:
        assert not set(train) & set(val)
        assert not (set(train) | set(val)) & set(split.test)
    assert sorted(v for _, val in split.folds for v in val) == split.train


def test_kfold_without_test(labels: pd.Series) -> None:
    assert split_kfold(labels, folds=3, test_fraction=0.0).test == []


def test_too_small_to_split() -> None:
    with pytest.raises(SplitError, match="cannot"):
        split_kfold(pd.Series(["a", "b", "a"]), folds=5)


def test_roundtrip(tmp_path, labels: pd.Series) -> None:
    split = split_kfold(labels, folds=3)
    assert Split.load(split.save(tmp_path / "s.json")) == split


def test_raw_rows_come_from_the_parquet_footer(tmp_path) -> None:
    from kerasflow.data.holdout import raw_rows, save_raw

    path = save_raw(pd.DataFrame({"x": range(7), "y": list("abcdefg")}), tmp_path / "raw.parquet", test_rows=0)
    (tmp_path / "listing.csv").write_text("x\n1\n")
    assert raw_rows(path) == 7
    assert raw_rows(tmp_path / "listing.csv") is None and raw_rows(tmp_path / "missing.parquet") is None
