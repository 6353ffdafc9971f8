"""Config section of what a registered version must pass before an alias moves to it.

It is the top-level `promotion` section of a pipeline config:

    promotion:
      infra_validation: load_and_query
      canary_rows: 50
      tolerance: 1.0e-5
      compare: {metric: accuracy, confidence: 0.95, rule: superiority, margin: 0.0}

`registry` says where a model is registered and which metric bounds bless
it (`registry.thresholds`, `registry.gate`); `promotion` says what a
registered version must show before `candidate` or `champion` may point at
it, whatever its metrics.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from kerasflow.schemas.base import Section

InfraMode = Literal["load_only", "load_and_query", "off"]
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
ROW_METRICS = ("accuracy", "f1_macro", "f1_weighted", "recall_min", "roc_auc", "roc_auc_ovr",
               "mae", "mse", "rmse", "r2")
_PER_CLASS = re.compile(r"^class\..+\.(precision|recall|f1)$")


def comparable_metric(name: str) -> bool:
    """Whether a test metric has a per-row form the bootstrap can resample.

    Args:
        name: The metric's name, without a head prefix (`accuracy`,
            `class.3.recall`, `mae`).

    Returns:
        True for accuracy, F1, per-class precision/recall/F1, the least
        recall, ROC AUC, MAE, MSE, RMSE and R²; False for Keras's `loss`
        and anything else.
    """
    return name in ROW_METRICS or bool(_PER_CLASS.match(name))


class CompareConfig(Section):
    """A noise-aware champion/challenger comparison on the same test rows.

    Both models score the challenger's test rows; a paired bootstrap
    gives a confidence interval of the challenger's improvement on
    `metric` (`challenger - champion`, or `champion - challenger` for
    errors such as `mae`). The challenger is promoted only if the
    interval's lower bound clears the rule: above `margin` for
    `superiority`, above `-margin` for `non_inferiority`.

    Args:
        metric: The compared test metric, e.g. `accuracy`, `f1_macro`,
            `roc_auc`, `mae`, `rmse`, `class.<name>.recall`, or
            `<head>.<metric>` for a multi-output model.
        confidence: The interval's level. Default 0.95.
        rule: `superiority` (default): the challenger must be better by
            more than `margin`; `non_inferiority`: it must not be worse
            by `margin` or more.
        margin: In the metric's units. Default 0.
        resamples: Bootstrap resamples. Default 1000.
        seed: Seed of the resampling. Default `training.seed`.
    """

    metric: Annotated[str, Field(min_length=1, max_length=200)]
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = DEFAULT_CONFIDENCE
    rule: Literal["superiority", "non_inferiority"] = "superiority"
    margin: Annotated[float, Field(ge=0.0)] = 0.0
    resamples: Annotated[int, Field(ge=100, le=100_000)] = DEFAULT_RESAMPLES
    seed: int | None = None

    @field_validator("metric")
    @classmethod
    def _row_metric(cls, name: str) -> str:
        head, _, rest = name.partition(".")
        if comparable_metric(name) or (rest and comparable_metric(rest)):
            return name
        raise ValueError(f"{name!r} cannot be compared row by row; use one of {', '.join(ROW_METRICS)}, "
                         "class.<name>.<precision|recall|f1>, or <head>.<metric> (Keras's loss has no per-row form)")


class PromotionConfig(Section):
    """The checks a registered version passes before any alias moves to it.

    Args:
        infra_validation: Infra validation, in the manner of TFX's
            InfraValidator: the version is loaded from its registry URI
            (`models:/NAME/VERSION`) in a fresh Python process, as `mlflow
            models serve` loads it. `load_only` checks that it loads;
            `load_and_query` (default) also scores the logged input example
            and `canary_rows` test rows through the same pyfunc and checks
            the outputs equal the in-process evaluation's; `off` skips it.
            A version that fails gets no alias.
        canary_rows: Test rows scored by `load_and_query` (evenly spaced
            over the test split). Default 50; 0 scores the input example only.
        tolerance: Largest relative difference between a served and an
            evaluated number (probabilities, regression values). Default 1e-5.
        timeout_seconds: How long the fresh process may take to load and
            score. Default 600.
        compare: The noise-aware comparison with the champion in
            `retrain` (see `CompareConfig`). Default none: change rules
            (`registry.gate.changes`) compare point estimates only. Its
            `confidence`, `resamples` and `seed` also set the test-metric
            intervals every run logs.
        slice_margin: In `retrain`, refuse a challenger whose metric on any
            gated slice (one with `evaluation.min_slice_rows` rows, a metric
            a `slice_min.*`/`slice_max.*` threshold names) is worse than the
            champion's logged value on that slice by more than this, e.g.
            0.02. Default none: slices are not compared with the champion.
    """

    infra_validation: InfraMode = "load_and_query"
    canary_rows: Annotated[int, Field(ge=0, le=10_000)] = 50
    tolerance: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-5
    timeout_seconds: Annotated[float, Field(gt=0.0)] = 600.0
    compare: CompareConfig | None = None
    slice_margin: Annotated[float, Field(ge=0.0)] | None = None
