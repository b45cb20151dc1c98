"""links.py: the pattern scan finds what a real HTML parser finds, and nothing in text."""

from __future__ import annotations

import posixpath
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from reportsite.links import PageLinks, parse_page, resolve
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
    return PageLinks(frozenset(parser.ids), tuple(parser.links))


def test_every_page_of_the_site_gives_the_ids_and_links_an_html_parser_gives(built_site: Path) -> None:
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) > 50
    for path in pages:
        data = path.read_bytes()
        assert parse_page(data) == reference_links(data), path.relative_to(built_site)


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
