"""workers.py: a child job's result, its error, its death, and the message format of forked workers."""

from __future__ import annotations

import os
import time

import pytest

from reportsite.workers import ChildJob, forked_processes, received, reporting_to

from .conftest import CONTENT_DIR


def _sections_of(path: str) -> int:
    """A child's work on real content: the number of ## headings of a report."""
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.startswith("## "))


def _fails(path: str) -> None:
    raise ValueError(f"cannot read {path}")


def _dies() -> None:
    os._exit(3)


def _wait_done(job: ChildJob) -> None:
    deadline = time.monotonic() + 60
    while job.running():
        assert time.monotonic() < deadline, "the child job never finished"
        time.sleep(0.01)


REPORT = str(CONTENT_DIR / "reports" / "130502-2023.md")


def test_a_child_job_gives_its_result_once_done() -> None:
    job = ChildJob(_sections_of, REPORT)
    _wait_done(job)  # running() took the result as soon as it came: the child may end meanwhile
    assert not job.running()
    assert job.result() == _sections_of(REPORT) > 3


def test_a_child_jobs_error_is_raised_by_result() -> None:
    job = ChildJob(_fails, REPORT)
    _wait_done(job)
    with pytest.raises(ValueError, match=r"cannot read .*130502-2023\.md"):
        job.result()


def test_a_child_job_that_dies_is_an_error_not_a_hang() -> None:
    job = ChildJob(_dies)
    _wait_done(job)
    with pytest.raises(RuntimeError, match="exit code 3"):
        job.result()


def _count_then_fail(path: str, connection) -> None:
    with reporting_to(connection) as send:
        send(_sections_of(path))
        _fails(path)


def test_forked_workers_send_values_and_errors_in_one_format() -> None:
    with forked_processes(_count_then_fail, [(REPORT,)]) as (connection,):
        assert received(connection) == _sections_of(REPORT)
        with pytest.raises(ValueError, match="cannot read"):
            received(connection)
