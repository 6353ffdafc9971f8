"""What the full-flow retraining tests share: running `retrain` on a config with a test's base overrides."""

from __future__ import annotations

from kerasflow.flows.results import RetrainResult


def retrain(config: str, base: list[str], *overrides: str, source: str | None = None,
            force: bool = False) -> RetrainResult:
    """Runs the retraining flow in this process (under the session's Prefect harness).

    Args:
        config: Pipeline YAML.
        base: The test module's overrides (its model name, gate, ...).
        *overrides: This run's overrides, applied after `base`.
        source: Data source overriding `data.source`. Default the config's.
        force: Retrain even when nothing changed since the champion. Default false.

    Returns:
        The flow's `RetrainResult`.
    """
    from kerasflow.flows.retrain import retrain_flow

    return retrain_flow(config, [*base, *overrides], source, force=force)
