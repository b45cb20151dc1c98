"""pipeline: the search index's input kept between builds, and what the spare child makes of it ahead of the
parent (speculate_index). The builds through it are tested whole in test_renderpool.py."""

from __future__ import annotations

import os
from pathlib import Path

from reportsite import pipeline, search
from reportsite.cache import DiskStore, file_digest
from reportsite.config import load_config
from reportsite.model import content_files, load_content
from reportsite.topics import load_topics

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
    return source.sections, source.texts.joined, source.texts.bounds.tolist(), source.report_rows, source.facets


def test_the_kept_input_is_read_back_by_the_code_version_that_kept_it(content_copy: Path, tmp_path: Path) -> None:
    disk, store = DiskStore(tmp_path / "cache"), b"site folder key."
    source = kept(content_copy, disk, store)
    last = pipeline.last_index_input(disk, store, VERSION)
    assert last is not None and plain(last.source) == plain(source)
    assert pipeline.last_index_input(disk, store, b"code version 2") is None  # another version's fields
    path = next((tmp_path / "cache" / pipeline.INPUT).glob("*/*.pickle"))
    os.truncate(path, path.stat().st_size - 10)  # the texts cut short: not taken for the input
    assert pipeline.last_index_input(disk, store, VERSION) is None


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

    heading = text.index("\n## ") + 4
    report.write_text(text[:heading] + "新" + text[heading:], encoding="utf-8")
    assert pipeline.speculate_index(disk, store, content_copy, VERSION).plan is None
    report.write_text(text, encoding="utf-8")
    (report.parent / "new-report.md").write_text(text.replace("slug:", "slug: new-", 1), encoding="utf-8")
    assert pipeline.speculate_index(disk, store, content_copy, VERSION).plan is None
