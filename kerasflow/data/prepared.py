"""The paths the data steps hand to training, tuning and evaluation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Prepared:
    """Paths produced by the data steps, passed to training and evaluation.

    Args:
        raw: Raw rows as Parquet.
        split: The `Split` JSON.
        features: The fitted `FeatureSpec` (or `ImageSpec`) JSON.
        labels: The `LabelSpec` (or `OutputsSpec`) JSON.
        reference: The training rows' drift reference JSON
            (`kerasflow.data.drift.Reference`), computed while fitting the
            preprocessing, so that registration reads no rows.
    """

    raw: str
    split: str
    features: str
    labels: str
    reference: str
