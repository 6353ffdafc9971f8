"""Prefect task boundaries of the training pipeline.

Each task is thin: it reads its inputs from paths, calls the plain
functions of its step module, writes its outputs to the run's scratch
folder and logs params, metrics and artifacts into the parent MLflow run,
whose id is passed explicitly. Retries and caching are set here, in the
decorators.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from kerasflow import tracking
from kerasflow.quiet import import_tensorflow
from kerasflow.schemas.config import PipelineConfig, load_config


@dataclass
class Prepared:
    """Paths produced by the data steps, passed to training and evaluation.

    Args:
        raw: Raw rows as Parquet.
        split: The `Split` JSON.
        features: The fitted `FeatureSpec` JSON.
        labels: The `LabelSpec` JSON.
    """

    raw: str
    split: str
    features: str
    labels: str


@task(name="read-config", retries=0, cache_policy=NO_CACHE)
def read_config(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    """Reads and validates the pipeline config (see `kerasflow.schemas.config.load_config`).

    With an expectation suite configured, also starts the validation worker
    (`kerasflow.data.isolation`), so Great Expectations imports while the first
    steps run; the `kerasflow` CLI has usually started it already.
    """
    config = load_config(path, overrides)
    if config.validation.suite is not None:
        from kerasflow.data.isolation import start_validator

        start_validator()
    return config


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: retry I/O hiccups, never bad input (a retry cannot fix it)."""
    from kerasflow.errors import BadInputError

    return not isinstance(state.result(raise_on_failure=False), BadInputError)


@task(name="load-data", retries=2, retry_delay_seconds=2, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def load_data(run_id: str, config: PipelineConfig, workdir: str) -> str:
    """Loads the raw data, fingerprints it and logs it as the run's input.

    Returns:
        Path of the raw rows as Parquet in `workdir`.
    """
    from kerasflow.features.images import is_image_folder
    from kerasflow.data.load import fingerprint_frame, load_frame, resolve_source

    if config.data.image is not None and is_image_folder(config.data.source):
        from kerasflow.tasks.image_steps import load_image_folder

        return load_image_folder(run_id, config, workdir)
    source = resolve_source(config.data.source)
    frame, test_rows = load_frame(source), 0
    if config.data.test_source:  # a given test file: its rows are appended and become the test split
        from kerasflow.data.holdout import append_test_rows

        frame, test_rows, test_source = append_test_rows(frame, config.data.test_source)
    digest = fingerprint_frame(frame)
    client = tracking.configure(config.registry.tracking_uri)
    client.set_tag(run_id, "kerasflow.data_fingerprint", digest)
    client.set_tag(run_id, "kerasflow.data_source", source)
    tracking.log_metrics(client, run_id, {"rows": len(frame), "columns": frame.shape[1]}, prefix="data.")
    if test_rows:
        client.set_tag(run_id, "kerasflow.test_source", test_source)
        tracking.log_metrics(client, run_id, {"test_rows": test_rows}, prefix="data.")
    _log_dataset(run_id, frame, source, digest, config.data.target, config.registry.tracking_uri)
    path = Path(workdir) / "raw.parquet"
    if test_rows:
        from kerasflow.data.holdout import save_raw

        save_raw(frame, path, test_rows)
    else:
        frame.to_parquet(path, index=False)
    return str(path)


@task(name="validate-data", retries=0, cache_policy=NO_CACHE)
def validate_data(run_id: str, config: PipelineConfig, raw_path: str, skip_columns: list[str] | None = None) -> bool:
    """Runs the Great Expectations suite and attaches its result and Data Docs.

    Returns:
        True when the data passed (or no suite is configured).

    Raises:
        DataValidationError: The data failed and `on_failure` is `fail`;
            the message lists every violated expectation.
    """
    from kerasflow.data.isolation import run_validation
    from kerasflow.runtime.warmup import prefetch_light
    from kerasflow.data.validate import load_suite, require_valid, validate_file

    if config.data.image is not None:  # files by name, channels, class folders, sizes (tasks/images.py)
        from kerasflow.tasks.image_steps import check_images

        check_images(run_id, config, raw_path)
    if config.validation.suite is None:
        return True
    report = run_validation(validate_file, raw_path, load_suite(config.validation.suite),
                            skip_columns=skip_columns or [], while_waiting=prefetch_light)
    client = tracking.configure(config.registry.tracking_uri)
    tracking.log_json(client, run_id, report.result, "validation/result.json")
    client.log_text(run_id, report.html, "validation/data_docs.html")
    client.log_text(run_id, report.summary(), "validation/summary.txt")
    tracking.log_metrics(client, run_id, {"expectations": report.evaluated, "failed": len(report.violations),
                                          "success": float(report.success)}, prefix="validation.")
    if config.validation.on_failure == "fail":
        require_valid(report)
    return report.success


@task(name="split-data", retries=0, cache_policy=NO_CACHE)
def split_data(run_id: str, config: PipelineConfig, raw_path: str, workdir: str) -> str:
    """Splits rows with scikit-learn and logs sizes and class balance.

    Returns:
        Path of the `Split` JSON.
    """
    import pandas as pd

    from kerasflow.data.holdout import split_with_test, test_rows_of
    from kerasflow.features.tabular import fit_labels
    from kerasflow.data.split import class_balance, split_holdout, split_kfold

    frame = pd.read_parquet(raw_path)
    labels = frame[config.data.target]
    s = config.split
    classify = fit_labels(labels, config.data.task).task == "classification"
    stratify = s.stratify and classify
    if test_rows_of(raw_path):  # data.test_source: its rows are the test set
        split = split_with_test(labels, test_rows_of(raw_path), kind=s.kind, val_fraction=s.val_fraction,
                                folds=s.folds, stratify=stratify, shuffle=s.shuffle, seed=s.seed)
    elif s.kind == "kfold":
        split = split_kfold(labels, folds=s.folds, test_fraction=s.test_fraction, stratify=stratify,
                            shuffle=s.shuffle, seed=s.seed)
    else:
        split = split_holdout(labels, test_fraction=s.test_fraction, val_fraction=s.val_fraction,
                              stratify=stratify, shuffle=s.shuffle, seed=s.seed)
    client = tracking.configure(config.registry.tracking_uri)
    tracking.log_metrics(client, run_id, split.sizes(), prefix="split.")
    if classify:
        tracking.log_json(client, run_id, class_balance(labels, split), "split/class_balance.json")
    return str(split.save(Path(workdir) / "split.json"))


@task(name="fit-preprocessing", retries=0, cache_policy=NO_CACHE)
def fit_preprocessing(run_id: str, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Prepared:
    """Fits feature statistics and label encoding on the training rows only.

    Returns:
        The `Prepared` paths.
    """
    import pandas as pd

    from kerasflow.features.tabular import fit_features, fit_labels, select_columns
    from kerasflow.data.split import Split

    if config.data.image is not None:  # an ImageSpec instead of a FeatureSpec (tasks/image_steps.py)
        from kerasflow.tasks.image_steps import prepare_images

        return prepare_images(run_id, config, raw_path, split_path, workdir)
    if config.model.kind in ("text", "functional"):  # vocabularies, several outputs (tasks/text_steps.py)
        from kerasflow.tasks.text_steps import prepare_text_inputs

        return prepare_text_inputs(run_id, config, raw_path, split_path, workdir)
    frame = pd.read_parquet(raw_path)
    train = frame.iloc[Split.load(split_path).train]
    d, p = config.data, config.preprocessing
    numeric, categorical = select_columns(frame, d.target, d.features, d.categorical)
    features = fit_features(train, numeric, categorical, impute=p.impute, normalize=p.normalize,
                            max_categories=p.max_categories)
    labels = fit_labels(train[d.target], d.task, d.label_encoding)
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(features.save(out / "features.json")),
                        str(labels.save(out / "labels.json")))
    client = tracking.configure(config.registry.tracking_uri)
    client.log_artifact(run_id, prepared.features, "preprocessing")
    client.log_artifact(run_id, prepared.labels, "preprocessing")
    tracking.log_params(client, run_id, {"task": labels.task, "numeric_columns": len(numeric),
                                         "categorical_columns": len(categorical), "classes": labels.classes,
                                         "loss": labels.output()[2]}, prefix="preprocessing.")
    return prepared


@task(name="train-model", retries=0, cache_policy=NO_CACHE)
def train_model(run_id: str, config: PipelineConfig, prepared: Prepared, workdir: str,
                hyperparameters: dict[str, Any] | None = None, refit: str = "train",
                epochs: int | None = None) -> str:
    """Builds the model with `build_model` and trains it, logging each epoch once.

    Args:
        hyperparameters: Best values from a tuner search, or None.
        refit: `train` fits on the training split with validation;
            `train+val` fits on both for the best epoch count (k-fold and
            tuned pipelines).
        epochs: Epoch count of a `train+val` refit. Default `training.epochs`.

    Returns:
        Path of the trained `.keras` model.
    """
    import_tensorflow()
    from kerasflow.training.final import fit_final_model
    from kerasflow.training.fitting import plot_history

    client = tracking.configure(config.registry.tracking_uri)
    on_epoch = tracking.EpochLogger(client, run_id, "train.")
    model_path = Path(workdir) / "model.keras"
    try:
        result = fit_final_model(config, prepared.raw, prepared.split, prepared.features, prepared.labels,
                                 model_path, hyperparameters=hyperparameters, refit=refit, epochs=epochs,
                                 on_epoch=on_epoch)
    finally:
        on_epoch.wait()
    tracking.log_metrics(client, run_id, {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch},
                         prefix="train.")
    with tempfile.TemporaryDirectory() as tmp:
        client.log_artifact(run_id, str(plot_history(result.history, Path(tmp) / "learning_curve.png")), "train")
    base = getattr(config.model, "base", None)
    if base is not None and base.fine_tune is not None:  # transfer learning phase 2, logged as finetune.*
        from kerasflow.tasks.image_steps import fine_tune_phase

        fine_tune_phase(client, run_id, config, prepared, str(model_path), refit=refit,
                        hyperparameters=hyperparameters)
    return str(model_path)


@task(name="evaluate-model", retries=0, cache_policy=NO_CACHE)
def evaluate_model(run_id: str, config: PipelineConfig, prepared: Prepared, model_path: str) -> dict[str, float]:
    """Scores the model on the untouched test split and logs reports and plots.

    Returns:
        The test metrics.
    """
    import_tensorflow()
    from kerasflow.training.final import evaluate_saved_model

    with tempfile.TemporaryDirectory() as tmp:
        evaluation, files = evaluate_saved_model(config, prepared.raw, prepared.split, prepared.features,
                                                 prepared.labels, model_path, Path(tmp))
        client = tracking.configure(config.registry.tracking_uri)
        for file in files:  # subfolders (one per output of a multi-output model) are kept
            client.log_artifact(run_id, str(file), str(Path("evaluation", file.parent.relative_to(tmp))))
    tracking.log_metrics(client, run_id, evaluation.metrics, prefix="test.")
    return evaluation.metrics


@task(name="register-model", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def register_model(run_id: str, config: PipelineConfig, prepared: Prepared, model_path: str,
                   metrics: dict[str, float]) -> dict[str, Any]:
    """Logs the pyfunc model with a signature and registers a new version.

    A version that meets every `registry.thresholds` entry gets the
    `candidate` alias; nothing else in the registry is touched. The run also
    gets `reference/stats.json` (training-row drift statistics) and
    `reference/suite.json` (the expectation suite) for retraining and batch
    prediction.

    Returns:
        `{"model_uri", "version", "blessed", "reasons"}`.
    """
    import mlflow
    import pandas as pd

    import_tensorflow()
    from kerasflow.tracking.models import log_model, register_version
    from kerasflow.promotion.gate import check_thresholds

    tracking.configure(config.registry.tracking_uri)
    example = pd.read_parquet(prepared.raw).head(5)
    name = config.model_name if config.registry.enabled else None
    with mlflow.start_run(run_id=run_id):
        info = log_model(model_path, prepared.features, prepared.labels, example)
    client = tracking.configure(config.registry.tracking_uri)
    client.update_run(run_id, status="RUNNING")
    from kerasflow.tracking.registry import log_reference  # drift statistics and suite travel with the model

    log_reference(client, run_id, config, prepared.raw, prepared.split, prepared.features)
    outcome = {"model_uri": info.model_uri, "version": None, "blessed": False, "reasons": []}
    if name is None:
        return outcome
    version = register_version(client, name, info, run_id)
    gate = check_thresholds(metrics, config.registry.thresholds)
    outcome.update(version=version, blessed=gate.passed, reasons=gate.reasons)
    client.set_model_version_tag(name, version, "kerasflow.run_id", run_id)
    client.set_model_version_tag(name, version, "kerasflow.blessed", str(gate.passed).lower())
    if gate.passed:
        client.set_registered_model_alias(name, "candidate", version)
    client.set_tag(run_id, "kerasflow.model_version", version)
    return outcome


def _log_dataset(run_id: str, frame: Any, source: str, digest: str, target: str, uri: str | None) -> None:
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    dataset = mlflow.data.from_pandas(frame, source=source, targets=target, name=Path(source).stem or source,
                                      digest=digest[:36])
    client = tracking.configure(uri)
    context = InputTag(key="mlflow.data.context", value="raw")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[context])])
