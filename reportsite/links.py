"""Check the rendered site: every internal link and #anchor must resolve (the build fails otherwise)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

from .errors import Problem


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        for attr in ("href", "src"):
            value = values.get(attr)
            if value and not (tag == "link" and values.get("rel") in ("canonical", "alternate")):
                self.links.append((self.getpos()[0], value))


_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def resolve(page: str, href: str) -> tuple[str, str]:
    """(site path of the target file, anchor) for a relative link found on `page`."""
    parts = urlsplit(href)
    path = unquote(parts.path)
    if not path:
        target = page
    else:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if path.endswith("/") or target == ".":
            target = (target.rstrip("/") + "/index.html").lstrip("./") if target != "." else "index.html"
    return target, unquote(parts.fragment)


def parse_page(html: bytes) -> _LinkParser:
    """The ids and links of one page (`.ids`, `.links`); kept by the build cache for unchanged pages."""
    parser = _LinkParser()
    parser.feed(html.decode("utf-8"))
    return parser


def check_links(pages: Iterable[tuple[str, bytes]], existing: set[str]) -> list[Problem]:
    """`pages`: (site path, html) of every HTML page; `existing`: every file path in the site."""
    return check_parsed({path: parse_page(html) for path, html in pages}, existing)


def check_parsed(parsed: dict[str, _LinkParser], existing: set[str]) -> list[Problem]:
    problems = []
    for path, parser in parsed.items():
        for line, href in parser.links:
            if _EXTERNAL.match(href) or href.startswith("data:"):
                continue
            target, anchor = resolve(path, href)
            if target.startswith("../") or target not in existing:
                problems.append(Problem(path, line, f"broken link {href!r}: no file {target}",
                                        "fix the template or the content that makes this link"))
            elif anchor and target in parsed and anchor not in parsed[target].ids:
                problems.append(Problem(path, line, f"broken anchor {href!r}: {target} has no id {anchor!r}",
                                        "link to an existing section id, or add an alias"))
    return problems
