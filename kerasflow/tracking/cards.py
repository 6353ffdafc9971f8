"""Reading a registered version's run back into its model card, logging the card, and finding it again.

The card is built only from what the run recorded (see
`kerasflow.promotion.card`): its tags, metrics and params, its logged input
dataset, the artifacts named in `CARD_SOURCES` that it has, and the
registered version's tags and the model's aliases.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kerasflow.promotion.card import RunRecord, build_card, card_head, render_card
from kerasflow.tracking.registry import ModelRef, registered_aliases, resolve_model

CARD_MD, CARD_JSON = "model_card.md", "model_card.json"
CARD_SOURCES = ("config/config.yaml", "contract/report.json", "lint/report.json", "evaluation/slices.json",
                "evaluation/per_class.json", "infra/report.json", "gate/description.txt")


def read_run_record(client: Any, run_id: str, name: str, version: str) -> RunRecord:
    """Reads what a version's run recorded (see `RunRecord`).

    Args:
        client: An `MlflowClient`.
        run_id: The version's run.
        name: Registered model name.
        version: The version.

    Returns:
        The `RunRecord`.
    """
    run = client.get_run(run_id)
    present = _artifact_paths(client, run_id, CARD_SOURCES)
    folder = tempfile.mkdtemp(prefix="kerasflow-card-")
    try:
        artifacts = {path: _parse(path, Path(client.download_artifacts(run_id, path, folder)))
                     for path in CARD_SOURCES if path in present}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return RunRecord(run_id=run_id, tags=dict(run.data.tags), metrics=dict(run.data.metrics),
                     params=dict(run.data.params), artifacts=artifacts, dataset_rows=_dataset_rows(run),
                     version_tags=dict(client.get_model_version(name, version).tags or {}),
                     aliases=registered_aliases(client, name) or {})


def log_card(client: Any, run_id: str, name: str, version: str) -> str:
    """Builds a version's card from its run, logs it there and makes its head the version's description.

    Args:
        client: An `MlflowClient`.
        run_id: The version's run (still open or finished).
        name: Registered model name.
        version: The version.

    Returns:
        The card's Markdown.
    """
    card = build_card(name, version, read_run_record(client, run_id, name, version))
    markdown = render_card(card)
    client.log_text(run_id, markdown, CARD_MD)
    client.log_text(run_id, json.dumps({**card, "head": card_head(markdown)}, indent=2, default=str), CARD_JSON)
    client.update_model_version(name, version, description=card_head(markdown))
    return markdown


def find_card(client: Any, reference: str) -> tuple[ModelRef, str]:
    """Returns a registered version's card: the logged `model_card.md`, else one built from its run now.

    Args:
        client: An `MlflowClient`.
        reference: `NAME`, `NAME@ALIAS` or `NAME/VERSION` (a bare name is its
            `champion`, else its newest version), or a `models:/` URI.

    Returns:
        `(the resolved reference, the card's Markdown)`.

    Raises:
        ModelReferenceError: Unknown name, alias or version.
    """
    uri = reference if reference.startswith("models:/") else f"models:/{reference}"
    if "@" not in uri and "/" not in uri.removeprefix("models:/"):
        aliases = registered_aliases(client, uri.removeprefix("models:/")) or {}
        uri += "@champion" if "champion" in aliases else "/latest"
    ref = resolve_model(client, uri)
    if CARD_MD in _artifact_paths(client, ref.run_id, [CARD_MD]):
        folder = tempfile.mkdtemp(prefix="kerasflow-card-")
        try:
            return ref, Path(client.download_artifacts(ref.run_id, CARD_MD, folder)).read_text()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return ref, render_card(build_card(ref.name, ref.version, read_run_record(client, ref.run_id, ref.name,
                                                                              ref.version)))


def _artifact_paths(client: Any, run_id: str, wanted: Iterable[str]) -> set[str]:
    """Which of the `wanted` artifact files a run has: one listing per folder they are in, not the whole tree."""
    wanted = set(wanted)
    present: set[str] = set()
    for folder in sorted({posixpath.dirname(path) for path in wanted}):
        present |= {item.path for item in client.list_artifacts(run_id, folder or None) if not item.is_dir}
    return present & wanted


def _parse(path: str, local: Path) -> Any:
    text = local.read_text()
    if path.endswith(".json"):
        return json.loads(text)
    if path.endswith((".yaml", ".yml")):
        return yaml.safe_load(text)
    return text


def _dataset_rows(run: Any) -> int | None:
    for dataset_input in (run.inputs.dataset_inputs if run.inputs else []):
        try:
            return int(json.loads(dataset_input.dataset.profile or "{}").get("num_rows"))
        except (TypeError, ValueError):
            continue
    return None
