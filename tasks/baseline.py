"""The scikit-learn baseline of a run: fitted on the network's training rows, scored on its test rows."""

from __future__ import annotations

from prefect import task

from kerasflow.data.prepared import Prepared
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepFuture, StepInputs, run_step
from kerasflow.tasks.concurrency import Side
from kerasflow.tasks.policies import step_logger
from kerasflow.tracking import PipelineRun, Tracker
from kerasflow.training.baseline import Baseline
from kerasflow.training.kinds import kind_of


@task(name="fit-baseline", retries=0, cache_policy=StepInputs(sections=("data", "split", "model", "training",
                                                                             "evaluation.baseline_rows")))
def fit_baseline(tracker: Tracker, config: PipelineConfig, prepared: Prepared) -> Baseline:
    """Fits the data kind's baseline (`DataKind.baseline`) and logs `baseline/<metric>` and `baseline.model`.

    The flows run it when `evaluation.baseline` is true. A kind without a
    baseline (images, a streamed table) says so once in the step's log.
    The params `baseline.rows` (the training rows it was fitted on) and,
    when it was fitted on a sample (`evaluation.baseline_rows`),
    `baseline.sampled_from` (the training rows it was drawn from) say on
    what. Run through `run_step`, the result is cached like the other steps
    (keyed by the prepared data, the model's text columns, `training.seed`
    and `evaluation.baseline_rows`).

    Returns:
        The `Baseline` (without a model when there is none).
    """
    baseline = kind_of(config.data).baseline(config, prepared.raw, prepared.split, prepared.labels)
    if not baseline.model:
        step_logger().info(f"no baseline: {baseline.reason}")
        return baseline
    tracker.params({"model": baseline.model, "name": baseline.name, "rows": baseline.train_rows,
                    **({"sampled_from": baseline.sampled_from} if baseline.sampled_from else {})},
                   prefix="baseline.")
    if baseline.sampled_from:
        step_logger().info(f"baseline fitted on a seeded sample of {baseline.train_rows:,} of the "
                           f"{baseline.sampled_from:,} training rows (evaluation.baseline_rows)")
    overall = {name: value for name, value in baseline.metrics.items() if not name.startswith("class.")}
    tracker.metrics({**overall, "seconds": baseline.seconds}, prefix="baseline.")  # per-class scores: the network's
    step_logger().info(f"baseline {baseline.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in overall.items())
                       + f" on {baseline.test_rows} test rows ({baseline.seconds:.1f} s)")
    return baseline


def start_baseline(side: Side, run: PipelineRun, config: PipelineConfig, prepared: Prepared, *,
                   fresh: bool) -> StepFuture | None:
    """Starts `fit_baseline` on the flow's task runner, beside the final model's training, where it fits.

    With `evaluation.baseline` and a table of fewer than `LARGE_ROWS` raw
    rows (`Side.beside`, `kerasflow.tasks.concurrency.fits_beside`): the baseline depends
    on the prepared data alone. A larger table's baseline runs later, alone
    (`finish_baseline`).

    Args:
        side: The flow's `side_by_side` block.
        run: The pipeline run.
        config: The pipeline config.
        prepared: Paths from the data steps.
        fresh: Recompute instead of reusing a cached result.

    Returns:
        The step's `StepFuture`, or None when it was not started.
    """
    if not config.evaluation.baseline or not side.beside:
        return None
    return side.step(fit_baseline, run, config, prepared, fresh=fresh)


def finish_baseline(started: StepFuture | None, run: PipelineRun, config: PipelineConfig, prepared: Prepared, *,
                    fresh: bool) -> Baseline | None:
    """The baseline's result: the step `start_baseline` started, or (a large table) the step run now, alone.

    Returns:
        The `Baseline`, or None without `evaluation.baseline`.
    """
    if started is not None:
        return started.result()
    return run_step(fit_baseline, run, config, prepared, fresh=fresh) if config.evaluation.baseline else None
