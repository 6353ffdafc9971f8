"""Boundaries of image pipelines: folder loading, image checks, preparation, fine-tuning.

The shared Prefect tasks of `tasks/steps.py` call these functions when a
config sets `data.image`, so every flow that loads, validates, prepares and
trains (train, validate, retrain, ...) handles images the same way. Like
the steps, they read and write files in the run's scratch folder and log
to MLflow with an explicit run id; the logic itself lives in
`tasks/images.py` and `tasks/cnn.py`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from kerasflow import tracking
from kerasflow.schemas.config import PipelineConfig
from kerasflow.models.cnn import BaseModelError
from kerasflow.features.images import ImageFolder, ImageReport

SIDECAR_SUFFIX = ".images.json"


def load_image_folder(run_id: str, config: PipelineConfig, workdir: str) -> str:
    """Lists and decodes every file of an image folder, fingerprints it and logs it as the run's input.

    With `on_corrupt: skip`, unusable files are left out of the listing
    here and reported by the image check; with `fail` they stay in it, so
    the check rejects them by name.

    Args:
        run_id: The parent MLflow run.
        config: The pipeline config (`data.source` is a folder).
        workdir: The run's scratch folder.

    Returns:
        Path of the listing (Parquet, one row per file), with a sidecar
        JSON holding the class folders and skipped files.

    Raises:
        ImageDataError: The folder is missing or unusable as a whole.
    """
    import pandas as pd

    from kerasflow.features.images import FILE_COLUMN, fingerprint_listing, scan_image_folder

    data, image = config.data, config.data.image
    folder = scan_image_folder(data.source, data.target, image.extensions)
    frame = folder.frame
    skipped = []
    if image.on_corrupt == "skip":
        bad = frame["problem"].notna()
        skipped = [f"{row.file}: {row.problem}" for row in frame[bad].itertuples()]
        frame = frame[~bad].reset_index(drop=True)
    digest = fingerprint_listing(folder.frame)
    client = tracking.configure(config.registry.tracking_uri)
    client.set_tag(run_id, "kerasflow.data_fingerprint", digest)
    client.set_tag(run_id, "kerasflow.data_source", folder.root)
    tracking.log_metrics(client, run_id, {"rows": len(frame), "files": len(folder.frame),
                                          "classes": len(folder.classes)}, prefix="data.")
    _log_listing(client, run_id, frame[[FILE_COLUMN, data.target, "width", "height", "channels"]], folder.root,
                 digest, data.target)
    path = Path(workdir) / "raw.parquet"
    pd.DataFrame(frame).to_parquet(path, index=False)
    _sidecar(path).write_text(json.dumps({"root": folder.root, "classes": folder.classes, "skipped": skipped}))
    return str(path)


def check_images(run_id: str, config: PipelineConfig, raw_path: str) -> ImageReport:
    """Checks image data before any training and logs the report and statistics.

    Folder sources: unreadable, corrupt and non-image files, files with
    another channel count and empty class folders are named one by one.
    Pixel tables: the column count must match the image shape, and pixels
    must be present and non-negative. A configured base model must exist.
    Counts per class and image-size statistics are logged as `images.*`
    metrics and `images/report.json`.

    Args:
        run_id: The parent MLflow run.
        config: The pipeline config with `data.image`.
        raw_path: The listing or table from the load step.

    Returns:
        The `ImageReport`.

    Raises:
        ImageDataError: Any rule is violated; every problem file is listed.
        BaseModelError: The configured base model cannot be found.
    """
    import pandas as pd

    from kerasflow.features.images import check_image_folder, check_pixel_frame, is_image_folder, require_valid_images

    data, image = config.data, config.data.image
    frame = pd.read_parquet(raw_path)
    if is_image_folder(data.source):
        meta = json.loads(_sidecar(Path(raw_path)).read_text())
        folder = ImageFolder(root=meta["root"], target=data.target, classes=meta["classes"], frame=frame)
        report = check_image_folder(folder, image.channels, on_corrupt=image.on_corrupt,
                                    on_channel_mismatch=image.on_channel_mismatch)
        report.skipped = [*meta["skipped"], *report.skipped]
        report.statistics.update(files=report.statistics["files"] + len(meta["skipped"]), skipped=len(report.skipped))
        where = meta["root"]
    else:
        columns = data.features or [c for c in frame.columns if c != data.target]
        report = check_pixel_frame(frame, data.target, columns, image.shape)
        where = data.source
    client = tracking.configure(config.registry.tracking_uri)
    _log_report(client, run_id, report)
    base = getattr(config.model, "base", None)
    if base is not None:
        client.set_tag(run_id, "kerasflow.base_model", check_base_reference(client, base))
    require_valid_images(report, where)
    return report


def prepare_images(run_id: str, config: PipelineConfig, raw_path: str, split_path: str, workdir: str) -> Any:
    """Fits the image spec and label encoding on the training rows, and resolves a registered base.

    A base given as `models:/...` is downloaded into the scratch folder here
    (the model builder reads local files only) and its resolved version is
    recorded in the spec and as a tag.

    Args:
        run_id: The parent MLflow run.
        config: The pipeline config with `data.image`.
        raw_path: The listing or table.
        split_path: The split JSON.
        workdir: The run's scratch folder.

    Returns:
        The `kerasflow.tasks.steps.Prepared` paths; `features` is the `ImageSpec` JSON.

    Raises:
        BaseModelError: The registered base model cannot be found or holds
            no Keras model.
    """
    import pandas as pd

    from kerasflow.features.images import fit_image_spec, is_image_folder
    from kerasflow.features.tabular import fit_labels
    from kerasflow.data.split import Split
    from kerasflow.tasks.steps import Prepared

    frame = pd.read_parquet(raw_path)
    train = frame.iloc[Split.load(split_path).train]
    data, image = config.data, config.data.image
    files = is_image_folder(data.source)
    columns = [] if files else (data.features or [c for c in frame.columns if c != data.target])
    spec = fit_image_spec(train, layout="files" if files else "pixels", size=image.size, channels=image.channels,
                          max_value=image.max_value, pixel_columns=columns,
                          convert=image.on_channel_mismatch == "convert")
    labels = fit_labels(train[data.target], data.task, data.label_encoding)
    client = tracking.configure(config.registry.tracking_uri)
    base = getattr(config.model, "base", None)
    if base is not None:
        spec.base_reference = base.source
        if base.origin == "registry":
            local, spec.base_reference = resolve_registered_base(client, base.source, Path(workdir) / "base")
            spec.base_file = str(local)
        client.set_tag(run_id, "kerasflow.base_model", spec.base_reference)
    out = Path(workdir)
    prepared = Prepared(raw_path, split_path, str(spec.save(out / "features.json")),
                        str(labels.save(out / "labels.json")))
    client.log_artifact(run_id, prepared.features, "preprocessing")
    client.log_artifact(run_id, prepared.labels, "preprocessing")
    tracking.log_params(client, run_id, {"task": labels.task, "layout": spec.layout, "image_shape": list(spec.shape),
                                         "max_value": spec.max_value, "classes": labels.classes,
                                         "loss": labels.output()[2]}, prefix="preprocessing.")
    return prepared


def fine_tune_phase(client: Any, run_id: str, config: PipelineConfig, prepared: Any, model_path: str, *,
                    refit: str = "train", hyperparameters: dict[str, Any] | None = None) -> None:
    """Runs phase 2 of transfer learning on the trained model file, logging it under `finetune.`.

    Args:
        client: An `MlflowClient`.
        run_id: The parent MLflow run.
        config: The pipeline config; `model.base.fine_tune` is set.
        prepared: The `Prepared` paths.
        model_path: The phase-1 `.keras` file, replaced by the fine-tuned model.
        refit: As for the train step. Default `train`.
        hyperparameters: Tuned values, or None.
    """
    from kerasflow.models.cnn import fine_tune_saved_model
    from kerasflow.training.fitting import plot_history

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        tracking.log_metrics(client, run_id, logs, prefix="finetune.", step=epoch)

    result, unfrozen = fine_tune_saved_model(config, prepared.raw, prepared.split, prepared.features,
                                             prepared.labels, model_path, refit=refit,
                                             hyperparameters=hyperparameters, on_epoch=on_epoch)
    tracking.log_metrics(client, run_id, {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                                          "unfrozen_layers": len(unfrozen)}, prefix="finetune.")
    tracking.log_params(client, run_id, {"unfrozen": unfrozen}, prefix="finetune.")
    with tempfile.TemporaryDirectory() as tmp:
        client.log_artifact(run_id, str(plot_history(result.history, Path(tmp) / "learning_curve.png")), "finetune")


def check_base_reference(client: Any, base: Any) -> str:
    """Checks that a configured base model exists, without loading it.

    Args:
        client: An `MlflowClient`.
        base: The `BaseModelConfig`.

    Returns:
        The reference, with a registered alias resolved to its version.

    Raises:
        BaseModelError: The file, weights file or registered version is missing.
    """
    if base.origin == "registry":
        return _registered_version(client, base.source)[1]
    path = Path(base.weights if base.origin == "application" else base.source).expanduser()
    if not path.is_file():
        key = "model.base.weights" if base.origin == "application" else "model.base.source"
        raise BaseModelError(f"{key}: {path.resolve()} does not exist"
                             + ("; weights are never downloaded, give a local file" if base.weights else ""))
    return base.source


def resolve_registered_base(client: Any, reference: str, destination: Path) -> tuple[Path, str]:
    """Downloads a registered kerasflow model and finds its Keras file.

    Args:
        client: An `MlflowClient`.
        reference: `models:/name@alias` or `models:/name/version`.
        destination: Folder to download into.

    Returns:
        `(keras_file, resolved)`: the local `.keras` file and the reference
        with the alias resolved, e.g. `models:/digits-cnn/3`.

    Raises:
        BaseModelError: The model, version or alias does not exist, or its
            artifacts hold no `.keras` file.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    version, resolved = _registered_version(client, reference)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=resolved, dst_path=str(destination))
    except MlflowException as exc:
        raise BaseModelError(f"model.base.source {reference}: cannot download {resolved}: {exc.message}") from None
    found = sorted(Path(local).rglob("*.keras"))
    if not found:
        raise BaseModelError(f"model.base.source {reference}: {resolved} holds no .keras file "
                             "(not a kerasflow Keras model)")
    return found[0], resolved


def _registered_version(client: Any, reference: str) -> tuple[Any, str]:
    from mlflow.exceptions import MlflowException

    rest = reference.removeprefix("models:/")
    try:
        if "@" in rest:
            name, _, alias = rest.partition("@")
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = rest.rpartition("/")
            version = client.get_model_version(name, number)
    except MlflowException as exc:
        raise BaseModelError(f"model.base.source {reference}: no such registered model version "
                             f"({exc.message})") from None
    return version, f"models:/{version.name}/{version.version}"


def _log_report(client: Any, run_id: str, report: ImageReport) -> None:
    stats = report.statistics
    tracking.log_json(client, run_id, {"passed": report.passed, "problems": report.problems,
                                       "skipped": report.skipped, "statistics": stats}, "images/report.json")
    client.log_text(run_id, report.summary(), "images/summary.txt")
    metrics = {"images": stats.get("images", len(report.kept)), "problems": len(report.problems),
               "skipped": len(report.skipped), "classes": len(stats.get("classes", {}))}
    metrics.update({f"class.{_safe(name)}": count for name, count in stats.get("classes", {}).items()})
    for dim in ("width", "height"):
        if isinstance(stats.get(dim), dict):
            metrics.update({f"{dim}_{key}": value for key, value in stats[dim].items()})
    tracking.log_metrics(client, run_id, metrics, prefix="images.")


def _log_listing(client: Any, run_id: str, frame: Any, root: str, digest: str, target: str) -> None:
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    dataset = mlflow.data.from_pandas(frame, source=root, targets=target, name=Path(root).name or root,
                                      digest=digest[:36])
    context = InputTag(key="mlflow.data.context", value="raw")
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[context])])


def _sidecar(raw_path: Path) -> Path:
    return raw_path.with_suffix(SIDECAR_SUFFIX)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(name))
