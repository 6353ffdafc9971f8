"""Fitting feature statistics, vocabularies and label encodings on the training rows only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task

from kerasflow.data.contract import dropped_columns
from kerasflow.data.images import is_image_folder
from kerasflow.data.prepared import Prepared
from kerasflow.data.split import Split
from kerasflow.data.stream import fit_stream_features, manifest_beside
from kerasflow.features.images import fit_image_spec
from kerasflow.features.tabular import fit_features, fit_labels, select_columns
from kerasflow.models.families import family_of, fit_model_inputs, pretrained_base
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tasks.caching import StepInputs, base_model
from kerasflow.tracking import Tracker
from kerasflow.tracking.registry import resolve_registered_base


@task(name="fit-preprocessing", retries=0,
      cache_policy=StepInputs(sections=("data", "preprocessing", "model"), files=base_model))
def fit_preprocessing(tracker: Tracker, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Prepared:
    """Fits feature statistics and label encoding on the training rows only.

    Returns:
        The `Prepared` paths.
    """
    if config.data.image is not None:  # an ImageSpec instead of a FeatureSpec
        return prepare_images(tracker, config, raw_path, split_path, workdir)
    if family_of(config.model).fit_inputs is not None:  # vocabularies, several outputs (the family fits them)
        return prepare_text_inputs(tracker, config, raw_path, split_path, workdir)
    frame = pd.read_parquet(raw_path)
    train = frame.iloc[Split.load(split_path).train]
    d, p = config.data, config.preprocessing
    usable = frame.drop(columns=dropped_columns(raw_path))  # constant columns the data contract dropped
    numeric, categorical = select_columns(usable, d.target, d.features, d.categorical)
    stream = manifest_beside(split_path)
    if stream is not None:  # exact statistics from one pass over every training row
        features, labels = fit_stream_features(stream, train, numeric, categorical, d.target, impute=p.impute,
                                               normalize=p.normalize, max_categories=p.max_categories, task=d.task,
                                               encoding=d.label_encoding, non_finite=p.non_finite)
    else:
        features = fit_features(train, numeric, categorical, impute=p.impute, normalize=p.normalize,
                                max_categories=p.max_categories)
        labels = fit_labels(train[d.target], d.task, d.label_encoding)
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(features.save(out / "features.json")),
                        str(labels.save(out / "labels.json")))
    tracker.artifact(prepared.features, "preprocessing")
    tracker.artifact(prepared.labels, "preprocessing")
    tracker.params({"task": labels.task, "numeric_columns": len(numeric),
                                         "categorical_columns": len(categorical), "classes": labels.classes,
                                         "loss": labels.output()[2]}, prefix="preprocessing.")
    return prepared


def prepare_images(tracker: Tracker, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Any:
    """Fits the image spec and label encoding on the training rows, and resolves a registered base.

    A base given as `models:/...` is downloaded into the scratch folder here
    (the model builder reads local files only) and its resolved version is
    recorded in the spec and as a tag.

    Args:
        tracker: Where results are logged (the pipeline's MLflow run).
        config: The pipeline config with `data.image`.
        raw_path: The listing or table.
        split_path: The split JSON.
        workdir: The run's scratch folder.

    Returns:
        The `kerasflow.data.prepared.Prepared` paths; `features` is the `ImageSpec` JSON.

    Raises:
        BaseModelError: The registered base model cannot be found or holds
            no Keras model.
    """
    frame = pd.read_parquet(raw_path)
    train = frame.iloc[Split.load(split_path).train]
    data, image = config.data, config.data.image
    files = is_image_folder(data.source)
    columns = [] if files else (data.features or [c for c in frame.columns if c != data.target])
    spec = fit_image_spec(train, layout="files" if files else "pixels", size=image.size, channels=image.channels,
                          max_value=image.max_value, pixel_columns=columns,
                          convert=image.on_channel_mismatch == "convert")
    labels = fit_labels(train[data.target], data.task, data.label_encoding)
    client = tracker.client
    base = pretrained_base(config.model)
    if base is not None:
        spec.base_reference = base.source
        if base.origin == "registry":
            local, spec.base_reference = resolve_registered_base(client, base.source, Path(workdir) / "base")
            spec.base_file = str(local)
        tracker.tags({"kerasflow.base_model": spec.base_reference})
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(spec.save(out / "features.json")),
                        str(labels.save(out / "labels.json")))
    tracker.artifact(prepared.features, "preprocessing")
    tracker.artifact(prepared.labels, "preprocessing")
    tracker.params({"task": labels.task, "layout": spec.layout, "image_shape": list(spec.shape),
                                         "max_value": spec.max_value, "classes": labels.classes,
                                         "loss": labels.output()[2]}, prefix="preprocessing.")
    return prepared


def prepare_text_inputs(tracker: Tracker, config: Any, raw_path: str, split_path: str, workdir: str) -> Any:
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
    frame = pd.read_parquet(raw_path)
    fitted = fit_model_inputs(config, frame.iloc[Split.load(split_path).train])
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(fitted.features.save(out / "features.json")),
                        str(fitted.labels.save(out / "labels.json")))
    tracker.artifact(prepared.features, "preprocessing")
    tracker.artifact(prepared.labels, "preprocessing")
    tracker.params(fitted.params, prefix="preprocessing.")
    tracker.metrics(fitted.metrics, prefix="text.")
    return prepared
