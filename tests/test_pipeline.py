"""pipeline: the search index's input kept between builds, and what the spare child makes of it ahead of the
parent (speculate_index). The builds through it are tested whole in test_renderpool.py."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from multiprocessing import Pipe
from pathlib import Path

import pytest

from reportsite import pipeline, search
from reportsite.cache import LAST_BUILD, DiskStore, file_digest
from reportsite.config import load_config
from reportsite.model import content_files, load_content
from reportsite.topics import load_topics
from reportsite.workers import PARALLEL_MIN

from .conftest import ROOT

VERSION = b"code version 1"


def kept(content: Path, disk: DiskStore, store: bytes) -> search.SearchInput:
    """Keep the input of `content` as a build's child does; the input."""
    data = pipeline.derive(load_content(content), load_topics(content), load_config(content, None))
    rules = pipeline.topic_rules_digest(data.topic_rules)
    keys = [report_key(Path(r.path), rules) for r in data.reports]
    shapes: list[bytes] = []
    source = search.search_input_of((search.search_piece(r, data.topics.get(r.slug, {})) for r in data.reports),
                                    shapes)
    head = pipeline.IndexInputKeys(keys, shapes, [r.path for r in data.reports])
    disk.put_headed(pipeline.INPUT, store, (VERSION, head), *search.input_columns(source))
    return source


def report_key(path: Path, rules: bytes) -> bytes:
    return pipeline.report_key(file_digest(VERSION, str(path), path.read_bytes()), rules)


def plain(source: search.SearchInput) -> tuple:
    return (list(source.sections), source.texts.joined, source.texts.bounds.tolist(), list(source.report_rows),
            {key: list(numbers) for key, numbers in source.facets.items()})


def test_the_kept_input_is_read_back_by_the_code_version_that_kept_it(content_copy: Path, tmp_path: Path) -> None:
    disk, store = DiskStore(tmp_path / "cache"), b"site folder key."
    source = kept(content_copy, disk, store)
    last = pipeline.last_index_input(disk, store, VERSION)
    assert last is not None and plain(last.source) == plain(source)
    assert pipeline.last_index_input(disk, store, b"code version 2") is None  # another version's fields
    path = next((tmp_path / "cache" / pipeline.INPUT).glob("*/*.pickle"))
    os.truncate(path, path.stat().st_size - 10)  # the texts cut short: not taken for the input
    assert pipeline.last_index_input(disk, store, VERSION) is None


def test_an_edit_is_kept_beside_the_whole_input_and_read_back_with_it(content_copy: Path, tmp_path: Path) -> None:
    """After an edit within a report's sections the child keeps the edited piece, not the whole input again;
    the next build reads the input with the edit. A whole input kept later drops the edits."""
    disk, store = DiskStore(tmp_path / "cache"), b"site folder key."
    kept(content_copy, disk, store)
    last = pipeline.last_index_input(disk, store, VERSION)
    assert last is not None and last.edits == {}
    report = content_copy / "reports" / "610114-2023.md"
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    report.write_text(text[:at] + "进一步" + text[at:], encoding="utf-8")
    data = pipeline.derive(load_content(content_copy), load_topics(content_copy), load_config(content_copy, None))
    number = next(i for i, r in enumerate(data.reports) if r.path == str(report))
    piece = search.search_piece(data.reports[number], data.topics.get(data.reports[number].slug, {}))
    keys = list(last.keys.keys)
    keys[number] = report_key(report, pipeline.topic_rules_digest(data.topic_rules))
    head = pipeline.IndexInputKeys(keys, last.keys.shapes, last.keys.paths, b"plan", b"files")
    pipeline._keep_edits(disk, store, VERSION, pipeline.KeptEdits(last.base, head, {number: piece}))
    assert pipeline.kept_input_head(disk, store, VERSION) == head
    edited = pipeline.last_index_input(disk, store, VERSION)
    assert edited is not None and edited.keys == head and edited.base == last.base
    assert plain(edited.source) == plain(search.search_input(data)) != plain(last.source)
    assert pipeline.kept_input_head(disk, store, b"code version 2") is None
    # the whole input kept again (of the same keys as the first, say: the edit undone) drops the edits
    pipeline._keep_input(disk, store, VERSION, last.keys, last.source)
    again = pipeline.last_index_input(disk, store, VERSION)
    assert again is not None and again.edits == {} and plain(again.source) == plain(last.source)
    assert pipeline.kept_input_head(disk, store, VERSION) == last.keys


def test_the_spare_child_plans_the_index_of_an_edit_the_parent_will_send(content_copy: Path, tmp_path: Path) -> None:
    """An edit within a report's sections: the child finds it, and its input is the one the parent's pieces
    make; no edit, a changed heading (another shape) or a new report leave the plan to the parent."""
    disk, store = DiskStore(tmp_path / "cache"), b"site folder key."
    kept(content_copy, disk, store)
    unchanged = pipeline.speculate_index(disk, store, content_copy, VERSION)
    assert unchanged.last is not None and unchanged.plan is None  # nothing to plan: the last index is kept
    report = content_files(content_copy)[2]
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    report.write_text(text[:at] + "进一步" + text[at:], encoding="utf-8")
    done = pipeline.speculate_index(disk, store, content_copy, VERSION)
    assert done.plan is not None and done.source is not None and done.keys is not None
    data = pipeline.derive(load_content(content_copy), load_topics(content_copy), load_config(content_copy, None))
    assert plain(done.source) == plain(search.search_input(data))
    rules = pipeline.topic_rules_digest(data.topic_rules)
    assert done.keys == [report_key(Path(r.path), rules) for r in data.reports]
    # told the edited file through its pipe (early_spare_child), it plans the same
    told, tell = Pipe(duplex=False)
    tell.send([str(report)])
    tell.close()
    quick = pipeline.speculate_index(disk, store, content_copy, VERSION, told=told)
    assert quick.plan is not None and quick.source is not None and plain(quick.source) == plain(done.source)
    assert quick.keys == done.keys

    heading = text.index("\n## ") + 4
    report.write_text(text[:heading] + "新" + text[heading:], encoding="utf-8")
    assert pipeline.speculate_index(disk, store, content_copy, VERSION).plan is None
    report.write_text(text, encoding="utf-8")
    (report.parent / "new-report.md").write_text(text.replace("slug:", "slug: new-", 1), encoding="utf-8")
    assert pipeline.speculate_index(disk, store, content_copy, VERSION).plan is None


COUNTED_BUILD = """
import sys
from reportsite import cache, pipeline
from reportsite.cli import main

load_derived = pipeline.load_derived
# the site's state after a quick rebuild saved as its changes, as at 10,000 reports (in this small site an
# edit changes more than SAVED_WHOLE_AT of the state: the index files are a big share of its files)
cache.SAVED_WHOLE_AT = 1.0


def counted(options, *args):
    loaded = load_derived(options, *args)
    print(f"loaded {len(loaded[0].reports)} report(s)", flush=True)
    return loaded


pipeline.load_derived = counted
sys.exit(main(["build", "--timings", *sys.argv[1:]]))
"""


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def counted_build(content: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`build` in a fresh process (the spare child needs one without threads), the cache in out's folder."""
    run = subprocess.run([sys.executable, "-c", COUNTED_BUILD, "--content", str(content), "--out", str(out), *options],
                         cwd=out.parent, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    return run


def summary(run: subprocess.CompletedProcess[str]) -> tuple[str, ...]:
    found = re.search(r"built (\d+) report\(s\), (\d+) files", run.stdout)
    assert found, run.stdout
    return found.groups()


def warnings_of(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("warning")]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no child process makes the search index")
def test_a_rebuild_after_edits_of_texts_loads_only_their_jurisdictions_and_writes_what_a_full_build_writes(
        content_copy: Path, tmp_path: Path) -> None:
    """An edit of reports' texts that leaves what other pages show of them as it was: the rebuild loads only
    the edited reports and the other reports of their jurisdictions, and its site, warnings and summary are a
    full build's. Anything else is a full build."""
    for source in sorted((content_copy / "reports").glob("*.md")):  # a big site: 42 reports a jurisdiction
        text = source.read_text(encoding="utf-8")
        for n in range(PARALLEL_MIN // 5 + 1):
            copy = text.replace("---\n", f"---\nslug: {source.stem}-c{n:02d}\n", 1)
            copy = copy.replace("年以来", f"年以来第{n}稿", 1)
            (source.parent / f"{source.stem}-c{n:02d}.md").write_text(copy, encoding="utf-8")
    site, cold = tmp_path / "site", tmp_path / "cold"
    everything = f"loaded {5 * (PARALLEL_MIN // 5 + 2)} report(s)"
    assert everything in counted_build(content_copy, site).stdout

    def rebuild(loaded: str) -> subprocess.CompletedProcess[str]:
        warm = counted_build(content_copy, site)
        full = counted_build(content_copy, cold, "--no-cache")
        assert loaded in warm.stdout and ("(edited reports)" in warm.stderr) == (loaded != everything), warm.stdout
        assert tree(site) == tree(cold)
        assert warnings_of(warm) == warnings_of(full) != []  # the same years twice: a warning each
        assert summary(warm) == summary(full)
        return warm

    def edit(name: str, change) -> None:
        path = content_copy / "reports" / name
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")

    def sentence(text: str) -> str:  # in the opening, which no topic lists
        at = text.index("\n## ")
        return text[:at] + "\n\n本句为测试的修改。\n" + text[at:]

    edit("610114-2023-c07.md", sentence)
    warm = rebuild("loaded 42 report(s)")
    assert "(1 report(s) parsed, 1 page(s) rendered" in warm.stdout, warm.stdout
    # two reports of two jurisdictions, one with a control character: a warning of its own, in its place
    edit("130502-2023-c03.md", lambda text: text.replace("年以来", "年\x07以来", 1))
    edit("371329-2024.md", sentence)
    rebuild("loaded 84 report(s)")
    assert "nothing changed" in counted_build(content_copy, site).stdout
    # a title is shown by the lists: a full build (which a quick rebuild follows again)
    edit("210700-2020-c11.md", lambda text: text.replace("title: ", "title: 修订 ", 1))
    rebuild(everything)
    edit("210700-2020-c12.md", sentence)
    rebuild("loaded 42 report(s)")
    # the search index's kept input unreadable past its head: the child cannot patch the index, and the
    # rebuild is a full one, which keeps the input again for the next quick rebuild
    for path in (tmp_path / ".reportsite-cache").glob("v*/index-input/*/*.pickle"):
        with path.open("rb") as f:
            pickle.load(f)
            head = f.tell()
        os.truncate(path, head + 100)
    edit("210700-2020-c13.md", sentence)
    rebuild(everything)
    edit("210700-2020-c14.md", sentence)
    rebuild("loaded 42 report(s)")
    # a link the edit breaks: the quick rebuild's link check finds it (not only when checking the pages
    # before the index files are made), and the site is left as it was
    before, path = tree(site), content_copy / "reports" / "210700-2020-c14.md"
    good = path.read_text(encoding="utf-8")
    broken = good.replace("本句为测试的修改。", "本句为测试的修改（[另见](../no-such-report/)）。", 1)
    path.write_text(broken, encoding="utf-8")
    failed = subprocess.run([sys.executable, "-c", COUNTED_BUILD, "--content", str(content_copy), "--out", str(site)],
                            cwd=site.parent, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert failed.returncode != 0 and "loaded 42 report(s)" in failed.stdout, failed.stdout
    assert "no-such-report" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    assert tree(site) == before
    path.write_text(good, encoding="utf-8")
    rebuild("loaded 42 report(s)")
    # what the quick rebuilds kept of the site is what a full build finds: made to build in full (what the
    # last build read and returned forgotten), it renders no page again and rewrites no file
    for kind in (pipeline.LAST_INPUTS, LAST_BUILD):
        for kept_inputs in (tmp_path / ".reportsite-cache").glob(f"v*/{kind}/*/*.pickle"):
            kept_inputs.unlink()
    full = counted_build(content_copy, site)
    assert everything in full.stdout and "(edited reports)" not in full.stderr, full.stdout
    assert "(0 report(s) parsed, 0 page(s) rendered," in full.stdout and "; 0 file(s) rewritten)" in full.stdout
    # the site was touched since: a full build, which writes it anew
    (site / "about.txt").write_text("mine", encoding="utf-8")
    edit("210700-2020-c12.md", sentence)
    warm = counted_build(content_copy, site)
    assert everything in warm.stdout and "(edited reports)" not in warm.stderr
