"""Atomic output: a failed or killed build leaves the previous site intact; unsafe --out is refused."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reportsite.errors import ReportsiteError
from reportsite.writer import (
    PATCH_DONE,
    check_output_dir,
    discard_staging,
    finish_patch,
    start_patch,
    write_into,
    write_site,
)

from .conftest import ROOT


def test_write_site_swaps_in_complete_output_and_removes_the_old_in_the_background(tmp_path):
    out = tmp_path / "site"
    write_site(out, [("index.html", b"one"), ("a/b.html", b"two")])
    write_site(out, [("index.html", b"three")])
    assert (out / "index.html").read_bytes() == b"three" and not (out / "a").exists()
    # no staging or old folders left behind: the previous site goes in a background process
    assert _gone_soon(tmp_path, ".site.*") and [p.name for p in tmp_path.iterdir()] == ["site"]


def test_error_while_writing_keeps_previous_site(tmp_path):
    out = tmp_path / "site"
    write_site(out, [("index.html", b"old")])

    def files():
        yield "index.html", b"new"
        raise ReportsiteError([])

    with pytest.raises(ReportsiteError):
        write_site(out, files())
    assert (out / "index.html").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_patch_changes_the_site_in_place(tmp_path):
    out = tmp_path / "site"
    write_site(out, [("index.html", b"one"), ("reports/a/index.html", b"a"), ("reports/b/index.html", b"b")])
    kept = (out / "reports/a/index.html").stat().st_ino
    patch = start_patch(out)
    write_into(patch, "index.html", b"two")
    write_into(patch, "reports/c/index.html", b"c")
    assert (out / "index.html").read_bytes() == b"one"  # nothing moves before the patch is finished
    finish_patch(patch, out, ["reports/b/index.html"])
    assert _files(out) == {"index.html": b"two", "reports/a/index.html": b"a", "reports/c/index.html": b"c",
                           ".reportsite-output": (out / ".reportsite-output").read_bytes()}
    assert (out / "reports/a/index.html").stat().st_ino == kept  # untouched, not copied
    assert not (out / "reports/b").exists()  # the folder the deleted page left empty goes too
    assert not patch.exists()


def test_a_failed_patch_is_dropped_and_a_complete_one_is_finished_by_the_next_build(tmp_path):
    out = tmp_path / "site"
    write_site(out, [("index.html", b"one"), ("old.html", b"old")])
    before = _files(out)
    patch = start_patch(out)
    write_into(patch, "index.html", b"two")
    discard_staging(patch)  # the build failed before the patch was complete
    assert not patch.exists() and _files(out) == before
    # killed while the complete patch was put in place: marked done, one file moved so far
    patch = start_patch(out)
    write_into(patch, "index.html", b"three")
    write_into(patch, "new/page.html", b"new")
    (patch / PATCH_DONE).write_text('["old.html"]', encoding="utf-8")
    os.replace(patch / "index.html", out / "index.html")
    discard_staging(patch)  # a complete patch is kept for the next build to finish
    assert patch.exists()
    start_patch(out)  # the next build starts: it finishes the patch first
    assert _files(out) == {"index.html": b"three", "new/page.html": b"new",
                           ".reportsite-output": before[".reportsite-output"]}
    assert not patch.exists()


def test_a_patch_that_cannot_be_put_in_place_says_so_and_the_next_build_finishes_it(tmp_path):
    out = tmp_path / "site"
    write_site(out, [("index.html", b"one"), ("x.html/index.html", b"a folder where a file will go")])
    patch = start_patch(out)
    write_into(patch, "index.html", b"two")
    write_into(patch, "x.html", b"x")
    with pytest.raises(ReportsiteError, match=r"updated only in part \(.*\); run the build again"):
        finish_patch(patch, out, [])
    discard_staging(patch)  # as the failed build does: a complete patch stays
    assert patch.exists()
    shutil.rmtree(out / "x.html")
    start_patch(out)
    assert (out / "index.html").read_bytes() == b"two" and (out / "x.html").read_bytes() == b"x"
    assert not patch.exists()


@pytest.mark.parametrize("name", ["content", ".", "/", "templates"])
def test_refuses_dangerous_output_dirs(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    for folder in ("content", "templates", "theme"):
        (tmp_path / folder).mkdir()
    with pytest.raises(ReportsiteError):
        check_output_dir(Path(name), [tmp_path / "templates", tmp_path / "theme", tmp_path], tmp_path / "content")


def test_refuses_foreign_non_empty_dir_and_inside_content(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.docx").write_bytes(b"precious")
    with pytest.raises(ReportsiteError, match="not empty and was not made by reportsite"):
        check_output_dir(foreign, [], tmp_path / "content")
    with pytest.raises(ReportsiteError, match="inside the content folder"):
        check_output_dir(tmp_path / "content" / "site", [], tmp_path / "content")
    assert (foreign / "thesis.docx").read_bytes() == b"precious"


def _big_content(tmp_path: Path, content: Path) -> Path:
    """Many reports (the samples over many years) so that a build takes long enough to be killed."""
    big = tmp_path / "big"
    shutil.copytree(content, big)
    reports = big / "reports"
    originals = list(reports.glob("*.md"))
    for source in originals:
        text = source.read_text(encoding="utf-8")
        year = next(line for line in text.splitlines() if line.startswith("year: "))
        for new_year in range(2000, 2020):
            (reports / f"{source.stem}-{new_year}.md").write_text(text.replace(year, f"year: {new_year}", 1),
                                                                  encoding="utf-8")
    return big


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_build_leaves_previous_site_intact(tmp_path, content_copy, sig):
    out = tmp_path / "site"
    build = [sys.executable, str(ROOT / "build.py"), "build", "--out", str(out)]
    assert subprocess.run([*build, "--content", str(content_copy)], capture_output=True, timeout=120).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    big = _big_content(tmp_path, content_copy)
    started = time.monotonic()
    proc = subprocess.Popen([*build, "--content", str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    staging = None
    while time.monotonic() - started < 60 and proc.poll() is None:
        # a new site (.site.new-*), or a patch of the last one (.site.patch-*: the build cache knows it)
        staging = next(iter((*tmp_path.glob(".site.new-*"), *tmp_path.glob(".site.patch-*"))), None)
        if staging and any(staging.rglob("*.html")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "build finished before it could be interrupted; make the corpus bigger"
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    if sig != signal.SIGKILL:  # a killed -9 process cannot clean up; the next build does
        assert not list(tmp_path.glob(".site.new-*")) and not list(tmp_path.glob(".site.patch-*"))
    result = subprocess.run([*build, "--content", str(content_copy)], capture_output=True, timeout=120)
    assert result.returncode == 0
    assert _gone_soon(tmp_path, ".site.*")  # the previous site is deleted in the background


def _gone_soon(folder: Path, pattern: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while list(folder.glob(pattern)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
