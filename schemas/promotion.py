"""Config section of what a registered version must pass before an alias moves to it.

It is the top-level `promotion` section of a pipeline config:

    promotion:
      infra_validation: load_and_query
      canary_rows: 50
      tolerance: 1.0e-5

`registry` says where a model is registered and which metric bounds bless
it (`registry.thresholds`, `registry.gate`); `promotion` says what a
registered version must show before `candidate` or `champion` may point at
it, whatever its metrics.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kerasflow.schemas.base import Section

InfraMode = Literal["load_only", "load_and_query", "off"]


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
    slice_margin: Annotated[float, Field(ge=0.0)] | None = None
