"""Fitting feature statistics, vocabularies and label encodings on the training rows only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task

from kerasflow.data.prepared import Prepared
from kerasflow.data.split import Split
from kerasflow.models.families import family_of, fit_model_inputs, pretrained_base
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, base_model
from kerasflow.tracking import Tracker
from kerasflow.tracking.registry import resolve_registered_base
from kerasflow.training.kinds import Fitted, kind_of
from kerasflow.training.kinds.base import reference_of


@task(name="fit-preprocessing", retries=0,
      cache_policy=StepInputs(sections=("data", "preprocessing", "model", "registry.drift.bins"), files=base_model))
def fit_preprocessing(tracker: Tracker, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Prepared:
    """Fits feature statistics and label encoding on the training rows only.

    The data kind fits them (`DataKind.fit_features`): a table in memory, a
    stream in one pass over every training row, images an `ImageSpec`
    instead of a `FeatureSpec`. The training rows' drift reference is
    computed from the same rows in memory and saved beside the specs
    (`reference.json`, `Prepared.reference`): registration logs it with the
    model without reading the rows again.

    Returns:
        The `Prepared` paths.
    """
    if family_of(config.model).fit_inputs is not None:  # vocabularies, several outputs (the family fits them)
        return prepare_text_inputs(tracker, config, raw_path, split_path, workdir)
    fitted = kind_of(config.data).fit_features(config, raw_path, split_path)
    return save_prepared(tracker, config, fitted, raw_path, split_path, workdir)


def save_prepared(tracker: Tracker, config: PipelineConfig, fitted: Fitted, raw_path: str, split_path: str,
                  workdir: str) -> Any:
    """Resolves a registered base, saves the fitted specs and logs them with the `preprocessing.*` params.

    A base given as `models:/...` is downloaded into the scratch folder here
    (the model builder reads local files only) and its resolved version is
    recorded in the spec and as a tag.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config.
        fitted: The fitted `FeatureSpec` or `ImageSpec`, `LabelSpec`,
            `preprocessing.*` params and drift reference.
        raw_path: The listing or table.
        split_path: The split JSON.
        workdir: The run's scratch folder.

    Returns:
        The `kerasflow.data.prepared.Prepared` paths; `features` is the spec's JSON, `reference` the drift
        reference's.

    Raises:
        BaseModelError: The registered base model cannot be found or holds
            no Keras model.
    """
    client, spec = tracker.client, fitted.features
    base = pretrained_base(config.model)
    if base is not None:
        spec.base_reference = base.source
        if base.origin == "registry":
            local, spec.base_reference = resolve_registered_base(client, base.source, Path(workdir) / "base")
            spec.base_file = str(local)
        tracker.tags({"kerasflow.base_model": spec.base_reference})
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(spec.save(out / "features.json")),
                        str(fitted.labels.save(out / "labels.json")), str(fitted.reference.save(out / "reference.json")))
    tracker.artifact(prepared.features, "preprocessing")
    tracker.artifact(prepared.labels, "preprocessing")
    tracker.params(fitted.params, prefix="preprocessing.")
    return prepared


def prepare_text_inputs(tracker: Tracker, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Any:
    """Fits the inputs and labels of a model whose family fits its own (text, functional) and logs them.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config.
        raw_path: Raw rows (Parquet).
        split_path: The split JSON.
        workdir: The run's scratch folder.

    Returns:
        The `kerasflow.data.prepared.Prepared` paths.
    """
    train = pd.read_parquet(raw_path).iloc[Split.load(split_path).train]
    fitted = fit_model_inputs(config, train)
    out = Path(workdir)
    reference = reference_of(config, train, fitted.features)  # while the training rows are in memory
    prepared = Prepared(raw_path, split_path, str(fitted.features.save(out / "features.json")),
                        str(fitted.labels.save(out / "labels.json")), str(reference.save(out / "reference.json")))
    tracker.artifact(prepared.features, "preprocessing")
    tracker.artifact(prepared.labels, "preprocessing")
    tracker.params(fitted.params, prefix="preprocessing.")
    tracker.counts(fitted.metrics, prefix="text.")
    return prepared
