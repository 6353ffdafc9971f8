"""Train/validation/test holdout splits and k folds, from scikit-learn splitters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kerasflow.errors import BadInputError


class SplitError(BadInputError):
    """The data cannot be split as configured."""

    label = "cannot split the data"


@dataclass
class Split:
    """Row positions of each partition of one dataset.

    Args:
        train: Positions of training rows.
        val: Positions of validation rows (empty in k-fold mode).
        test: Positions of the untouched test rows.
        folds: For k-fold, `(train, val)` position lists per fold, all
            drawn from the non-test rows.
    """

    train: list[int]
    val: list[int]
    test: list[int]
    folds: list[tuple[list[int], list[int]]] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        """Returns the number of rows in each partition."""
        return {"train_rows": len(self.train), "val_rows": len(self.val), "test_rows": len(self.test)}

    def save(self, path: str | Path) -> Path:
        """Writes the split as JSON and returns the path."""
        data = {"train": self.train, "val": self.val, "test": self.test, "folds": self.folds}  # not asdict: it deep-copies every position
        Path(path).write_text(json.dumps(data))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        """Reads a split written by `save`."""
        data = json.loads(Path(path).read_text())
        data["folds"] = [(list(t), list(v)) for t, v in data.get("folds", [])]
        return cls(**data)


def split_holdout(
    labels: pd.Series,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    stratify: bool = True,
    shuffle: bool = True,
    seed: int = 42,
) -> Split:
    """Splits rows into train, validation and test sets.

    Args:
        labels: Label of each row; used for stratification when `stratify`.
            Pass `None`-free labels; the index is ignored.
        test_fraction: Share of all rows for test. Default 0.2.
        val_fraction: Share of all rows for validation. Default 0.1.
        stratify: Keep class proportions in every partition. Default true.
        shuffle: Shuffle rows first. Default true.
        seed: Seed of the splitter. Default 42.

    Returns:
        A `Split` with disjoint position lists.

    Raises:
        SplitError: Too few rows or too few members of a class.
    """
    positions = np.arange(len(labels))
    strata = labels.to_numpy() if stratify else None
    rest, test = _cut(positions, strata, test_fraction, shuffle, seed)
    rest_strata = strata[rest] if strata is not None else None
    val_share = val_fraction / (1.0 - test_fraction) if val_fraction else 0.0
    train, val = _cut(rest, rest_strata, val_share, shuffle, seed)
    return Split(train=sorted(train.tolist()), val=sorted(val.tolist()), test=sorted(test.tolist()))


def split_kfold(
    labels: pd.Series,
    *,
    folds: int = 5,
    test_fraction: float = 0.2,
    stratify: bool = True,
    shuffle: bool = True,
    seed: int = 42,
) -> Split:
    """Keeps a test set aside, then divides the rest into k folds.

    Args:
        labels: Label of each row.
        folds: Number of folds. Default 5.
        test_fraction: Share of rows held out for test; 0 keeps none. Default 0.2.
        stratify: Stratified folds and test split. Default true.
        shuffle: Shuffle rows first. Default true.
        seed: Seed of the splitters. Default 42.

    Returns:
        A `Split` whose `train` holds every non-test row and whose `folds`
        hold `(train, val)` positions.

    Raises:
        SplitError: Too few rows or class members for the folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold  # deferred: loads while validation runs

    positions = np.arange(len(labels))
    strata = labels.to_numpy() if stratify else None
    rest, test = _cut(positions, strata, test_fraction, shuffle, seed)
    splitter_cls = StratifiedKFold if stratify else KFold
    splitter = splitter_cls(n_splits=folds, shuffle=shuffle, random_state=seed if shuffle else None)
    try:
        pairs = list(splitter.split(rest, strata[rest] if strata is not None else None))
    except ValueError as exc:
        raise SplitError(f"cannot make {folds} folds from {len(rest)} rows: {exc}") from None
    fold_lists = [(sorted(rest[t].tolist()), sorted(rest[v].tolist())) for t, v in pairs]
    return Split(train=sorted(rest.tolist()), val=[], test=sorted(test.tolist()), folds=fold_lists)


def class_balance(labels: pd.Series, split: Split) -> dict[str, dict[str, int]]:
    """Counts rows per class in each partition.

    Args:
        labels: Label of each row.
        split: The split.

    Returns:
        `{partition: {class: count}}` for train, val and test.
    """
    values = labels.astype(str).to_numpy()
    parts = {"train": split.train, "val": split.val, "test": split.test}
    return {name: dict(pd.Series(values[idx]).value_counts().sort_index().items()) for name, idx in parts.items()}


def _cut(
    positions: np.ndarray, strata: np.ndarray | None, fraction: float, shuffle: bool, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split  # deferred: loads while validation runs

    if fraction <= 0:
        return positions, positions[:0]
    try:
        keep, held = train_test_split(
            positions, test_size=fraction, stratify=strata, shuffle=shuffle, random_state=seed
        )
    except ValueError as exc:
        raise SplitError(f"cannot hold out {fraction:.0%} of {len(positions)} rows: {exc}") from None
    return np.asarray(keep), np.asarray(held)
