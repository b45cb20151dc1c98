"""cache: a cached build is byte-identical to a cold one; code, template and content changes invalidate
exactly what depends on them; unchanged files are not rewritten."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

from reportsite.cache import (
    STAMPS,
    STAMPS_EDITS,
    BuildCache,
    DiskStore,
    Fingerprinter,
    MemoRenderer,
    PackWriter,
    Progress,
    Unfingerprintable,
    _content_key,
    package_version,
)
from reportsite.config import load_config
from reportsite.errors import Problem, ReportsiteError
from reportsite.pipeline import BuildOptions, build, derive, load_derived, prepare, produce, render_site
from reportsite.render import make_environment
from reportsite.topics import load_topics

from .conftest import ROOT
from .test_serve import REPORT, delete_report, edit_report, edit_template, edit_topics, replace_in


def with_cache(options: BuildOptions, cache: BuildCache | None, out: Path | None = None) -> BuildOptions:
    return BuildOptions(**{**options.__dict__, "cache": cache, "out_dir": out or options.out_dir})


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cached_build_is_byte_identical_to_cold_build(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, None, tmp_path / "cold"))
    first = BuildCache(cache_dir)
    build(with_cache(project, first, tmp_path / "warm1"))
    assert first.stats.parsed == 5 and first.stats.rendered
    cold = tree(tmp_path / "cold")
    assert tree(tmp_path / "warm1") == cold
    os.utime(project.content_dir / REPORT)  # touched, not changed: the build cannot skip, but reuses everything
    second = BuildCache(cache_dir)  # a new process: parses come from the disk cache, pages from the last site
    build(with_cache(project, second, tmp_path / "warm1"))
    assert second.stats.parsed == 0 and second.stats.rendered == [] and second.stats.reused > 50
    assert tree(tmp_path / "warm1") == cold
    third = BuildCache(cache_dir)  # into another folder: pages are rendered again, parses still reused
    build(with_cache(project, third, tmp_path / "warm2"))
    assert third.stats.parsed == 0 and third.stats.rendered
    assert tree(tmp_path / "warm2") == cold


def test_code_version_change_invalidates_everything(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir, version="release-1")))
    same = BuildCache(cache_dir, version="release-1")
    build(with_cache(project, same))
    assert same.stats.parsed == 0 and same.stats.rendered == []
    new = BuildCache(cache_dir, version="release-2")
    build(with_cache(project, new))
    assert new.stats.parsed == 5 and new.stats.reused == 0


def test_code_version_follows_package_files(tmp_path: Path) -> None:
    package = tmp_path / "reportsite"
    shutil.copytree(ROOT / "reportsite", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = package_version(package)
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert package_version(package) == before  # compiled files are not code changes
    with (package / "render.py").open("a", encoding="utf-8") as f:
        f.write("\n# a change\n")
    assert package_version(package) != before
    (package / "render.py").write_bytes((ROOT / "reportsite" / "render.py").read_bytes())
    with (package / "data" / "chrome.yml").open("a", encoding="utf-8") as f:
        f.write("\n# data files are code too\n")
    assert package_version(package) != before


def test_template_change_invalidates_pages_using_it(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    edit_template(project)  # list.html: the year and level lists
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    assert cache.stats.parsed == 0
    assert cache.stats.rendered and all(p.startswith(("years/2", "levels/")) for p in cache.stats.rendered)
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_what_a_template_pulls_in_is_kept_by_its_source(tmp_path: Path) -> None:
    """template_digests keeps, per template, what its source pulls in (so that a rebuild parses no template to
    find out); a digest still follows every template pulled in, also one a template starts to include, and
    the compiled templates kept for the next build are those of the sources as they are."""
    from reportsite.cache import template_digests

    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "page.html").write_text("<p>{{ x }}</p>", encoding="utf-8")
    (folder / "part.html").write_text("一", encoding="utf-8")
    store = DiskStore(tmp_path / "cache")

    def digest() -> bytes:
        return template_digests(make_environment(folder), store, b"v")("page.html")

    first = digest()
    assert digest() == first and store.get("template-refs", b"v")["page.html"][1] == frozenset()
    (folder / "page.html").write_text('<p>{{ x }}</p>{% include "part.html" %}', encoding="utf-8")
    included = digest()
    (folder / "part.html").write_text("二", encoding="utf-8")
    assert len({first, included, digest()}) == 3
    bytecode = tmp_path / "bytecode"
    bytecode.mkdir()
    for text in ("一", "二"):
        (folder / "part.html").write_text(text, encoding="utf-8")
        for _ in range(2):  # compiled, then read back
            assert make_environment(folder, bytecode).get_template("page.html").render(x=1) == f"<p>1</p>{text}"
    assert list(bytecode.iterdir())


def test_base_template_change_invalidates_every_page(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    base = project.templates_dir / "base.html"
    base.write_text(base.read_text(encoding="utf-8").replace("</footer>", "<p>新页脚</p></footer>"), encoding="utf-8")
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    pages = [p for p in tree(project.out_dir) if p.endswith(".html")]
    assert sorted(cache.stats.rendered) == sorted(pages)


def test_content_changes_invalidate_what_depends_on_them(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    edit_report(project)
    edit_topics(project)
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    assert cache.stats.parsed == 1  # only the edited report is parsed again
    assert "reports/130502-2023/index.html" in cache.stats.rendered
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_an_edit_renders_again_only_the_pages_that_show_what_it_changed(project: BuildOptions,
                                                                        tmp_path: Path) -> None:
    """Pages other than a report's own show its face (title, place, year) and its results (indicator values,
    structure check), each known by its content: an edit of the text that leaves them as they were renders
    the report's page and the topic pages showing its sections again, nothing else (no data export is made
    again either); an edited figure also renders its indicator's pages and the figures' export again."""
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    page = "reports/130502-2023/index.html"
    replace_in(project.content_dir / REPORT, "以习近平法治思想为指导", "以习近平法治思想为科学指导")
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    assert page in cache.stats.rendered
    assert all(p.startswith("topics/") for p in cache.stats.rendered if p != page), cache.stats.rendered
    _, data = prepare(with_cache(project, BuildCache(cache_dir)))
    assert data.analysis is not None
    text = (project.content_dir / REPORT).read_text(encoding="utf-8")
    value = next(v for v in data.analysis.values["130502-2023"]
                 if v.figure.text[0] in "12345678" and text.count(v.figure.text) == 1)
    changed = str(int(value.figure.text[0]) + 1) + value.figure.text[1:]
    replace_in(project.content_dir / REPORT, value.figure.text, changed)
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    rendered = set(cache.stats.rendered)
    assert {page, "indicators/index.html", f"indicators/{value.indicator.slug}/index.html",
            "data/figures.csv"} <= rendered
    assert not rendered & {"index.html", "compliance/index.html", "years/2023/index.html", "coverage/index.html"}
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_the_pages_of_lists_are_kept_together_while_what_they_show_is_unchanged(
        project: BuildOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lists (home page, regions, years, levels, coverage, topics, search page, feed, sitemap) show only
    the reports' faces and the topics' counts: a rebuild after an edit of a text takes them all over without
    making their values or working out their keys; an edited title makes them again, and the pages that
    show it are rendered."""
    from reportsite import pages

    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    made: list[int] = []
    list_pages = pages.list_pages
    monkeypatch.setattr(pages, "list_pages", lambda *args: made.append(1) or list_pages(*args))
    replace_in(project.content_dir / REPORT, "以习近平法治思想为指导", "以习近平法治思想为科学指导")
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    assert made == [] and "reports/130502-2023/index.html" in cache.stats.rendered
    replace_in(project.content_dir / REPORT, "title: 邢台市襄都区2023年度", "title: 邢台市襄都区2023年")
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    assert made == [1] and {"years/2023/index.html", "feed.xml"} <= set(cache.stats.rendered)
    assert "about/index.html" not in cache.stats.rendered  # made again, with the key it had: kept
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_a_topics_pages_are_kept_together_while_what_they_show_of_its_reports_is_unchanged(
        project: BuildOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit makes again the pages of the topics that show the edited text, and only those: the other
    topics' pages, even those that list other sections of the edited report, are taken over without their
    keys being worked out."""
    from reportsite import pages

    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))

    def views() -> dict[str, pages.TopicView]:
        _, data = prepare(with_cache(project, BuildCache(cache_dir)))
        report = next(r for r in data.reports if r.path.endswith(REPORT))
        assert data.topic_views[report.slug] == pages.topic_views(report, data.topics[report.slug])
        return data.topic_views[report.slug]

    made: list[str] = []
    topic_pages_of = pages.topic_pages_of
    monkeypatch.setattr(pages, "topic_pages_of", lambda renderer, data, topic, *args: made.append(topic.slug)
                        or topic_pages_of(renderer, data, topic, *args))
    # the opening, which no topic lists; then a section that two topics list
    edits = (("以习近平法治思想为指导", "以习近平法治思想为科学指导"), ("加强规范性文件管理", "加强规范性文件的管理"))
    for old, new in edits:
        before = views()
        replace_in(project.content_dir / REPORT, old, new)
        after = views()
        shown = {topic for topic in before if before[topic] != after.get(topic)}
        assert before.keys() == after.keys()
        made.clear()
        build(with_cache(project, BuildCache(cache_dir)))
        assert set(made) == shown
    assert shown and shown < set(before)  # the report is listed by more topics than the edit shows in
    # far into a listed section (of 700 characters), past the excerpt its topic's pages show: none made again
    before = views()
    replace_in(project.content_dir / REPORT, "未出现脱漏管情况", "未出现脱管漏管情况")
    assert views() == before
    made.clear()
    build(with_cache(project, BuildCache(cache_dir)))
    assert made == []
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_a_new_process_reads_only_the_content_files_touched_since_the_last_build(
        project: BuildOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache keeps each content file's stamp and digest: a rebuild in a new process (a new BuildCache)
    reads and hashes only the files whose stamp changed."""
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    replace_in(project.content_dir / REPORT, "以习近平法治思想为指导", "以习近平法治思想为科学指导")
    read: list[str] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(str(self)) or read_bytes(self))
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    reports = str(project.content_dir / "reports")
    assert [path for path in read if path.startswith(reports)] == [str(project.content_dir / REPORT)]
    assert cache.stats.parsed == 1
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_a_load_of_a_few_files_keeps_their_stamps_apart_from_all_the_others(
        project: BuildOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quick rebuild loads a few content files (`only`): their stamps and digests are kept apart
    (STAMPS_EDITS), not with the 10,000 others again; the next process takes them from there, and reads no file
    that it did not touch since."""
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    cache = BuildCache(cache_dir)
    content_key = _content_key(project.content_dir)
    assert cache.disk is not None
    whole = cache.disk._path(STAMPS, content_key).read_bytes()
    replace_in(project.content_dir / REPORT, "以习近平法治思想为指导", "以习近平法治思想为科学指导")
    load_derived(with_cache(project, cache), only=[project.content_dir / REPORT])
    assert cache.disk._path(STAMPS, content_key).read_bytes() == whole
    version, edits = cache.disk.get(STAMPS_EDITS, content_key)
    assert version == cache.version and list(edits) == [str(project.content_dir / REPORT)]
    assert edits[str(project.content_dir / REPORT)][1] == cache.files[str(project.content_dir / REPORT)].digest
    read: list[str] = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(str(self)) or read_bytes(self))
    again = BuildCache(cache_dir)
    load_derived(with_cache(project, again))
    assert not [path for path in read if path.startswith(str(project.content_dir))]
    assert again.stats.parsed == 0
    replace_in(project.content_dir / REPORT, "以习近平法治思想为科学指导", "以习近平法治思想为指导")
    load_derived(with_cache(project, BuildCache(cache_dir)))  # a load of all files: the stamps kept whole again
    assert cache.disk.get(STAMPS_EDITS, content_key) is None
    assert str(project.content_dir / REPORT) in cache.disk.get(STAMPS, content_key)[1]


def test_unchanged_files_are_not_rewritten_and_removed_ones_are_deleted(project: BuildOptions) -> None:
    cache = BuildCache()
    build(with_cache(project, cache))
    out = project.out_dir
    untouched = out / "reports" / "610114-2023" / "index.html"
    stamp = untouched.stat().st_mtime_ns
    os.utime(untouched, ns=(stamp, stamp - 10_000_000))  # so a rewrite would show
    stamp = untouched.stat().st_mtime_ns
    edit_report(project)
    result = build(with_cache(project, cache))
    assert untouched.stat().st_mtime_ns == stamp
    assert result.written and result.written < result.files / 4
    (project.content_dir / REPORT).unlink()
    build(with_cache(project, cache))
    assert not (out / "reports" / "130502-2023").exists()
    _, files = render_site(with_cache(project, None))
    assert tree(out).keys() - {".reportsite-output"} == {f.path for f in files}


def test_a_rebuild_patches_the_site_in_place_unless_the_site_was_touched(project: BuildOptions,
                                                                         tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    out = project.out_dir
    folder = out.stat().st_ino
    edit_report(project)
    build(with_cache(project, BuildCache(cache_dir)))  # a new process: the site's entries come from the disk
    assert out.stat().st_ino == folder  # the same folder, changed in place: no new site was linked together
    assert not list(out.parent.glob(f".{out.name}.*"))  # no patch, staging or old folder left
    _, files = render_site(with_cache(project, None))
    expected = {f.path: f.data for f in files}
    assert tree(out) == {**expected, ".reportsite-output": (out / ".reportsite-output").read_bytes()}
    (out / "added-by-hand.html").write_text("not made by the build", encoding="utf-8")
    delete_report(project)  # a patch would keep the file added by hand: a new site is made instead
    build(with_cache(project, BuildCache(cache_dir)))
    assert out.stat().st_ino != folder and not (out / "added-by-hand.html").exists()
    _, files = render_site(with_cache(project, None))
    assert tree(out).keys() - {".reportsite-output"} == {f.path for f in files}


def _doubled(value: int, helper: list[int]) -> int:
    helper.append(value)  # the helper sees each call
    return 2 * value


def test_a_rebuild_shelves_the_links_of_its_new_pages_only_and_reads_lost_ones_from_the_pages(
        project: BuildOptions, tmp_path: Path) -> None:
    """What the link check knows of each page (its ids and links) is kept by the page's digest, in shards:
    an edit writes again the shards of the pages it changed, not all. The shards lost, a kept page's ids are
    read from its file: a link into it still resolves, and a broken one is still found; an edited page whose
    last version is lost too has every page checked."""
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))

    def shards() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in cache_dir.rglob("page-links/*/*.pickle")}

    before = shards()
    replace_in(project.content_dir / REPORT, "以习近平法治思想为指导", "以习近平法治思想为科学指导")
    cache = BuildCache(cache_dir)
    build(with_cache(project, cache))
    after = shards()
    rewritten = [p for p in after if before.get(p) != after[p]]
    pages = [p for p in cache.stats.rendered if p.endswith(".html")]
    assert 0 < len(rewritten) <= len(pages) < len(before) / 4
    for shard in after:
        shard.unlink()
    # and the edited page's file too: what the last build found on it is lost, so every page is checked
    (project.out_dir / "reports/130502-2023/index.html").unlink()
    link = "（[另见](../610114-2023/#s1)）"  # into a section of a page kept as it was
    replace_in(project.content_dir / REPORT, "以习近平法治思想为科学指导", "以习近平法治思想为指导" + link)
    build(with_cache(project, BuildCache(cache_dir)))
    replace_in(project.content_dir / REPORT, "610114-2023/#s1", "610114-2023/#s9")
    with pytest.raises(ReportsiteError) as failed:
        build(with_cache(project, BuildCache(cache_dir)))
    assert [p.message for p in failed.value.problems] == [
        "broken anchor '../610114-2023/#s9': reports/610114-2023/index.html has no id 's9'"]


def test_a_helper_reaches_the_function_but_not_its_key() -> None:
    """`call(..., helper=...)` passes a helper that speeds a function up without changing its result (the
    search index's memo) and leaves it out of the key: a call with another helper finds the result kept."""
    cache = BuildCache()
    first: list[int] = []
    second: list[int] = []
    assert cache.call(_doubled, 21, helper=first) == 42 and first == [21]
    assert cache.call(_doubled, 21, helper=second) == 42 and second == []  # kept: not called again
    assert cache.call(_doubled, 5, helper=second) == 10 and second == [5]


def test_the_search_index_of_a_build_in_memory_counts_again_only_what_an_edit_changed(
        project: BuildOptions, tmp_path: Path, monkeypatch) -> None:
    """A cache without a folder (the live preview's) keeps the index's memo in memory: after an edit the
    index counts again only the ranges it changed and makes again only the term files whose inputs
    changed, and the site is the one a cold build makes."""
    from reportsite import search

    monkeypatch.setattr(search, "RANGE_SECTIONS", 8)
    counted: list[tuple[int, int]] = []
    made: list[list[int]] = []
    count, make = search._range_words, search._term_file

    def counting(job, task, memo):
        counted.append(task[1])
        return count(job, task, memo)

    def making(postings, encoded, members, *args):
        made.append(members)
        return make(postings, encoded, members, *args)

    monkeypatch.setattr(search, "_range_words", counting)
    monkeypatch.setattr(search, "_term_file", making)
    cache = BuildCache()
    build(with_cache(project, cache))
    ranges, files = len(counted), len(made)
    assert ranges > 5 and files > 20
    counted.clear()
    made.clear()
    # no length changes (nor do other sections' BM25s), and the same number of files (a small site's files
    # are planned by size: one more would move every term)
    report = sorted((project.content_dir / "reports").glob("*.md"))[2]
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    replace_in(report, text[at:at + 12], "强化" + text[at + 2:at + 12])
    build(with_cache(project, cache))
    assert 1 <= len(counted) <= 2
    assert 0 < len(made) < files / 2
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_unknown_values_make_a_page_uncached_never_stale(project: BuildOptions) -> None:
    with pytest.raises(Unfingerprintable):
        Fingerprinter().of({"x": object()})
    cache = BuildCache()
    content = cache.load_content(project.content_dir)
    data = derive(content, load_topics(project.content_dir), load_config(project.content_dir), cache)
    renderer = MemoRenderer(make_environment(project.templates_dir), data, cache)

    def render(**context: object) -> bytes:
        items = [renderer.render("404.html", "404.html", **context)]
        made = produce(items, renderer, cache, None)
        cache.end_build(made.files, None)
        return made.files[0].data or b""

    first, again = render(marker=object()), render(marker=object())
    assert first == again and cache.stats.uncached == 2 and cache.stats.rendered == []
    assert render(marker="known") == render(marker="known") == first
    assert cache.stats.rendered == ["404.html"] and cache.stats.reused == 1


def test_fingerprint_distinguishes_values() -> None:
    fp = Fingerprinter()
    assert fp.of([1, 2]) != fp.of([2, 1]) and fp.of({"a": 1}) != fp.of({"a": "1"})
    assert fp.of(None) != fp.of("None") and fp.of(1) != fp.of(True) and fp.of(1) != fp.of(1.0)
    big = list(range(100))
    assert fp.of(big) == fp.of(list(range(100))) != fp.of(list(range(101)))
    # how a type is digested is worked out once per type: each kind must keep its own way
    first, second = Problem("a.md", 1, "x", "y"), Problem("a.md", 1, "x", "y")
    assert fp.of(first) == fp.of(second) != fp.of(Problem("a.md", 2, "x", "y"))
    assert fp.of(first) != fp.of(("a.md", 1, "x", "y")) and fp.of({3, 1, 2}) == fp.of({1, 2, 3}) != fp.of([1, 2, 3])
    assert fp.of(b"x") != fp.of("x") and fp.of(date(2024, 1, 2)) != fp.of("2024-01-02")


def test_hidden_folders_in_the_content_are_no_input(project: BuildOptions, tmp_path: Path) -> None:
    """A build run from inside the content folder keeps its cache there (.reportsite-cache): the next build
    finds nothing changed all the same. An editor's or a version control's folder, or an editor's lock file,
    holds no report."""
    reports = len(list((project.content_dir / "reports").glob("*.md")))
    hidden = project.content_dir / "reports" / ".trash"
    hidden.mkdir()
    shutil.copy(project.content_dir / REPORT, hidden / "old.md")
    shutil.copy(project.content_dir / REPORT, project.content_dir / "reports" / ".#130502-2023.md")  # a lock file
    cache_dir = project.content_dir / ".reportsite-cache"
    first = build(with_cache(project, BuildCache(cache_dir)))
    assert first.reports == reports and not first.problems
    again = BuildCache(cache_dir)
    build(with_cache(project, again))
    assert again.stats.parsed == 0 and again.stats.rendered == [] and again.stats.reused == 0  # nothing to do


def test_build_with_unchanged_inputs_does_nothing(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    first = build(with_cache(project, BuildCache(cache_dir)))
    before = tree(project.out_dir)
    again = BuildCache(cache_dir)
    result = build(with_cache(project, again))
    assert (result.reports, result.files, result.problems, result.written) == (first.reports, first.files,
                                                                                first.problems, 0)
    assert again.stats.reused == 0 and again.stats.rendered == [] and tree(project.out_dir) == before
    (project.out_dir / "index.html").write_text("edited by hand", encoding="utf-8")  # the output changed
    repaired = BuildCache(cache_dir)
    build(with_cache(project, repaired))
    assert repaired.stats.reused > 0 and tree(project.out_dir) == before
    edit_report(project)  # an input changed
    edited = BuildCache(cache_dir)
    build(with_cache(project, edited))
    assert edited.stats.parsed == 1 and "reports/130502-2023/index.html" in edited.stats.rendered


def test_stored_parses_point_to_this_builds_rules_and_a_changed_rule_reparses(project: BuildOptions,
                                                                             tmp_path: Path) -> None:
    """A report's cache entry refers to the indicators and report parts its results point to (one object
    each for all reports, not a copy per report); when one of those rules changes, the entry is stale."""
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    cache = BuildCache(cache_dir)
    _, data = prepare(with_cache(project, cache))
    assert cache.stats.parsed == 0 and data.analysis is not None
    indicators = {id(i) for i in data.analysis.rules.indicators}
    parts = {id(p) for p in data.analysis.part_rules.parts}
    values = [v for vs in data.analysis.values.values() for v in vs]
    findings = [f for c in data.analysis.compliance.values() for f in c.findings]
    assert len({v.report.slug for v in values}) > 1 and len(findings) > 4
    assert all(id(v.indicator) in indicators for v in values) and all(id(f.part) in parts for f in findings)
    # the first indicator's description changed: the reports with a value of it are parsed again (the
    # others are read, and their values made again, as after any change of the rules)
    first = data.analysis.rules.indicators[0]
    path = project.content_dir / "indicators.yml"
    text = path.read_text(encoding="utf-8")
    assert f"description: {first.description}" in text
    path.write_text(text.replace(first.description, first.description + "（口径说明已改）", 1), encoding="utf-8")
    changed = BuildCache(cache_dir)
    build(with_cache(project, changed))
    assert 0 < changed.stats.parsed == len({v.report.slug for v in values if v.indicator is first}) < 5
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(project.out_dir) == tree(tmp_path / "cold")


def test_disk_cache_keeps_only_what_the_last_build_used(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    def stored(kind: str) -> int:
        return sum(1 for _ in cache_dir.glob(f"v*/{kind}/*/*.pickle"))

    build(with_cache(project, BuildCache(cache_dir)))
    reports, calls = stored("report"), stored("call")
    assert reports == len(list((project.content_dir / "reports").glob("*.md"))) and calls >= 1
    for _ in range(2):  # each edit makes a new parse and a new search index; the old ones go
        edit_report(project)
        build(with_cache(project, BuildCache(cache_dir)))
        assert (stored("report"), stored("call")) == (reports, calls)
    os.utime(project.content_dir / REPORT)
    again = BuildCache(cache_dir)
    build(with_cache(project, again))
    assert again.stats.parsed == 0  # what was kept is what the next build needs


def test_a_headed_value_and_its_long_text_come_back_as_kept_and_a_cut_file_as_none(tmp_path: Path) -> None:
    disk = DiskStore(tmp_path)
    key = bytes(16)
    texts = ["", "依法行政\ud800。" * 50_000, "报告" * (1 << 20) + "完"]  # none; a lone surrogate; over a piece
    for text in texts:
        disk.put_headed("input", key, ("head", 1), [1, "二"], text)
        assert disk.get_head("input", key) == ("head", 1)
        head, value, stored = disk.get_headed("input", key)  # the text as stored, decoded when asked
        assert (head, value, stored.whole(), stored.units) == (("head", 1), [1, "二"], text, len(text))
        assert stored.slice(3, 40) == text[3:40] and stored.slice(len(text) - 2, len(text)) == text[-2:]
    kept = next(tmp_path.glob("input/*/*.pickle"))
    whole = kept.read_bytes()
    kept.write_bytes(whole[:-1])  # half a character
    assert disk.get_headed("input", key) is None
    kept.write_bytes(whole[:-2])  # a character short: search.input_of_columns finds it short of the bounds
    head, value, stored = disk.get_headed("input", key)
    assert stored.units == len(texts[-1]) - 1


def test_progress_bar_starts_no_thread_so_builds_on_a_terminal_still_fork_their_pools() -> None:
    threads = threading.active_count()
    progress = Progress(enabled=True)
    progress.start("解析报告", 1000)
    progress.advance(10)
    try:
        assert threading.active_count() == threads
    finally:
        progress.done()


def test_values_in_a_pack_are_found_and_a_mostly_unused_pack_is_written_again(tmp_path: Path) -> None:
    import pickle

    disk = DiskStore(tmp_path)
    keys = [bytes([k]) * 16 for k in range(6)]
    pack = PackWriter(disk, "report")
    for k, key in enumerate(keys[:4]):
        pack.add(key, pickle.dumps(("值", k)))
    assert disk.get("report", keys[0]) is None  # not until the pack is closed
    pack.close()
    disk.put("report", keys[4], ("值", 4))  # a file of its own beside the pack
    assert [disk.get("report", key) for key in keys] == [("值", 0), ("值", 1), ("值", 2), ("值", 3), ("值", 4), None]
    assert DiskStore(tmp_path).get("report", keys[3]) == ("值", 3)  # another store reads the pack's index
    packs = lambda: sorted(disk.pack_folder("report").glob("*.pack"))  # noqa: E731
    assert len(packs()) == 1 and not list(disk.pack_folder("report").glob(".*"))
    # three of four kept: the pack stays as it is
    assert disk.prune("report", set(keys[:3]) | {keys[4]}) == 0 and len(packs()) == 1
    # one of four kept: written again with that one alone; the others are gone
    first = packs()[0]
    assert disk.prune("report", {keys[1], keys[4]}) == 3
    assert packs() != [first] and len(packs()) == 1
    fresh = DiskStore(tmp_path)
    assert [fresh.get("report", key) for key in keys] == [None, ("值", 1), None, None, ("值", 4), None]
    assert disk.prune("report", set()) == 2 and packs() == []
    assert DiskStore(tmp_path).get("report", keys[1]) is None


def test_a_pack_cut_short_or_discarded_gives_nothing(tmp_path: Path) -> None:
    import pickle

    disk = DiskStore(tmp_path)
    pack = PackWriter(disk, "report")
    pack.add(bytes(16), pickle.dumps("内容" * 1000))
    pack.close()
    [path] = disk.pack_folder("report").glob("*.pack")
    path.write_bytes(path.read_bytes()[:-3])  # its index's position cut
    assert DiskStore(tmp_path).get("report", bytes(16)) is None
    dropped = PackWriter(disk, "call")
    dropped.add(bytes(16), pickle.dumps(1))
    dropped.discard()
    assert list(disk.pack_folder("call").iterdir()) == [] and DiskStore(tmp_path).get("call", bytes(16)) is None


def test_a_stored_parse_under_another_files_key_is_not_taken_for_it(project: BuildOptions, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    build(with_cache(project, BuildCache(cache_dir)))
    first, second = sorted(cache_dir.glob("v*/report/*/*.pickle"))[:2]
    one, other = first.read_bytes(), second.read_bytes()
    first.write_bytes(other)  # each key now holds the other file's parse
    second.write_bytes(one)
    for path in (project.content_dir / "reports").glob("*.md"):
        os.utime(path)  # touched: each file is read and its parse looked up by its digest
    swapped = BuildCache(cache_dir)
    build(with_cache(project, swapped, tmp_path / "again"))
    assert swapped.stats.parsed == 2
    build(with_cache(project, None, tmp_path / "cold"))
    assert tree(tmp_path / "again") == tree(tmp_path / "cold")
