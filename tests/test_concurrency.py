"""Steps beside each other (`kerasflow.tasks.concurrency.side_by_side`): a failure on either side fails the flow."""

from __future__ import annotations

import threading
import time

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
