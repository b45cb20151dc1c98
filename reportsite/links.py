"""Check the rendered site: every internal link and #anchor must resolve (the build fails otherwise)."""

from __future__ import annotations

import html as htmllib
import posixpath
import re
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from .errors import Problem
from .workers import forked_processes, pool_size, received, reporting_to


@dataclass(frozen=True)
class PageLinks:
    """What the check needs of a page: the ids it defines and its links, each with its line. The build
    cache keeps them for every page - 1.5 million links at 10,000 reports - so the links are two flat
    sequences, not a tuple each: 100 MB less in every build's memory."""

    ids: frozenset[str]
    lines: array  # array("I"): the line of each link
    hrefs: tuple[str, ...]

    @property
    def links(self) -> Iterator[tuple[int, str]]:
        """(line, href) of each link."""
        return zip(self.lines, self.hrefs, strict=True)


class Links(Protocol):
    """What the link check reads of a page: its PageLinks, or the build cache's stand-in for those of a page
    it kept (cache.StoredLinks), read only if the check looks into that page."""

    @property
    def ids(self) -> frozenset[str]: ...

    @property
    def hrefs(self) -> tuple[str, ...]: ...

    @property
    def links(self) -> Iterator[tuple[int, str]]: ...


# The pages are our own templates' output: attribute values are always quoted and escaped by Jinja (or by
# the sanitizer, for report text), so the attributes the check needs are found by pattern and then
# confirmed to stand inside a tag - html.parser took a quarter of a cold build, a pattern per tag a tenth.
# The pattern is \s(id|href|src)\s*=\s*("…"|'…'), scanned as one pattern per name that starts with the
# name (re looks for a pattern's literal start quickly, where \s( ... ) is tried at every white space:
# twice the time), the rest a lookahead: the scans find every place the whole pattern could match, and
# _attributes keeps those one scan of the whole pattern would.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_VALUE = r"""(?=\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)'))"""
_NAMED = tuple(re.compile(name + _VALUE) for name in ("id", "href", "src"))
_REL_NOT_A_LINK = re.compile(r"""\srel\s*=\s*["']?(?:canonical|alternate)\b""")


def _attributes(text: str) -> Iterator[tuple[int, bool, str]]:
    """(where the white space before it is, whether it is an id, value) of each attribute, in order, as
    re.finditer of the whole pattern finds them: a match begins after the last one's value ends."""
    found = [m for pattern in _NAMED for m in pattern.finditer(text)]
    found.sort(key=re.Match.start)
    end = 0
    for m in found:
        at = m.start() - 1
        if at < end or not text[at].isspace():
            continue
        value = m.group(1)
        if value is None:
            value = m.group(2)
            end = m.end(2) + 1
        else:
            end = m.end(1) + 1
        yield at, text[at + 1] == "i", value


def parse_page(page: bytes) -> PageLinks:
    """The ids and links of one page; kept by the build cache for unchanged pages."""
    text = page.decode("utf-8")
    if "<!--" in text:  # blank comments out, keeping line numbers
        text = _COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text)
    ids: set[str] = set()
    lines = array("I")
    hrefs: list[str] = []
    line, counted = 1, 0
    for at, is_id, value in _attributes(text):
        tag = text.rfind("<", 0, at)
        if tag < 0 or text.rfind(">", tag, at) >= 0:  # in text, not in a tag: a report quoting HTML
            continue
        if "&" in value:
            value = htmllib.unescape(value)
        if is_id:
            if value:
                ids.add(value)
        elif value and not (text.startswith("<link", tag) and _REL_NOT_A_LINK.search(text, tag, text.find(">", at))):
            line += text.count("\n", counted, tag)
            counted = tag
            lines.append(line)
            hrefs.append(sys.intern(value))  # hrefs repeat across pages: one string each
    return PageLinks(frozenset(ids), lines, tuple(hrefs))


_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def resolve(page: str, href: str) -> tuple[str, str]:
    """(site path of the target file, anchor) for a relative link found on `page` (not an external one:
    what urlsplit would give, without its cost - a site at 10,000 reports has 1.5 million links)."""
    rest, _, fragment = href.partition("#")
    path = unquote(rest.partition("?")[0])
    if not path:
        target = page
    else:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if path.endswith("/") or target == ".":
            target = (target.rstrip("/") + "/index.html").lstrip("./") if target != "." else "index.html"
    return target, unquote(fragment)


def check_parsed(parsed: Mapping[str, Links], existing: set[str], only: Iterable[str] | None = None) -> list[Problem]:
    """The broken links of the pages (`only` these, when given; `parsed` holds every page's ids), in the
    order of the pages and of their links."""
    problems = []
    # The same links recur on thousands of pages (menus, assets, a report's other years): a link resolves
    # the same from every page at the same depth whose folders agree as far as the link climbs, so once it
    # is found to resolve from one, it is not checked again from the others. Kept per (depth, folder).
    # (1.5 million links at 10,000 reports: 2.0 -> 1.3 s; a link to the page itself is not resolved.)
    fine: dict[tuple[int, str], set[str]] = {}
    for path in parsed if only is None else only:
        page = parsed[path]
        folders = path.split("/")[:-1]
        depth = len(folders)
        known = [fine.setdefault((depth, "/".join(folders[:level])), set()) for level in range(depth + 1)]
        broken: dict[str, tuple[str, str]] = {}
        for href in set(page.hrefs).difference(*known):
            fault = _fault(parsed, existing, path, href)
            if fault is not None:
                broken[href] = fault
            elif (level := _level(href, depth)) is not None:
                known[level].add(href)
        problems += [Problem(path, line, *broken[href]) for line, href in page.links if href in broken]
    return problems


CHECK_SPLIT_MIN = 4000  # pages, at least, whose links two processes check (a full build's 13,000: 4 s alone)


def check_pages(parsed: Mapping[str, Links], existing: set[str], only: Iterable[str] | None = None) -> list[Problem]:
    """check_parsed, by two processes when there are many pages to check: this one checks every other page,
    a forked one (which has `parsed` as this one has it) the others; the problems in check_parsed's order."""
    pages = list(parsed if only is None else only)
    if pool_size(len(pages), CHECK_SPLIT_MIN) < 2:
        return check_parsed(parsed, existing, pages)
    with forked_processes(_check_part, [(parsed, existing, pages[1::2])]) as (connection,):
        problems = check_parsed(parsed, existing, pages[::2]) + received(connection)
    order = {path: k for k, path in enumerate(pages)}
    return sorted(problems, key=lambda problem: order[problem.path])  # stable: a page's links stay in order


def _check_part(parsed: Mapping[str, Links], existing: set[str], pages: list[str], connection: object) -> None:
    with reporting_to(connection) as send:
        send(check_parsed(parsed, existing, pages))


def _level(href: str, depth: int) -> int | None:
    """How many of its page's folders a link's target depends on (a link that climbs k folders, depth - k);
    None: on the page itself, or climbing out of the site."""
    if href[0] in "#?":
        return None
    if _elsewhere(href):
        return 0
    climbs = 0
    while href.startswith("../", 3 * climbs):
        climbs += 1
    return depth - climbs if climbs <= depth else None


def _elsewhere(href: str) -> bool:
    """A link off the site (another scheme, data: among them, or host): not checked."""
    return bool(_EXTERNAL.match(href))


def _fault(parsed: Mapping[str, Links], existing: set[str], path: str, href: str) -> tuple[str, str] | None:
    """(what is wrong, what to do) with a link on the page at `path`; None if it resolves."""
    if href[0] in "#?":  # on the page itself (resolve's answer, without its cost)
        target, anchor = path, unquote(href.partition("#")[2])
    elif _elsewhere(href):
        return None
    else:
        target, anchor = resolve(path, href)
    if target.startswith("../") or target not in existing:
        return f"broken link {href!r}: no file {target}", "fix the template or the content that makes this link"
    if anchor and target in parsed and anchor not in parsed[target].ids:
        return (f"broken anchor {href!r}: {target} has no id {anchor!r}",
                "link to an existing section id, or add an alias")
    return None


def pages_to_check(parsed: Mapping[str, Links], digests: dict[str, bytes],
                   checked: Mapping[str, tuple[bytes, Links | None]] | None) -> list[str] | None:
    """The pages whose links need checking, given the last build's pages (path -> digest, links), all of
    whose links resolved: only the changed ones, while the site has the same files and no changed page lost
    an id (an unchanged page's links then still resolve). None: every page (no checked build to go by)."""
    if checked is None or digests.keys() != checked.keys():
        return None
    changed = [path for path, digest in digests.items() if checked[path][0] != digest]
    for path in changed:
        before, now = checked[path][1], parsed.get(path)
        if before is not None and (now is None or not now.ids >= before.ids):
            return None
    return [path for path in changed if path in parsed]
