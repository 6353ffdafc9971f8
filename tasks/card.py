"""The model card of a registered version: built from its run's records, logged, and its head as the description."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow.progress import status
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.policies import transient
from kerasflow.tracking import Tracker
from kerasflow.tracking.cards import log_card


@task(name="write-model-card", retries=1, retry_delay_seconds=2, retry_condition_fn=transient, cache_policy=NO_CACHE)
def write_model_card(tracker: Tracker, config: PipelineConfig, registered: dict[str, Any]) -> str | None:
    """Logs `model_card.md` and `model_card.json` in the run and makes the card's head the version's description.

    Run it last, once every record the card reads is logged (see
    `kerasflow.promotion.card`): the gate and infra decisions included.

    Args:
        tracker: The pipeline run.
        config: The pipeline config.
        registered: `bless_candidate`'s result (`version` None when nothing was registered).

    Returns:
        The card's Markdown, or None when nothing was registered.
    """
    version = registered.get("version")
    if version is None:
        return None
    with status("writing the model card"):
        return log_card(tracker.client, tracker.run_id, config.model_name, str(version))
