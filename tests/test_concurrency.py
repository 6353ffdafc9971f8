"""Steps beside each other (`kerasflow.tasks.concurrency.side_by_side`): a failure on either side fails the flow."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prefect import flow, task

from kerasflow.errors import BadInputError

FINISHED = threading.Event()  # set by the side step when it ends


class RowsError(BadInputError):
    label = "Bad rows"


@task(name="side-step")
def side_step(fail: bool) -> str:
    time.sleep(0.5)
    FINISHED.set()
    if fail:
        raise RowsError("column x: 3 rows are negative")
    return "side"


@task(name="main-step")
def main_step(fail: bool) -> str:
    if fail:
        raise RuntimeError("the main step broke")
    return "main"


@flow(name="side-by-side")
def side_by_side_flow(side_fails: bool, main_fails: bool) -> tuple[str, str]:
    from kerasflow.tasks.concurrency import side_by_side

    with side_by_side() as side:
        beside = side.task(side_step, side_fails)
        done = main_step(main_fails)
        return done, beside.result()


def test_a_failed_side_step_fails_the_flow_with_its_own_error(prefect_harness) -> None:
    FINISHED.clear()
    state = side_by_side_flow(True, False, return_state=True)
    assert state.is_failed() and "column x: 3 rows are negative" in state.message
    with pytest.raises(RowsError, match="3 rows are negative"):  # the same error, so the CLI exits 2
        state.result()
    assert side_by_side_flow(False, False) == ("main", "side")


def test_a_failed_main_step_waits_for_the_side_step_before_failing(prefect_harness) -> None:
    FINISHED.clear()
    with pytest.raises(RuntimeError, match="the main step broke"):  # the block's error, not the side step's
        side_by_side_flow(True, True)
    assert FINISHED.is_set(), "the side step had ended before the flow failed"


@pytest.mark.parametrize(("rows", "beside"), [(1_000, True), (250_000, False)])
def test_a_table_of_large_rows_runs_its_steps_one_at_a_time(tmp_path, rows: int, beside: bool) -> None:
    import pandas as pd

    from kerasflow.data.prepared import Prepared
    from kerasflow.schemas.config import load_config
    from kerasflow.tasks.baseline import start_baseline
    from kerasflow.tasks.concurrency import side_by_side
    from kerasflow.tasks.infra_validate import LARGE_ROWS

    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"x": pd.Series(range(rows), dtype="int32")}).to_parquet(raw)
    prepared = Prepared(raw=str(raw), split="", features="", labels="", reference="")
    config = load_config(str(Path(__file__).resolve().parents[1] / "configs/breast_cancer.yaml"))
    assert config.evaluation.baseline and (rows >= LARGE_ROWS) is not beside
    with side_by_side(prepared) as side:
        assert side.beside is beside
        if not beside:  # nothing is started: the baseline runs later, alone (`finish_baseline`)
            assert start_baseline(side, None, config, prepared, fresh=False) is None and side.started == []
