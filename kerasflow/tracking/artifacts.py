"""What a run or a logged model carries: the drift reference, params, JSON artifacts, files and input schema.

A registered version's run holds the statistics and expectation suite of its
training rows (`log_reference`, computed by the preprocessing step), which `retrain` and batch prediction read
back (`load_run_json`); batch prediction also reads the run's params (how the
training data was read) and the model's input signature, and predicts with
the logged pyfunc model (`predict_with`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from kerasflow.data.drift import Reference
from kerasflow.errors import BadInputError
from kerasflow.schemas.config import PipelineConfig
from kerasflow.tracking.client import patiently
from kerasflow.tracking.store import tracking_uri

REFERENCE_STATS = "reference/stats.json"
REFERENCE_SUITE = "reference/suite.json"


def log_reference(client: Any, run_id: str, config: PipelineConfig, reference_path: str) -> None:
    """Logs the training rows' drift statistics and the expectation suite with a run.

    Both travel with every model version of the run: `retrain` checks new
    data for drift against `reference/stats.json`, and batch prediction
    validates its input with `reference/suite.json`. The statistics were
    computed by the preprocessing step, where the training rows were in
    memory (`kerasflow.data.drift.Reference`): no rows are read here.
    Statistics that could not be computed are tagged
    (`kerasflow.reference_error`), not raised: the drift check then reports
    the champion as having none.

    Args:
        client: An `MlflowClient`.
        run_id: The run that logs the model.
        config: The pipeline config.
        reference_path: The drift reference JSON (`Prepared.reference`).
    """
    if config.validation.suite and Path(config.validation.suite).is_file():
        client.log_text(run_id, Path(config.validation.suite).read_text(), REFERENCE_SUITE)
    reference = Reference.load(reference_path)
    if reference.stats is None:  # never block a registration on drift statistics
        client.set_tag(run_id, "kerasflow.reference_error", reference.error)
        return
    client.log_text(run_id, json.dumps(reference.stats), REFERENCE_STATS)


def load_run_json(client: Any, run_id: str, artifact: str) -> Any | None:
    """Downloads and parses a JSON artifact of a run, or returns None if it has none."""
    from mlflow.exceptions import MlflowException

    folder = tempfile.mkdtemp(prefix="kerasflow-ref-")
    try:
        path = client.download_artifacts(run_id, artifact, folder)
        return json.loads(Path(path).read_text())
    except (MlflowException, OSError, ValueError):
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_params(client: Any, run_id: str) -> dict[str, str]:
    """Returns the params of a run."""
    return dict(client.get_run(run_id).data.params)


def download_model(uri: str, destination: str, configured_uri: str | None = None) -> str:
    """Downloads a logged model's files (e.g. `models:/name/3`) into a folder and returns its path."""
    import mlflow.artifacts

    return patiently(mlflow.artifacts.download_artifacts, uri, dst_path=destination,
                     tracking_uri=tracking_uri(configured_uri), what=f"to download {uri}")


def input_types(model_uri: str) -> dict[str, str]:
    """Returns `{column: type}` of a logged model's input signature, e.g. `{"age": "double"}` ({} without one)."""
    import mlflow.models

    return signature_types(mlflow.models.get_model_info(model_uri).signature)


def model_features(model_uri: str) -> Any:
    """Returns a logged kerasflow model's fitted feature spec (`FeatureSpec` or `ImageSpec`), read from the model.

    Raises:
        FeatureError: The model carries no kerasflow feature spec.
    """
    import mlflow.artifacts
    import mlflow.models

    from kerasflow.features.tabular import FeatureError, FeatureSpec

    artifacts = mlflow.models.get_model_info(model_uri).flavors.get("python_function", {}).get("artifacts") or {}
    path = (artifacts.get("features") or {}).get("path")
    if path is None:
        raise FeatureError(f"{model_uri} is not a kerasflow model: it carries no feature spec")
    with tempfile.TemporaryDirectory(prefix="kerasflow-features-") as folder:
        return FeatureSpec.load(mlflow.artifacts.download_artifacts(f"{model_uri.rstrip('/')}/{path}",
                                                                    dst_path=folder))


def signature_types(signature: Any) -> dict[str, str]:
    """Returns `{column: type}` of a `ModelSignature`'s named inputs ({} for None or unnamed inputs).

    Types are MLflow's names: `double`, `long`, `string`, ... (`Array(string)`
    for other kinds). Whether a column is required is left out.
    """
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return {}
    return {spec.name: _type_name(spec.type) for spec in signature.inputs.inputs}


def predict_with(model_uri: str, frame: Any) -> Any:
    """Loads a logged pyfunc model and predicts a frame of raw rows.

    Raises:
        BadInputError: The model refused the rows (e.g. an `InputRowsError`
            naming columns and rows), re-raised as the model raised it.
        FeatureError: The rows do not fit the model's input schema.
    """
    return predictor(model_uri)(frame)


_LOADING: dict[str, Future] = {}
_LOADING_LOCK = threading.Lock()


def preload_model(model_uri: str) -> Future:
    """Starts loading a logged pyfunc model, TensorFlow first, in a thread; the next `predictor` call takes it up.

    `kerasflow predict` calls it as soon as it knows the model, so the
    imports and the load overlap the flow's start and the reading of the
    first rows. TensorFlow's import banners are dropped, not the lines
    the other threads write meanwhile. The thread is a daemon: a command
    that fails first does not wait for it.

    Args:
        model_uri: The model, e.g. `models:/name/3`.

    Returns:
        The future of the loaded `PyFuncModel` (the same one for repeated calls).
    """
    with _LOADING_LOCK:
        if model_uri not in _LOADING:
            future: Future = Future()
            _LOADING[model_uri] = future
            threading.Thread(target=_load, args=(model_uri, future), name="kerasflow-model", daemon=True).start()
        return _LOADING[model_uri]


def _load(model_uri: str, future: Future) -> None:
    """Imports TensorFlow and loads the model into `future`."""
    import mlflow.pyfunc

    from kerasflow.heavy import import_tensorflow

    try:
        import_tensorflow()
        future.set_result(mlflow.pyfunc.load_model(model_uri))
    except BaseException as exc:  # handed to the thread that predicts
        future.set_exception(exc)


def predictor(model_uri: str) -> Callable[[Any], Any]:
    """The predict function of a logged pyfunc model, which waits for its load (`preload_model`) at its first call.

    Returns:
        A function: a frame of raw rows in, the model's predictions out.
        It raises `BadInputError` for rows the model refuses (re-raised as
        the model raised it, e.g. an `InputRowsError` naming columns and
        rows) and `FeatureError` for rows that do not fit the input schema.
    """
    from mlflow.exceptions import MlflowException

    from kerasflow.features.tabular import FeatureError

    preload_model(model_uri)
    with _LOADING_LOCK:  # taken up once: a later call (another store, a new version) loads afresh
        loading = _LOADING.pop(model_uri)

    def predict(frame: Any) -> Any:
        try:
            return loading.result().predict(frame)
        except MlflowException as exc:
            if isinstance(exc.__cause__, BadInputError):  # a kerasflow model's refusal (serving_entry.RefusedInput)
                raise exc.__cause__ from None
            raise FeatureError(f"the input does not fit the model's schema: {exc.message}") from None

    return predict


def _type_name(kind: Any) -> str:
    from mlflow.types import DataType

    return kind.name if isinstance(kind, DataType) else str(kind)
