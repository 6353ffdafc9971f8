"""Logging and registering the kerasflow pyfunc model.

The model is logged from code (`serving_entry.py`), with the Keras file and
the feature and label specs as artifacts, and with the `kerasflow` library
folder as its code, so `mlflow models serve` and `mlflow.pyfunc.load_model`
need nothing but the logged model.
"""

from __future__ import annotations

import importlib.metadata
import threading
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from kerasflow.errors import disk_full
from kerasflow.features.labels import LabelSpec
from kerasflow.features.outputs import decode_outputs, dummy_outputs
from kerasflow.tracking.client import patiently
from kerasflow.tracking.registry import check_registrable
from kerasflow.training.canary import serving_rows

# the `kerasflow` library folder: `serving` and the `features` it imports run inside the model
CODE_PATHS = [str(Path(__file__).resolve().parents[1])]


def log_model(run_id: str, model_path: str, features_path: str, labels_path: str, example: Any) -> Any:
    """Logs a Keras model as a kerasflow pyfunc in a run, which stays RUNNING.

    Args:
        run_id: The run to log into.
        model_path: The `.keras` file.
        features_path: The feature spec JSON.
        labels_path: The label spec JSON.
        example: A few raw input rows (DataFrame) for the signature and example.

    Returns:
        MLflow's `ModelInfo`.
    """
    labels = LabelSpec.load(labels_path)
    example = serving_rows(features_path, example)  # image specs send files as base64
    signature = infer_model_signature(example, labels)

    def log() -> Any:
        with mlflow.start_run(run_id=run_id):  # log_model logs into the active run, and closes it on exit
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("serving_entry.py")),
                artifacts={"keras_model": model_path, "features": features_path, "labels": labels_path},
                code_paths=CODE_PATHS,
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
            )
        mlflow.MlflowClient().update_run(run_id, status="RUNNING")
        return info

    try:
        return patiently(log, what="to log the model")
    except OSError as exc:
        if disk_full(exc) is None or exc.filename:
            raise
        where = mlflow.MlflowClient().get_run(run_id).info.artifact_uri  # name where the artifacts were going
        raise OSError(exc.errno, exc.strerror, f"{where}/model") from exc


def infer_model_signature(example: Any, labels: Any) -> Any:
    """Infers the signature of a kerasflow model: its raw input columns and its prediction columns.

    Every input column is declared optional, so MLflow's schema check lets a
    request that lacks one through to `Predictor`, which names the missing
    columns in the first line of its error (MLflow's own error starts with
    a dump of the whole request). The types are still enforced.

    Args:
        example: A few raw input rows in the serving format.
        labels: The label spec (`LabelSpec` or `OutputsSpec`).

    Returns:
        The `ModelSignature`.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    inferred = infer_signature(example, decode_outputs(dummy_outputs(labels, len(example)), labels))
    inputs = Schema([ColSpec(spec.type, spec.name, required=False) for spec in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def register_version(client: Any, name: str, info: Any, run_id: str) -> str:
    """Registers a logged model as a new version, creating the model if needed.

    Args:
        client: An `MlflowClient`.
        name: Registered model name.
        info: The `ModelInfo` of the logged model.
        run_id: The run that produced it.

    Returns:
        The new version number, as a string.

    Raises:
        IncompatibleInputsError: The name's versions take other input
            columns (`kerasflow.tracking.registry.check_registrable`); the
            registry is left unchanged.
    """
    from mlflow.exceptions import MlflowException

    check_registrable(client, name, info.signature)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Trained and registered by kerasflow.")
    version = client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id)
    return str(version.version)


def map_installed_packages() -> threading.Thread:
    """Starts MLflow's map of the installed packages in a background thread, so it is ready when needed.

    `log_model` and `load_model` check the model's requirements against the
    installed distributions (MLflow's `warn_dependency_requirement_mismatches`,
    which has no switch), and the first check of a process maps every
    installed distribution to its modules: it reads the metadata files of
    all of them, seconds of file reads on a busy disk for 0.2-0.5 s of CPU.
    Started while the command imports and loads its data, those reads
    overlap that work, and logging the model later finds the map made.
    Any failure is ignored: the check then maps the packages itself.

    Returns:
        The daemon thread, started.
    """

    def scan() -> None:
        try:
            # deferred: a module of MLflow this process may never need when the thread is not started
            from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

            warn_dependency_requirement_mismatches(["mlflow"])  # installed, so nothing to warn about
        except Exception:
            pass

    thread = threading.Thread(target=scan, name="kerasflow-package-map", daemon=True)
    thread.start()
    return thread


def _requirements() -> list[str]:
    names = ["mlflow", "tensorflow", "keras", "pandas", "numpy", "scikit-learn", "pydantic", "pillow"]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins
