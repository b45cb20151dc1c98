"""links.py: the pattern scan finds what a real HTML parser finds, and nothing in text."""

from __future__ import annotations

import hashlib
import posixpath
import re
from array import array
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportsite import links as links_module
from reportsite.cache import BuildCache
from reportsite.errors import ReportsiteError
from reportsite.links import PageLinks, check_pages, check_parsed, pages_to_check, parse_page, resolve
from reportsite.pipeline import BuildOptions, build

from .conftest import ROOT


class _Reference(HTMLParser):
    """The ids and links of a page by the standard library's HTML parser (slow, but a parser)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "link" and values.get("rel") in ("canonical", "alternate"):
            return
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append((self.getpos()[0], value))

    handle_startendtag = handle_starttag


def reference_links(page: bytes) -> PageLinks:
    parser = _Reference()
    parser.feed(page.decode("utf-8"))
    return PageLinks(frozenset(parser.ids), array("I", [line for line, _ in parser.links]),
                     tuple(href for _, href in parser.links))


def test_every_page_of_the_site_gives_the_ids_and_links_an_html_parser_gives(built_site: Path) -> None:
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) > 50
    for path in pages:
        data = path.read_bytes()
        assert parse_page(data) == reference_links(data), path.relative_to(built_site)


# The whole pattern the scans of links._attributes stand for
_WHOLE = re.compile(r"""\s(id|href|src)\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)')""")
_SOUP = st.lists(st.sampled_from([" ", "\n", "x", "<a", ">", " = ", '"', "'", ' id="', " id='", ' href="', " src='",
                                  "grid=", "#s1", "&amp;", "报告"]), max_size=30).map("".join)


@settings(max_examples=500)
@given(_SOUP)
def test_the_scans_by_name_find_what_one_scan_of_the_whole_pattern_finds(text: str) -> None:
    whole = [(m.start(), m.group(1) == "id", m.group(2) if m.group(2) is not None else m.group(3))
             for m in _WHOLE.finditer(text)]
    assert list(links_module._attributes(text)) == whole


def test_html_quoted_in_report_text_is_not_taken_for_a_link(content_copy: Path, tmp_path: Path) -> None:
    path = content_copy / "reports" / "130502-2023.md"
    path.write_text(path.read_text(encoding="utf-8") + '\n网页源码 a href="missing.html" id="x" 已删除。\n',
                    encoding="utf-8")
    out = tmp_path / "site"
    build(BuildOptions(content_copy, out, templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    page = (out / "reports" / "130502-2023" / "index.html").read_bytes()
    assert b'href="missing.html"' in page  # in the text, as text
    assert all(href != "missing.html" for _, href in parse_page(page).links)
    assert "x" not in parse_page(page).ids


def resolve_by_urlsplit(page: str, href: str) -> tuple[str, str]:
    """The reference: what the standard library makes of a relative link."""
    parts = urlsplit(href)
    path = unquote(parts.path)
    if not path:
        return page, unquote(parts.fragment)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if path.endswith("/") or target == ".":
        target = (target.rstrip("/") + "/index.html").lstrip("./") if target != "." else "index.html"
    return target, unquote(parts.fragment)


@given(st.sampled_from(["index.html", "reports/130502-2023/index.html", "topics/x/2/index.html"]),
       st.lists(st.sampled_from(["..", ".", "reports", "130502-2023", "a%20b", "index.html", ""]), max_size=4),
       st.sampled_from(["", "/"]), st.sampled_from(["", "?fig=3", "?q=%E6%B3%95"]),
       st.sampled_from(["", "#s2-1", "#%E6%B3%95"]))
def test_links_resolve_as_urlsplit_resolves_them(page: str, parts: list[str], slash: str, query: str,
                                                  fragment: str) -> None:
    href = "/".join(parts) + slash + query + fragment
    if href and not href.startswith("/"):
        assert resolve(page, href) == resolve_by_urlsplit(page, href)


def site_pages(site: Path) -> tuple[dict[str, PageLinks], dict[str, bytes]]:
    """(ids and links of each page, digest of each file) of a built site."""
    parsed, digests = {}, {}
    for path in sorted(site.rglob("*")):
        if path.is_file():
            name, data = path.relative_to(site).as_posix(), path.read_bytes()
            digests[name] = hashlib.blake2b(data, digest_size=16).digest()
            if path.suffix == ".html":
                parsed[name] = parse_page(data)
    return parsed, digests


def broken_one_by_one(parsed: dict[str, PageLinks], existing: set[str]) -> list[tuple[str, int, str]]:
    """(page, line, href) of every link that does not resolve, each link resolved on its own."""
    broken = []
    for page, links in parsed.items():
        for line, href in links.links:
            if href.startswith(("http:", "https:", "mailto:", "data:", "//")):
                continue
            target, anchor = resolve(page, href)
            if target not in existing or (anchor and target in parsed and anchor not in parsed[target].ids):
                broken.append((page, line, href))
    return broken


def test_the_check_finds_what_checking_each_link_on_its_own_finds(built_site: Path) -> None:
    """A link found to resolve from one page is not checked again from pages where it resolves the same (same
    depth, same folders as far as it climbs): pages in other folders, at other depths, with lost ids and
    links of every kind must still be judged one by one."""
    parsed, digests = site_pages(built_site)
    report, topic = "reports/130502-2023/index.html", next(p for p in parsed if p.startswith("topics/") and
                                                               p.count("/") == 2)
    other = next(p for p in parsed if p.startswith("reports/") and p.count("/") == 2 and p != report)
    lost = sorted(parsed[other].ids)[:3]
    faulty = {**parsed, other: replace(parsed[other], ids=parsed[other].ids - set(lost))}
    sibling = "../" + other.split("/")[1] + "/"  # resolves from the reports' folder, not from a topic's
    for page in (report, topic, "index.html"):
        extra = (sibling, f"{sibling}#{lost[0]}", "../../about/", "../about/", "#nowhere", f"?x=1#{lost[1]}")
        links = faulty[page]
        faulty[page] = PageLinks(links.ids, array("I", [*links.lines, *range(900, 900 + len(extra))]),
                                 (*links.hrefs, *extra))
    # an anchor on the page itself: fine on the first page checked, broken on the next one of its folder
    first, second = [p for p in parsed if "/" not in p][:2]
    for page, ids in ((first, {"only-here"}), (second, set())):
        links = faulty[page]
        faulty[page] = PageLinks(links.ids | ids, array("I", [*links.lines, 990]), (*links.hrefs, "#only-here"))
    existing = set(digests)
    expected = broken_one_by_one(faulty, existing)
    assert (second, 990, "#only-here") in expected and (first, 990, "#only-here") not in expected
    found = [(p.path, p.line, p.message.split("'")[1]) for p in check_parsed(faulty, existing)]
    assert found == expected
    assert {href for page, _, href in expected if page == topic} >= {sibling, "#nowhere"}
    assert (report, 900, sibling) not in expected and (report, 901, f"{sibling}#{lost[0]}") in expected
    some = [report, topic]
    assert [(p.path, p.line) for p in check_parsed(faulty, existing, some)] == [
        (page, line) for page, line, _ in expected if page in some]


def test_two_processes_find_what_one_finds_in_its_order(built_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """check_pages splits many pages between this process and a forked one: the same problems, in the order
    of the pages and of their links, as check_parsed finds alone."""
    parsed, digests = site_pages(built_site)
    faulty = dict(parsed)
    for k, page in enumerate(sorted(parsed)[::3]):  # a broken link on every third page, two on some
        extra = ("../nowhere/",) if k % 2 else ("#gone", "missing.html")
        found = faulty[page]
        faulty[page] = PageLinks(found.ids, array("I", [*found.lines, *range(700, 700 + len(extra))]),
                                 (*found.hrefs, *extra))
    existing = set(digests)
    expected = check_parsed(faulty, existing)
    assert len(expected) > len(parsed) // 3
    forks: list[int] = []
    forked_processes = links_module.forked_processes
    monkeypatch.setattr(links_module, "forked_processes", lambda *args: forks.append(1) or forked_processes(*args))
    monkeypatch.setattr(links_module, "CHECK_SPLIT_MIN", 2)
    # two cores, as if no other thread ran (a thread left by an earlier test would keep the check in one process)
    monkeypatch.setattr(links_module, "pool_size", lambda tasks, minimum: 2 if tasks >= minimum else 1)
    assert check_pages(faulty, existing) == expected and forks == [1]
    some = sorted(parsed)[5:40]
    assert check_pages(faulty, existing, some) == check_parsed(faulty, existing, some) != []
    monkeypatch.setattr(links_module, "CHECK_SPLIT_MIN", 10 ** 6)
    assert check_pages(faulty, existing) == expected and forks == [1, 1]


def test_only_changed_pages_are_checked_while_the_files_and_ids_stay(built_site: Path) -> None:
    parsed, digests = site_pages(built_site)
    checked = {name: (digest, parsed.get(name)) for name, digest in digests.items()}
    page = "reports/130502-2023/index.html"
    assert pages_to_check(parsed, digests, None) is None  # no checked build to go by: every page
    assert pages_to_check(parsed, digests, checked) == []
    changed = {**digests, page: b"other bytes"}
    assert pages_to_check(parsed, changed, checked) == [page]
    more_ids = {**parsed, page: replace(parsed[page], ids=parsed[page].ids | {"new-id"})}
    assert pages_to_check(more_ids, changed, checked) == [page]
    # it lost an id that an unchanged page may link to, or a file was removed or added: every page
    lost = sorted(parsed[page].ids)[0]
    fewer_ids = {**parsed, page: replace(parsed[page], ids=parsed[page].ids - {lost})}
    assert pages_to_check(fewer_ids, changed, checked) is None
    assert pages_to_check(parsed, {k: v for k, v in digests.items() if k != page}, checked) is None
    assert pages_to_check(parsed, {**digests, "new.html": b"x"}, checked) is None


def test_a_cached_rebuild_still_finds_a_broken_link_on_an_edited_page(content_copy: Path, tmp_path: Path) -> None:
    options = BuildOptions(content_copy, tmp_path / "site", templates_dir=ROOT / "templates",
                           theme_dir=ROOT / "theme", cache=BuildCache(tmp_path / "cache"))
    build(options)
    before = site_pages(options.out_dir)[1]
    path = content_copy / "reports" / "130502-2023.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n详见[第九部分](#no-such-section)。\n", encoding="utf-8")
    with pytest.raises(ReportsiteError) as failed:
        build(replace(options, cache=BuildCache(tmp_path / "cache")))
    assert any("no-such-section" in p.message and p.path == "reports/130502-2023/index.html"
               for p in failed.value.problems)
    assert site_pages(options.out_dir)[1] == before  # the last good site stays
