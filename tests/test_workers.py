"""workers.py: a child job's result, its error, its death, and the message format of forked workers."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import tempfile
import time

import pytest

from reportsite.workers import (
    Afterwards,
    ChildJob,
    SharedObjects,
    forked_processes,
    map_in_pool,
    received,
    reporting_to,
)

from .conftest import CONTENT_DIR, ROOT


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


def _wait_then_write(release: str, written: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(release):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with open(written, "w") as f:
        f.write("saved")


def _count_then_save(path: str, release: str, written: str) -> Afterwards:
    return Afterwards(_sections_of(path), functools.partial(_wait_then_write, release, written))


def _count_then_fail_to_save(path: str) -> Afterwards:
    return Afterwards(_sections_of(path), functools.partial(_fails, path))


def test_a_child_job_gives_its_result_before_what_it_does_afterwards(tmp_path) -> None:
    """The parent has the result while the child still saves; finish() waits for the saving."""
    release, written = str(tmp_path / "release"), str(tmp_path / "written")
    job = ChildJob(_count_then_save, REPORT, release, written)
    assert job.result() == _sections_of(REPORT)
    time.sleep(0.3)  # the child, not stopped by having sent its result, waits to be released
    assert not os.path.exists(written)
    (tmp_path / "release").touch()
    job.finish()
    assert (tmp_path / "written").read_text() == "saved"


def test_an_error_in_what_a_child_does_afterwards_is_raised_by_finish() -> None:
    job = ChildJob(_count_then_fail_to_save, REPORT)
    assert job.result() == _sections_of(REPORT)
    with pytest.raises(ValueError, match="cannot read"):
        job.finish()


def _count_then_fail(path: str, connection) -> None:
    with reporting_to(connection) as send:
        send(_sections_of(path))
        _fails(path)


def test_forked_workers_send_values_and_errors_in_one_format() -> None:
    with forked_processes(_count_then_fail, [(REPORT,)]) as (connection,):
        assert received(connection) == _sections_of(REPORT)
        with pytest.raises(ValueError, match="cannot read"):
            received(connection)


def _setting(name: str) -> str | None:
    return os.environ.get(name)


def test_a_spare_child_runs_the_job_sent_to_it_later_without_what_was_loaded_since(monkeypatch) -> None:
    job = ChildJob.spare()
    # loaded after the spare child was forked: a job forked now would see it, the spare child does not
    monkeypatch.setenv("REPORTSITE_TEST_LOADED_LATER", "yes")
    assert ChildJob(_setting, "REPORTSITE_TEST_LOADED_LATER").result() == "yes"
    assert job.start(_setting, "REPORTSITE_TEST_LOADED_LATER").result() is None
    # the job and its arguments came pickled; its result and errors come back as a forked job's do
    assert ChildJob.spare().start(_sections_of, REPORT).result() == _sections_of(REPORT)
    with pytest.raises(ValueError, match="cannot read"):
        ChildJob.spare().start(_fails, REPORT).result()


def _prepared_and_given(take, given: bytes) -> tuple[object, int]:
    return take(), len(given)


def _fails_to_prepare() -> None:
    raise ValueError("cannot prepare")


def test_a_spare_child_prepares_while_it_waits_and_takes_a_big_job_from_a_file(tmp_path, monkeypatch) -> None:
    """What `prepare` returned is handed to the job; a failed preparation hands None (the job does all). A job
    bigger than a pipe holds is sent through a file, so that start returns before the child reads it; the
    child deletes the file."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    big = b"x" * (1 << 20)
    started = time.monotonic()
    job = ChildJob.spare(functools.partial(time.sleep, 1.5)).start(_prepared_and_given, big)
    assert time.monotonic() - started < 1.0  # the child is still preparing
    assert job.result() == (None, len(big))  # time.sleep returns None
    assert ChildJob.spare(functools.partial(len, "four")).start(_prepared_and_given, b"").result() == (4, 0)
    assert ChildJob.spare(_fails_to_prepare).start(_prepared_and_given, big).result() == (None, len(big))
    assert list(tmp_path.iterdir()) == []


def test_a_spare_child_that_is_not_needed_ends_when_stopped() -> None:
    job = ChildJob.spare()
    started = time.monotonic()
    job.stop()
    assert time.monotonic() - started < 5 and not job._process.is_alive()
    assert job._process.exitcode == 0  # it ended on its own, not killed


def _sections_and_process(path: str) -> tuple[int, int]:
    return _sections_of(path), os.getpid()


def test_a_pool_with_this_process_as_one_of_its_workers_forks_one_fewer_and_keeps_the_order() -> None:
    reports = sorted(str(p) for p in (CONTENT_DIR / "reports").glob("*.md")) * 8
    done = list(map_in_pool(_sections_and_process, reports, 2, here=_sections_and_process))
    assert [sections for sections, _ in done] == [_sections_of(path) for path in reports]
    processes = {pid for _, pid in done}
    assert os.getpid() in processes and len(processes) == 2  # here and one forked worker


def test_shared_objects_travel_as_references_and_come_back_as_the_receivers_own() -> None:
    from dataclasses import replace

    from reportsite.figures import load_indicators

    rules = load_indicators(CONTENT_DIR)
    shared = SharedObjects([rules])
    # each report's values are pickled apart: each would carry a copy of its indicators
    one = rules.indicators[0]
    assert len(shared.dumps(one)) * 5 < len(pickle.dumps(one, pickle.HIGHEST_PROTOCOL))
    value = [(indicator, n) for n in range(3) for indicator in rules.indicators]
    data = shared.dumps(value)
    receiver = load_indicators(CONTENT_DIR)  # equal rules, other objects: another process's
    back = SharedObjects([receiver]).loads(data)
    assert back == value and all(any(got is mine for mine in receiver.indicators) for got, _ in back)
    changed = replace(receiver, indicators=(replace(receiver.indicators[0], name="改"), *receiver.indicators[1:]))
    with pytest.raises(KeyError):
        SharedObjects([changed]).loads(data)


def test_named_objects_travel_as_references_by_the_tokens_both_sides_give_them() -> None:
    """A worker's results point to the reports' faces: sent by a token both processes know (the report's
    file digest), they come back as the receiver's own faces, not as copies."""
    from reportsite.figures import load_indicators
    from reportsite.model import load_content

    rules = load_indicators(CONTENT_DIR)
    mine, theirs = load_content(CONTENT_DIR).reports, load_content(CONTENT_DIR).reports  # equal, other objects
    results = [(report.face, rules.indicators[0]) for report in theirs]
    data = SharedObjects([rules]).with_named({r.path.encode(): r.face for r in theirs}).dumps(results)
    back = SharedObjects([rules]).with_named({r.path.encode(): r.face for r in mine}).loads(data)
    assert back == results
    assert all(face is report.face for (face, _), report in zip(back, mine, strict=True))
    with pytest.raises(KeyError):  # a face the receiver does not name
        SharedObjects([rules]).with_named({}).loads(data)


FREED_BUFFERS = """
from reportsite.workers import return_freed_memory

def resident_mb():
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

first = bytearray(4 << 20)
del first  # a buffer of its own mapping, freed: glibc raises its threshold for those
buffers = [bytearray(b"x" * (2 << 20)) for _ in range(25)]  # 50 MB, from the heap now
kept = bytearray(b"y" * (1 << 20))  # above them: the heap cannot shrink from its top
del buffers
before = resident_mb()
return_freed_memory()
print(round(before - resident_mb()))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
def test_freed_buffers_go_back_to_the_system() -> None:
    """As in the search index's child: after one big buffer is freed, glibc takes the next ones (arrays
    received from a worker) from its heap, and when they are freed their pages stay in the process's memory
    until return_freed_memory gives them back. (In a fresh process: the heap's state is the test's own.)"""
    result = subprocess.run([sys.executable, "-c", FREED_BUFFERS], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert int(result.stdout) > 30
