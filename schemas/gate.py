"""Config sections of the champion/challenger gate and the drift check.

They live under `registry` in a pipeline config:

    registry:
      model_name: digits-dense
      gate:
        thresholds:
          - {metric: accuracy, min: 0.90}
          - {metric: loss, max: 0.5}
        changes:
          - {metric: accuracy, direction: higher, min_delta: -0.005}
          - {metric: loss, direction: lower, min_relative_delta: -0.05}
      drift: {method: psi, threshold: 0.2, on_drift: fail}

and the rule of the `candidate` alias against the run's scikit-learn baseline:

    registry:
      beats_baseline: {margin: 0.005}     # or `true` (margin 0)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kerasflow.schemas.base import Fraction, Section

MetricName = Annotated[str, Field(min_length=1, max_length=200)]


class ValueThreshold(Section):
    """A bound on one test metric of the challenger.

    Args:
        metric: Test metric name, e.g. `accuracy`, `loss`, `f1_macro`, `mae`,
            `class.3.recall`.
        min: The metric must be at least this. Default none.
        max: The metric must be at most this. Default none.
    """

    metric: MetricName
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> "ValueThreshold":
        if self.min is None and self.max is None:
            raise ValueError(f"threshold on {self.metric!r} needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"threshold on {self.metric!r} has min {self.min} above max {self.max}")
        return self


class ChangeThreshold(Section):
    """A bound on how a challenger's metric may differ from the champion's.

    The change is measured in the metric's better direction: the
    improvement is `challenger - champion` when higher is better and
    `champion - challenger` when lower is better. A negative bound is a
    tolerated regression ("no worse than -0.005").

    Args:
        metric: Test metric name.
        direction: `higher` or `lower` is better. Default: `lower` for
            losses and errors (`loss`, `mae`, `mse`, `rmse`, `*error*`),
            `higher` otherwise.
        min_delta: Smallest allowed absolute improvement. Default none.
        min_relative_delta: Smallest allowed improvement relative to the
            champion's absolute value (e.g. -0.05: at most 5% worse).
            Default none.
    """

    metric: MetricName
    direction: Literal["higher", "lower"] | None = None
    min_delta: float | None = None
    min_relative_delta: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> "ChangeThreshold":
        if self.min_delta is None and self.min_relative_delta is None:
            raise ValueError(f"change rule on {self.metric!r} needs `min_delta`, `min_relative_delta` or both")
        return self


class GateConfig(Section):
    """When a retrained challenger replaces the champion.

    The challenger is promoted only if it meets every value threshold and,
    when a champion exists, every change threshold against it, both scored
    on the same fresh test rows. With no rule at all (here or in the legacy
    `registry.thresholds`) nothing is promoted automatically.

    Args:
        thresholds: Bounds on the challenger's test metrics. Default none:
            the legacy `registry.thresholds` mapping is used instead.
        changes: Bounds on the change against the champion. Default none.
    """

    thresholds: list[ValueThreshold] = Field(default_factory=list)
    changes: list[ChangeThreshold] = Field(default_factory=list)


class BeatsBaseline(Section):
    """The network must not lose to the run's scikit-learn baseline (`evaluation.baseline`) to get `candidate`.

    Checked on the test rows both were scored on. Written `true` (margin
    0) or as a mapping.

    Args:
        metric: The compared test metric. Default: `accuracy` for
            classification, `mae` for regression.
        margin: How much worse than the baseline the network may be, in the
            metric's units (`0.005`: half an accuracy point). Default 0.
    """

    metric: MetricName | None = None
    margin: Annotated[float, Field(ge=0)] = 0.0

    @classmethod
    def from_flag(cls, value: Any) -> Any:
        """`true` is the rule with its defaults, `false` (or null) no rule; anything else is validated as is."""
        if value is True:
            return cls()
        return None if value is False else value


class DriftConfig(Section):
    """The feature-drift check of new data against the champion's training rows.

    Args:
        method: `psi` (default; population stability index over the
            champion's training quantile bins) or `ks` (two-sample
            Kolmogorov-Smirnov statistic). Categorical features always use
            PSI over category frequencies.
        threshold: A feature drifts when its statistic exceeds this.
            Default 0.2 (PSI's usual "significant shift" level; for `ks`,
            0.1 to 0.2 is typical).
        max_drifted_share: The data drifts when the share of drifted
            features exceeds this. Default 0: any drifted feature.
        bins: Quantile bins per numeric feature for PSI. Default 10.
        on_drift: `fail` (default) stops the run before training;
            `retune` runs a fresh hyperparameter search (needs a `tuning`
            section); `ignore` only reports.
    """

    method: Literal["psi", "ks"] = "psi"
    threshold: Annotated[float, Field(gt=0)] = 0.2
    max_drifted_share: Fraction = 0.0
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    on_drift: Literal["fail", "retune", "ignore"] = "fail"
