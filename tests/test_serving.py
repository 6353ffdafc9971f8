"""Batch prediction and `mlflow models serve` with the champion, on real iris rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from kerasflow.data.expectations.run import DataValidationError
from kerasflow.data.load import load_frame
from kerasflow.data.predictions import ModelReferenceError
from kerasflow.features.tabular import FeatureError, InputRowsError, check_numeric_rows
from kerasflow.flows.results import PredictResult

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # starts servers
NAME = "iris-serving"
PROBAS = ["proba_setosa", "proba_versicolor", "proba_virginica"]


@pytest.fixture(scope="module")
def champion(prefect_harness, mlflow_store: str) -> str:
    from kerasflow.flows.train import train_flow
    from kerasflow.tracking.registry import promote

    result = train_flow(str(ROOT / "configs/iris.yaml"), ["training.epochs=5", f"registry.model_name={NAME}"])
    promote(mlflow.MlflowClient(mlflow_store, mlflow_store), NAME, result.version)
    return result.version


@pytest.fixture(scope="module")
def champion_model(champion: str):
    """The champion as `mlflow.pyfunc` loads it (what the server runs), loaded once for the tests that ask it."""
    return mlflow.pyfunc.load_model(f"models:/{NAME}@champion")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("incoming") / "iris_batch.csv"
    load_frame("iris").drop(columns="target").sample(25, random_state=3).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def batch(champion: str, rows: Path) -> PredictResult:
    from kerasflow.flows.batch_predict import batch_predict_flow

    return batch_predict_flow(f"models:/{NAME}@champion", str(rows))


def test_batch_predict_writes_rows_with_predictions(batch: dict, champion: str, rows: Path,
                                                    mlflow_store: str) -> None:
    assert batch.output == str(rows.with_name("iris_batch.predictions.csv")) and batch.rows == 25
    out = pd.read_csv(batch.output)
    inputs = pd.read_csv(rows)
    assert list(out.columns) == [*inputs.columns, "prediction", *PROBAS]
    pd.testing.assert_frame_equal(out[inputs.columns], inputs)
    np.testing.assert_allclose(out[PROBAS].sum(axis=1), 1.0, rtol=1e-5)
    assert (out["prediction"] == out[PROBAS].idxmax(axis=1).str.removeprefix("proba_")).all()
    run = mlflow.MlflowClient(mlflow_store, mlflow_store).get_run(batch.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["kerasflow.kind"] == "predict"
    assert run.data.tags["kerasflow.model_version"] == champion and batch.model_uri == f"models:/{NAME}/{champion}"
    assert run.data.params["validation.failed"] == "0" and run.data.params["predictions.rows"] == "25"
    note = run.data.tags["mlflow.note.content"]  # the run page's description: the flow run's link and the model
    assert note.startswith("**completed**") and f"Model: [models:/{NAME}/{champion}]" in note
    assert f"/runs/flow-run/{run.data.tags['prefect.flow_run_id']})" in note
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    trained_in = client.get_experiment(client.get_run(run.data.tags["kerasflow.training_run"]).info.experiment_id)
    assert client.get_experiment(run.info.experiment_id).name == f"{trained_in.name}-predictions"


def test_batch_predict_in_chunks_answers_as_in_one(batch: PredictResult, champion: str, rows: Path,
                                                    tmp_path: Path) -> None:
    from kerasflow.data.scoring import ScoringInput, score_file
    from kerasflow.tracking.artifacts import input_types, model_features, predictor

    uri = f"models:/{NAME}/{champion}"
    plan = ScoringInput(str(rows), model_features(uri), input_types(uri))
    chunked = score_file(plan, predictor(uri), tmp_path / "chunked.csv", chunk_rows=4)
    assert chunked.rows == 25 and chunked.summary == batch.summary
    pd.testing.assert_frame_equal(pd.read_csv(chunked.output), pd.read_csv(batch.output))
    assert batch.validation.startswith("13 expectation(s) of suite 'iris' counted over every row")


def test_served_model_answers_like_batch_predict(batch: dict, rows: Path, mlflow_store: str,
                                                champion_model) -> None:
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)  # MLflow execs `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion", "--env-manager",
           "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/ping", server)
        frame = pd.read_csv(rows)
        body = {"dataframe_split": frame.to_dict(orient="split", index=False)}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
        assert response.status_code == 200, response.text
        served = pd.DataFrame(response.json()["predictions"])
        expected = pd.read_csv(batch.output)
        assert served["prediction"].tolist() == expected["prediction"].tolist()
        np.testing.assert_allclose(served[PROBAS].to_numpy(), expected[PROBAS].to_numpy(), rtol=1e-5, atol=1e-7)
        short = requests.post(f"http://127.0.0.1:{port}/invocations", timeout=60,
                              json={"dataframe_split": frame.drop(columns="petal_width_cm").to_dict(orient="split",
                                                                                                 index=False)})
        assert short.status_code == 400, short.text
        first = short.json()["message"].splitlines()[0]
        assert first.startswith("bad features: input is missing columns ['petal_width_cm']"), first
        assert "Failed to predict data" not in short.text and "5.1" not in short.text, "no dump of the request"
        gaps = frame.head(8).assign(row_id=range(8))  # the policy of kerasflow.serving.rows: as batch predict does
        gaps.loc[[1, 5], "sepal_width_cm"] = np.nan
        body = {"dataframe_split": gaps.astype(object).where(gaps.notna(), None).to_dict(orient="split", index=False)}
        answered = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
        assert answered.status_code == 200, answered.text
        served = pd.DataFrame(answered.json()["predictions"])
        local = champion_model.predict(gaps)
        assert served["prediction"].tolist() == local["prediction"].tolist()
        np.testing.assert_allclose(served[PROBAS].to_numpy(), local[PROBAS].to_numpy(), rtol=1e-5, atol=1e-7)
        rows = frame.to_dict(orient="split", index=False)
        rows["data"][3][2] = "Infinity"  # JSON has no inf; MLflow parses the string for a double column
        overflow = requests.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_split": rows}, timeout=60)
        assert overflow.status_code == 400, overflow.text
        lines = overflow.json()["message"].splitlines()
        assert "column 'petal_length_cm'" in lines[0] and lines[0].startswith("bad input rows: "), lines
        assert "'petal_length_cm': 1 row with infinite values" in lines[1] and "row 3 = inf" in lines[1]
        assert "NaN" not in overflow.text and "predictions" not in overflow.json()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_batch_predict_and_the_served_model_apply_one_row_policy(champion: str, tmp_path: Path,
                                                                  mlflow_store: str, champion_model) -> None:
    from kerasflow.flows.batch_predict import batch_predict_flow

    frame = load_frame("iris").drop(columns="target").head(12).reset_index(drop=True)
    frame.loc[[1, 5], "sepal_width_cm"] = np.nan  # the iris suite says never null: the model fills it, as in training
    frame["row_id"] = range(12)  # a column the model does not take
    frame.to_csv(tmp_path / "gaps.csv", index=False)

    result = batch_predict_flow(f"models:/{NAME}@champion", str(tmp_path / "gaps.csv"))

    out = pd.read_csv(result.output)
    served = champion_model.predict(frame)  # what the server runs
    assert out["prediction"].tolist() == served["prediction"].tolist()
    np.testing.assert_allclose(out[PROBAS].to_numpy(), served[PROBAS].to_numpy(), rtol=1e-5, atol=1e-7)
    assert np.isfinite(out[PROBAS].to_numpy()).all() and out["row_id"].tolist() == list(range(12))
    run = mlflow.MlflowClient(mlflow_store, mlflow_store).get_run(result.run_id)
    assert run.data.tags["kerasflow.ignored_columns"] == "row_id"
    assert run.data.params["validation.failed"] == "0"
    frame.loc[3, "sepal_length_cm"] = 99.0  # the suite still checks the values of the columns the model takes
    frame.to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(DataValidationError, match="sepal_length_cm"):
        batch_predict_flow(f"models:/{NAME}@champion", str(tmp_path / "odd.csv"))
    short = frame.drop(columns="petal_length_cm")
    with pytest.raises(FeatureError, match=r"missing columns \['petal_length_cm'\]"):
        batch_predict_flow(f"models:/{NAME}@champion", _write(short, tmp_path / "short.csv"))
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=r"petal_length_cm"):
        champion_model.predict(short)


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def test_bad_model_reference_is_bad_input(champion: str, rows: Path, mlflow_store: str) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "predict", f"models:/{NAME}@production", str(rows)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert f"bad model reference: model '{NAME}' has no alias 'production'; its aliases: champion=v{champion}" \
        in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    from kerasflow.flows.batch_predict import batch_predict_flow

    with pytest.raises(ModelReferenceError, match="no registered model named 'nope'"):
        batch_predict_flow("models:/nope@champion", str(rows))


def test_bad_input_rows_fail_the_prediction_run(champion: str, tmp_path: Path, mlflow_store: str) -> None:
    from kerasflow.flows.batch_predict import batch_predict_flow

    frame = load_frame("iris").drop(columns="target").head(10)
    frame.loc[2, "sepal_length_cm"] = 99.0
    frame.to_parquet(tmp_path / "odd.parquet")
    with pytest.raises(DataValidationError, match="sepal_length_cm"):
        batch_predict_flow(f"models:/{NAME}/{champion}", str(tmp_path / "odd.parquet"))
    frame.drop(columns="petal_length_cm").to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(FeatureError, match=r"missing columns \['petal_length_cm'\]"):
        batch_predict_flow(f"models:/{NAME}@champion", str(tmp_path / "short.csv"))
    assert not (tmp_path / "short.predictions.csv").exists()
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    runs = client.search_runs(client.get_experiment_by_name("iris-predictions").experiment_id,
                              "tags.`kerasflow.kind` = 'predict' and attributes.status = 'FAILED'")
    assert len(runs) >= 2 and all("kerasflow.error" in r.data.tags for r in runs)


def test_numeric_columns_refuse_text_and_overflow_but_not_missing_values() -> None:
    frame = pd.DataFrame({"a": [1.0, np.inf, np.nan, -4e38, 2.0, 3.0, np.inf, np.inf, np.inf, np.inf, np.inf],
                          "b": ["1", "abc", None, "2", "", "1e39", "3", "4", "5", "6", "7"],
                          "c": list(range(11))}, index=range(100, 111))
    with pytest.raises(InputRowsError) as err:
        check_numeric_rows(frame, ["a", "b", "c"])
    lines = str(err.value).splitlines()
    assert lines[0] == "the input has values the model cannot take in columns 'a', 'b' (rows counted from 0):"
    assert lines[1].startswith("  - 'a': 7 rows with infinite values or values beyond float32's range")
    assert "row 1 (index 101) = inf, row 3 (index 103) = -4e+38" in lines[1] and lines[1].endswith(" and 2 more")
    assert lines[2] == "  - 'b': 2 rows with non-numeric text: row 1 (index 101) = 'abc', row 4 (index 104) = ''"
    assert "'b': 1 row with infinite values" in lines[3] and "row 5 (index 105) = '1e39'" in lines[3]
    assert str(err.value.located("the file x.csv")).startswith("the file x.csv has values")
    values = check_numeric_rows(frame.iloc[[0, 2]], ["a", "b", "c"])
    assert np.isnan(values[1, :2]).all() and values[0].tolist() == [1.0, 1.0, 0.0]
    clean = frame.iloc[[0, 2, 4]]  # numeric columns only: one vectorized pass, the same answers
    np.testing.assert_array_equal(check_numeric_rows(clean, ["a", "c"]), [[1.0, 0.0], [np.nan, 2.0], [2.0, 4.0]])
    with pytest.raises(InputRowsError) as numeric:
        check_numeric_rows(frame, ["a", "c"])
    assert str(numeric.value).splitlines()[1] == lines[1]


def test_pyfunc_model_refuses_inf_and_overflow_and_imputes_nan(champion_model) -> None:
    from mlflow.exceptions import MlflowException

    model = champion_model
    frame = load_frame("iris").drop(columns="target").head(6).reset_index(drop=True)
    frame.loc[2, "sepal_width_cm"] = np.nan
    answered = model.predict(frame)
    assert np.isfinite(answered[PROBAS].to_numpy()).all(), "a missing number is imputed"
    frame.loc[4, "petal_length_cm"] = -np.inf
    with pytest.raises(MlflowException, match="column 'petal_length_cm'") as err:
        model.predict(frame)
    assert "row 4 = -inf" in err.value.message and isinstance(err.value.__cause__, InputRowsError)
    frame.loc[4, "petal_length_cm"] = 1.5
    frame.loc[4, "sepal_length_cm"] = 3.3e38  # within float32, but standardized (std ~0.8) it overflows
    with pytest.raises(MlflowException, match="values too extreme for the model") as err:
        model.predict(frame)
    assert "row 4 ('sepal_length_cm' = 3.3e+38)" in err.value.message
    assert err.value.get_http_status_code() == 400


def test_pyfunc_model_warms_up_at_load_and_its_fast_path_answers_as_model_predict(champion: str) -> None:
    from kerasflow.serving.inference import FAST_ROWS

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    compiled = model.unwrap_python_model().predictor.compiled
    assert compiled is not None and compiled.traces == 1, "traced by the one-row warm-up at load"
    (name,) = compiled.specs
    assert compiled.accepts({name: np.zeros((FAST_ROWS, 4), "float32")})
    assert not compiled.accepts({name: np.zeros((FAST_ROWS + 1, 4), "float32")}), "large batches: model.predict"
    large = load_frame("iris").drop(columns="target").sample(FAST_ROWS + 60, replace=True, random_state=0)
    whole = model.predict(large)  # model.predict
    part = model.predict(large.head(30))  # the compiled function
    assert compiled.traces == 1, "one trace serves every batch size"
    assert part.index.equals(large.index[:30]) and part["prediction"].tolist() == whole["prediction"][:30].tolist()
    np.testing.assert_allclose(part[PROBAS].to_numpy(), whole[PROBAS][:30].to_numpy(), rtol=1e-5, atol=1e-7)


def test_batch_predict_refuses_inf_with_exit_2(champion: str, tmp_path: Path, mlflow_store: str) -> None:
    frame = load_frame("iris").drop(columns="target").head(20).reset_index(drop=True)
    frame.loc[7, "petal_length_cm"] = np.inf
    frame.to_csv(tmp_path / "inf.csv", index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}

    proc = subprocess.run([sys.executable, "-m", "kerasflow.runtime.cli", "predict", f"models:/{NAME}@champion",
                           str(tmp_path / "inf.csv")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)

    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (f"error: bad input rows: {tmp_path / 'inf.csv'} has values the model cannot take in column "
            "'petal_length_cm' (rows counted from 0):") in proc.stderr
    assert "'petal_length_cm': 1 row with infinite values or values beyond float32's range" in proc.stderr
    assert "row 7 = inf" in proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "inf.predictions.csv").exists()
    client = mlflow.MlflowClient(mlflow_store, mlflow_store)
    runs = client.search_runs(client.get_experiment_by_name("iris-predictions").experiment_id,
                              f"tags.`kerasflow.input` = '{tmp_path / 'inf.csv'}'")
    assert runs[0].info.status == "FAILED" and runs[0].data.tags["kerasflow.error"].startswith("InputRowsError: ")


def test_batch_predict_names_text_in_a_numeric_column(champion: str, tmp_path: Path) -> None:
    from kerasflow.flows.batch_predict import batch_predict_flow

    frame = load_frame("iris").drop(columns="target").head(10).reset_index(drop=True).astype({"sepal_width_cm": object})
    frame.loc[[2, 5], "sepal_width_cm"] = ["wide", "tall"]
    frame.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(InputRowsError, match=r"text.csv has values the model cannot take in column 'sepal_width_cm'") \
            as err:
        batch_predict_flow(f"models:/{NAME}@champion", str(tmp_path / "text.csv"))
    assert "'sepal_width_cm': 2 rows with non-numeric text: row 2 = 'wide', row 5 = 'tall'" in str(err.value)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer")
