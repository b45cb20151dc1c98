"""renderpool / workers: a build whose reports are parsed and pages rendered in worker processes (and its
search index made in a child process meanwhile) writes exactly the site a build in one process writes."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reportsite import model, renderpool
from reportsite.pipeline import BuildOptions, build
from reportsite.workers import PARALLEL_MIN

from .conftest import ROOT

PARALLEL_BUILD = """
import sys
from reportsite import cache, model, pipeline, renderpool, search, workers
from reportsite.cli import main

def counted(function, *args, **kwargs):
    print(function.__name__)
    return workers.map_in_pool(function, *args, **kwargs)

model.map_in_pool = renderpool.map_in_pool = cache.map_in_pool = counted
search_input = pipeline.search_input


def counted_input(data):
    print("search_input")
    return search_input(data)


pipeline.search_input = counted_input
speculate_index = pipeline.speculate_index


def counted_speculation(*args):  # in the spare child
    done = speculate_index(*args)
    print("planned ahead" if done.plan else "waited", flush=True)
    return done


pipeline.speculate_index = counted_speculation
patched_plan = pipeline.patched_plan


def counted_patch(*args):  # in the spare child: the last plan patched after an edit within sections
    found = patched_plan(*args)
    print("patched the plan" if found else "planned afresh", flush=True)
    return found


pipeline.patched_plan = counted_patch
unchanged_files = search._unchanged_files


def counted_unchanged(plan, *args):  # in the child: the index files an edit left as they were
    same = unchanged_files(plan, *args)
    if same:
        files = len(plan.term_files) + -(-len(plan.source.sections) // plan.doc_sections)
        print(f"as they were: {len(same)} of {files} term and text files", flush=True)
    return same


search._unchanged_files = counted_unchanged


class Counted(pipeline.ChildJob):
    def __init__(self, function, *args):
        print(function.__name__ if function else "spare child")
        super().__init__(function, *args)

    def start(self, function, *args):
        given = args[0] if args else None  # the index's input: whole, or the changes to the last one
        print(function.__name__ + (" (changes)" if getattr(given, "source", ()) is None else ""))
        return super().start(function, *args)

    def running(self):
        super().running()
        return False  # the pool renders every page (the parent renders none while the index is made)


pipeline.ChildJob = Counted
sys.stdout.flush()
code = main(["build", *sys.argv[3:], "--content", sys.argv[1], "--out", sys.argv[2]])
sys.exit(code)
"""


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: builds never use worker processes")
def test_parallel_build_writes_the_same_site_as_a_build_in_one_process(content_copy, tmp_path, monkeypatch):
    report = (content_copy / "reports" / "610114-2023.md").read_text(encoding="utf-8")
    for n in range(PARALLEL_MIN):  # enough reports and pages for both pools
        text = report.replace("---\n", f"---\nslug: copy-{n:03d}\n", 1).replace("2023年度", f"2023年度第{n}稿")
        (content_copy / "reports" / f"copy-{n:03d}.md").write_text(text, encoding="utf-8")
    # `build` in a fresh process (no other threads): parses and renders in worker processes
    result = subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(content_copy), str(tmp_path / "parallel"),
                             "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    # the pools ran, and the search index was made while the pages rendered, in a child process forked
    # before the reports were parsed (it shares none of their memory)
    assert result.stdout.splitlines()[:5] == ["spare child", "_parse_chunk", "search_input", "write_search_files",
                                              "_render_range"], result.stdout
    # with a build cache (in tmp_path): the workers store their parses, which the next build reuses
    # (the page keys of the first build are worked out in the render workers: the third build finds them)
    said = {}
    for run, out in (("first", "first"), ("second", "second"), ("third", "first"), ("fourth", "first")):
        if run in ("third", "fourth"):
            os.utime(content_copy / "reports" / "copy-000.md")  # touched: the build cannot skip, reuses all
        if run == "fourth":  # a file of the kept search index is gone: the index is made again
            (tmp_path / "first" / "search" / "idx" / "manifest.json").unlink()
        cached = subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(content_copy), str(tmp_path / out)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert cached.returncode == 0, cached.stderr
        said[run] = cached.stdout + cached.stderr
    assert f"({PARALLEL_MIN + 5} report(s) parsed" in said["first"] and "_parse_chunk" in said["first"]
    assert "(0 report(s) parsed" in said["second"]
    # the workers' parses are stored by the parent in one pack, not in a file each (cache.PackWriter)
    store = tmp_path / ".reportsite-cache"
    assert len(list(store.glob("v*/report-packs/*.pack"))) == 1 and not list(store.glob("v*/report/*/*.pickle"))
    assert "(0 report(s) parsed, 0 page(s) rendered" in said["third"], said["third"]
    # the cache keeps where the search index was written, not its bytes: a build into another folder makes
    # it again, one into the same folder keeps its files, unless one of them is gone
    assert ["write_search_files" in said[run] for run in ("first", "second", "third", "fourth")] == \
        [True, True, False, True]
    assert tree(tmp_path / "first") == tree(tmp_path / "second") == tree(tmp_path / "parallel")
    # ... and here, in this process, with the pools switched off
    monkeypatch.setattr(model, "pool_size", lambda tasks, minimum=0: 1)
    monkeypatch.setattr(renderpool, "pool_size", lambda tasks, minimum=0: 1)
    build(BuildOptions(content_copy, tmp_path / "serial", templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    parallel, serial = tree(tmp_path / "parallel"), tree(tmp_path / "serial")
    assert len(parallel) > PARALLEL_MIN and parallel.keys() == serial.keys()
    assert [p for p in serial if parallel[p] != serial[p]] == []
    # an edit: the index is made again in the child, which takes over the files whose inputs are unchanged
    # (hard links: their inodes stay), and the site is the one a build without the cache makes
    index = tmp_path / "first" / "search" / "idx"
    inodes = {p: p.stat().st_ino for p in index.rglob("*.json")}
    edited = content_copy / "reports" / "copy-007.md"
    text = edited.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    # a figure: its index terms change, not the vocabulary (jieba's words, which a word no other report has
    # would change in a site this small), so most of the index files stay as they were
    edited.write_text(text.replace("1157项", "1158项", 1), encoding="utf-8")
    for out, options in (("first", []), ("cold", ["--no-cache"])):
        run = subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(content_copy), str(tmp_path / out), *options],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0 and "write_search_files" in run.stdout, run.stderr
        # the child read the index's input the last build kept, and was sent the edited report's piece only;
        # it had found the edit itself and planned the index while the parent loaded the site
        assert ("write_search_files_given (changes)" in run.stdout) == (out == "first"), run.stdout
        assert ("planned ahead" in run.stdout) == (out == "first"), run.stdout
        # ...by patching the last plan (indexpatch), kept with the last input by the first build
        assert ("patched the plan" in run.stdout) == (out == "first"), run.stdout
        assert ("search_input" in run.stdout) == (out == "cold"), run.stdout
        if out == "first":  # the files that hold none of the edited section's terms: taken over as they were
            same = re.search(r"as they were: (\d+) of (\d+) term and text files", run.stdout)
            assert same and 0.9 < int(same[1]) / int(same[2]) < 1, run.stdout
    assert tree(tmp_path / "first") == tree(tmp_path / "cold") != tree(tmp_path / "second")
    kept = [p for p, inode in inodes.items() if p.stat().st_ino == inode]
    assert len(kept) > 0.8 * len(inodes), (len(kept), len(inodes))
    # the kept input is unreadable past the keys the parent reads: the child cannot apply the edit, the
    # parent makes the index itself and drops the kept input; the next build sends every piece and keeps it
    stored = list((tmp_path / ".reportsite-cache").glob("v*/index-input/*/*.pickle"))
    assert len(stored) == 2  # of the builds into first/ and second/
    for path in stored:
        with path.open("rb") as f:
            pickle.load(f)
            head = f.tell()
        os.truncate(path, head + 100)
    for word, expected, here in (("推进", "(changes)", True), ("深化", "write_search_files_given\n", False)):
        edited.write_text(text[:at] + word + text[at + 2:], encoding="utf-8")
        for out, options in (("first", []), ("cold", ["--no-cache"])):
            run = subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(content_copy), str(tmp_path / out),
                                  *options], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert run.returncode == 0, run.stderr
            if out == "first":
                assert expected in run.stdout and ("search_input" in run.stdout) == here, run.stdout
        assert tree(tmp_path / "first") == tree(tmp_path / "cold")
    # a rule changed (a topic's keywords), not the files: the per-report work is done again, in the pool
    topics = content_copy / "topics.yml"
    topics.write_text(topics.read_text(encoding="utf-8").replace("keywords: [立法, ", "keywords: [立法, 改革, "),
                      encoding="utf-8")
    before = tree(tmp_path / "first")
    for out, options in (("first", []), ("cold", ["--no-cache"])):
        run = subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(content_copy), str(tmp_path / out), *options],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert run.returncode == 0, run.stderr
        assert ("_redo_chunk" in run.stdout) == (out == "first"), run.stdout
    assert tree(tmp_path / "first") == tree(tmp_path / "cold") != before


def test_pages_are_rendered_here_while_another_job_is_busy_and_the_rest_by_the_pool(tmp_path, monkeypatch) -> None:
    from reportsite import pipeline
    from reportsite.render import PendingPage

    options = BuildOptions(ROOT / "content", tmp_path / "site", templates_dir=ROOT / "templates",
                           theme_dir=ROOT / "theme")
    _, data = pipeline.prepare(options)
    renderer = pipeline.make_renderer(data, options)
    pending = [i for i in pipeline.render_all(data, options, renderer, apart=[])
               if isinstance(i, PendingPage)]
    assert len(pending) > 3 * renderpool.CHUNK
    pooled: list[tuple[int, int]] = []

    def pool_here(function, tasks, workers, initializer, initargs, here):  # the pool's work, without forking
        initializer(*initargs)
        for bounds in tasks:
            pooled.append(bounds)
            yield function(bounds)

    monkeypatch.setattr(renderpool, "_job", None)
    monkeypatch.setattr(renderpool, "map_in_pool", pool_here)
    monkeypatch.setattr(renderpool, "pool_size", lambda tasks, minimum=0: 2)
    answers = iter([True, True, True])  # the other job is busy for three chunks of pages, then done
    made = list(renderpool.render_pages(renderer, pending, None, busy=lambda: next(answers, False)))
    assert sum(stop - start for start, stop in pooled) == len(pending) - 3 * renderpool.CHUNK
    monkeypatch.setattr(renderpool, "pool_size", lambda tasks, minimum=0: 1)
    assert made == list(renderpool.render_pages(renderer, pending, None))  # as rendered all here
