"""Config section of what is reported on the test split, sliced evaluation included.

    evaluation:
      slices: [sex, island, {column: body_mass_g, bins: 4}]
      min_slice_rows: 30

This module imports only `kerasflow.schemas.base`, so `kerasflow.schemas.config` can import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from kerasflow.schemas.base import Section

DEFAULT_BINS = 4
DEFAULT_BASELINE_ROWS = 100_000  # training rows the baseline fits on at most (measured: docs/scaling.md)
MIN_BASELINE_ROWS = 100  # a smaller sample says little about what the features can do


class SliceSpec(Section):
    """One column to slice the test rows by.

    Args:
        column: The raw column (it need not be a model input).
        bins: Quantile bins of a numeric column, cut at the training rows'
            quantiles. Default: 4 for a numeric column; a categorical
            (non-numeric, or listed in `data.categorical`) column is sliced
            by value.
    """

    column: Annotated[str, Field(min_length=1)]
    bins: Annotated[int, Field(ge=2, le=50)] | None = None


class EvaluationConfig(Section):
    """What is reported on the test split.

    Args:
        classification_report: Log scikit-learn's report. Default true.
        confusion_matrix: Log a confusion-matrix PNG. Default true.
        baseline: Fit a scikit-learn baseline on the same training rows and
            score it on the same test rows (HistGradientBoosting on a
            table, TF-IDF and a linear model on text, none on images),
            logged as `baseline/<metric>` and printed beside the network's
            result. Default true.
        baseline_rows: Fit the baseline on at most this many training
            rows: above it, on a random sample of them drawn with
            `training.seed` (stratified by class for a classifier), still
            scored on every test row; `null` fits on all of them. Logged as
            the param `baseline.rows`. Default 100,000 (on a 1M-row table,
            boosting's test accuracy within 0.005 of a fit on all 800,000
            training rows, for an eighth of its CPU; docs/scaling.md).
            At least 100.
        slices: Columns to slice the test rows by, each a name or
            `{column, bins}`: every slice gets the whole test set's metrics
            (`evaluation/slices.json`), and the worst gated slice's value is
            logged as `test/slice_min.<metric>` (`slice_max.` for losses and
            errors), which gate thresholds may name. Default none.
        min_slice_rows: Slices with fewer test rows are reported but not
            gated (nor counted in `slice_min.*`). Default 30.
    """

    classification_report: bool = True
    confusion_matrix: bool = True
    baseline: bool = True
    baseline_rows: Annotated[int, Field(ge=MIN_BASELINE_ROWS)] | None = DEFAULT_BASELINE_ROWS
    slices: list[str | SliceSpec] = Field(default_factory=list)
    min_slice_rows: Annotated[int, Field(ge=1)] = 30

    @property
    def slice_specs(self) -> list[SliceSpec]:
        """The slices, each as a `SliceSpec`."""
        return [SliceSpec(column=s) if isinstance(s, str) else s for s in self.slices]


def slice_problems(evaluation: EvaluationConfig, image: object, source: str, streaming: bool) -> list[tuple[str, str]]:
    """Refuses sliced evaluation where the test rows have no table columns to slice by.

    Args:
        evaluation: The `evaluation` section.
        image: `data.image` (None for tables).
        source: `data.source`.
        streaming: `data.streaming`.

    Returns:
        `(path, message)` pairs; empty when slicing applies.
    """
    if not evaluation.slices:
        return []
    if image is not None and Path(source).expanduser().is_dir():
        return [("evaluation.slices", "slices are not applicable to an image folder (its rows are files, with no "
                                      "columns to slice by); remove evaluation.slices")]
    if streaming:
        return [("evaluation.slices", "data.streaming scores the test rows batch by batch, which does not support "
                                      "sliced evaluation yet; remove evaluation.slices or set data.streaming: false")]
    return []
