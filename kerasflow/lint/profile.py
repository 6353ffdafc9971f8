"""What the design lint needs to know about the data: size, task, classes, feature ranges, text vocabulary.

A profile is computed from the raw rows (a table, or an image folder's
listing) without fitting anything. This module imports neither Prefect,
MLflow nor TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kerasflow.features.labels import fit_labels
from kerasflow.features.tabular import select_columns
from kerasflow.models.families import family_of, model_outputs, text_section
from kerasflow.schemas.config import ModelSection, PipelineConfig, SplitConfig
from kerasflow.training.kinds import kind_of

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class DataProfile:
    """The facts about a dataset that design rules check a config against.

    Args:
        rows: Rows (files, for an image folder).
        train_rows: Rows the final fit trains on (after the test and validation shares).
        task: `classification` or `regression`, as kerasflow infers or the config sets it.
        classes: Number of classes of the (first) target; 0 for regression.
        target_numeric: The target's values are numbers.
        target_integer: The target's values are whole numbers.
        target_distinct: Distinct target values.
        target_sorted: The target is sorted along the rows (an unshuffled split then splits by label).
        target_mean_square: Mean of the squared target (regression), the loss of a model predicting 0.
        input_width: Width of the model's tabular input (numeric columns plus one-hot levels).
        numeric_std: Standard deviation of each numeric feature.
        categorical_levels: Distinct values of each categorical feature (tabular families only).
        distinct_tokens: Distinct word tokens of the text column, if there is one.
        text_columns: Columns holding free text (`text_columns`).
        text_median_length: Median length in characters of the first text
            column's values, if there is one.
        images: The rows are images (a folder's files or pixel columns; the data kind's `images`).
        image_channels: Channel counts of an image folder's sampled files
            (`{channels: files}`, from their headers); empty when none were sampled.
    """

    rows: int
    train_rows: int
    task: str
    classes: int = 0
    target_numeric: bool = True
    target_integer: bool = False
    target_distinct: int = 0
    target_sorted: bool = False
    target_mean_square: float = 1.0
    input_width: int = 0
    numeric_std: dict[str, float] = field(default_factory=dict)
    categorical_levels: dict[str, int] = field(default_factory=dict)
    distinct_tokens: int | None = None
    text_columns: list[str] = field(default_factory=list)
    text_median_length: float | None = None
    images: bool = False
    image_channels: dict[int, int] = field(default_factory=dict)


def profile_frame(config: PipelineConfig, frame: pd.DataFrame, test_rows: int = 0) -> DataProfile:
    """Profiles raw rows for the design lint.

    Args:
        config: The `PipelineConfig`.
        frame: The raw rows (an image folder's listing has one row per file).
        test_rows: Trailing rows that come from `data.test_source`. Default 0.

    Returns:
        The `DataProfile`.
    """
    target_column = _main_target(config)
    target = frame[target_column] if target_column in frame.columns else pd.Series([], dtype=float)
    task = _task(config, target)
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    values = pd.to_numeric(target, errors="coerce").dropna() if numeric else pd.Series([], dtype=float)
    profile = DataProfile(
        rows=len(frame), train_rows=_train_rows(config.split, len(frame), test_rows), task=task,
        classes=int(target.nunique()) if task == "classification" else 0, target_numeric=numeric,
        target_integer=bool(numeric and len(values) and np.all(np.mod(values, 1) == 0)),
        target_distinct=int(target.nunique()),
        target_sorted=bool(len(target) > 2 and target.nunique() > 1
                           and (target.is_monotonic_increasing or target.is_monotonic_decreasing)),
        target_mean_square=float(np.mean(np.square(values))) if len(values) and task == "regression" else 1.0,
        images=kind_of(config.data).images)
    profile.text_columns = [] if profile.images else text_columns(frame, target_column)
    if profile.text_columns:
        profile.text_median_length = float(frame[profile.text_columns[0]].dropna().astype(str).str.len().median())
    if profile.images and "sampled" in frame.columns:  # an image folder's listing with sampled headers
        counts = frame.loc[frame["sampled"].astype(bool), "channels"].value_counts()
        profile.image_channels = {int(c): int(n) for c, n in counts.sort_index().items()}
    if family_of(config.model).tabular and not profile.images:  # the input width of the encoded columns
        _profile_features(config, frame.drop(columns=profile.text_columns), profile)
    text = _text_column(config.model)
    if text is not None and text in frame.columns:
        tokens: set[str] = set()
        for value in frame[text].dropna().astype(str):
            tokens.update(_TOKEN.findall(value.lower()))
        profile.distinct_tokens = len(tokens)
    return profile


def _main_target(config: PipelineConfig) -> str:
    outputs = model_outputs(config.model)
    return outputs[0].target if outputs else config.data.target


def _task(config: PipelineConfig, target: pd.Series) -> str:
    outputs = model_outputs(config.model)
    wanted = outputs[0].task if outputs else config.data.task
    if wanted != "auto" or target.empty:
        return "classification" if wanted == "auto" else wanted
    return fit_labels(target.dropna(), "auto").task


def _train_rows(split: SplitConfig, rows: int, test_rows: int) -> int:
    pool = rows - test_rows if test_rows else rows * (1 - split.test_fraction)
    if split.kind == "kfold":
        return int(pool)
    return int(pool * (1 - split.val_fraction))


def _profile_features(config: PipelineConfig, frame: pd.DataFrame, profile: DataProfile) -> None:
    d = config.data
    try:
        numeric, categorical = select_columns(frame, d.target, d.features, d.categorical)
    except Exception:  # the data contract reports unusable columns; the lint only profiles usable ones
        return
    stds = frame[numeric].apply(pd.to_numeric, errors="coerce").std()
    profile.numeric_std = {str(c): float(s) for c, s in stds.items() if np.isfinite(s) and s > 0}
    limit = config.preprocessing.max_categories
    profile.categorical_levels = {str(c): min(int(frame[c].nunique()), limit or 10**9) for c in categorical}
    profile.input_width = len(numeric) + sum(profile.categorical_levels.values())


def _text_column(model: ModelSection) -> str | None:
    text = text_section(model)
    return text.columns[0] if text is not None and text.columns else None


def profile_source(config: PipelineConfig) -> DataProfile:
    """Reads the configured data as its data kind does (an image folder is listed, not decoded) and profiles it.

    Args:
        config: The `PipelineConfig`.

    Returns:
        The `DataProfile`.

    Raises:
        DataLoadError: A source cannot be read.
    """
    return profile_frame(config, *kind_of(config.data).profile_rows(config))


def text_columns(frame: pd.DataFrame, target: str) -> list[str]:
    """Columns that hold free text (long, mostly distinct strings), not categories."""
    found = []
    for column in frame.columns:
        if column == target or not (pd.api.types.is_object_dtype(frame[column])
                                    or pd.api.types.is_string_dtype(frame[column])):
            continue
        values = frame[column].dropna().astype(str)
        if len(values) and values.str.len().mean() >= 40 and values.nunique() >= 0.5 * len(values):
            found.append(str(column))
    return found
