"""Render: content model + derived views -> HTML/XML files (Jinja2 templates in templates/).

All internal links are relative to the page that holds them, so the site works under any sub-path
and on any static host; only canonical URLs, the sitemap and the feed use the configured base URL.
"""

from __future__ import annotations

import re
import traceback
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nh3

from .config import SiteConfig
from .errors import Problem
from .model import LEVEL_LABELS, Report, ReportFace, Section, pinyin_slug
from .topics import TopicMatch, TopicRules

if TYPE_CHECKING:  # imported where used: a rebuild's spare child, forked after this module is, renders nothing
    import markdown
    from jinja2 import Environment

    from .figures import Analysis

ALLOWED_TAGS = {"p", "br", "strong", "em", "b", "i", "ul", "ol", "li", "blockquote", "code", "pre", "table",
                "thead", "tbody", "tr", "th", "td", "hr", "sup", "sub", "span", "div", "a", "h5", "h6"}
ALLOWED_ATTRS = {"*": {"class"}, "a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}


@dataclass(frozen=True)
class OutputFile:
    path: str  # site-relative, forward slashes
    data: bytes
    key: bytes | None = None  # the build cache's digest of its inputs (PageRenderer.made), if it has one


@dataclass(frozen=True)
class Deferred:
    """A template value computed only when the page is rendered: a page cache that finds the page
    unchanged (same function, same arguments) skips the work (see cache.py)."""

    function: Callable[..., Any]
    args: tuple[Any, ...]

    def value(self) -> Any:
        return self.function(*self.args)


@dataclass(frozen=True)
class SectionNode:
    section: Section
    html: str
    topics: tuple[TopicMatch, ...]
    children: list[SectionNode] = field(default_factory=list)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportPanel:
    """A block on a report page: `template` (a partial, named _*.html: the build cache counts every
    partial as an input of pages that include one by a name chosen at render time) is included there,
    with `values` as `p`. It is rendered with the page (in a worker process on a big build)."""

    template: str
    values: dict[str, Any]


@dataclass(frozen=True)
class SiteData:
    """Everything the templates need, computed once before rendering."""

    config: SiteConfig
    reports: tuple[Report, ...]
    topic_rules: TopicRules
    topics: dict[str, dict[str, tuple[TopicMatch, ...]]]  # report slug -> section id -> matches
    topic_views: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> pages.topic_views of the report
    extra_report_panels: dict[str, list[ReportPanel]] = field(default_factory=dict)  # slug -> its blocks
    nav_extra: tuple[tuple[str, str], ...] = ()  # (label, site path) added to the main menu
    analysis: Analysis | None = None  # key figures, indicator values and the structure check (figures.py)


# ------------------------------------------------------------------------------------------------------
# URLs


def report_path(report: ReportFace) -> str:
    return f"reports/{report.slug}/"


def region_id(report: ReportFace) -> str:
    """The page of the report's own jurisdiction: its adcode, or adcode + name for departments etc."""
    j = report.jurisdiction
    if j.level in ("department", "town", "street", "other") or not j.adcode:
        own = report.issuer if j.level == "department" and report.issuer else j.name
        return f"{j.adcode or 'x'}-{pinyin_slug(own, 10)}"
    return j.adcode


def province_code(report: ReportFace) -> str | None:
    return report.jurisdiction.adcode[:2] + "0000" if report.jurisdiction.adcode else None


def city_code(report: ReportFace) -> str | None:
    j = report.jurisdiction
    if not j.adcode or j.level == "province":
        return None
    code = j.adcode[:4] + "00"
    # A municipality (上海市) is its own city: no separate city page, as in pages.build_regions.
    return code if j.city and j.city != j.province else None


def relative_url(from_page: str, target: str) -> str:
    """Link from page `from_page` (site path of an .html file or a dir/) to `target` (site path).

    Site paths are normalised (no `.`, `..` or `//`), so this is posixpath.relpath without its cost:
    a build makes a few hundred thousand of these links."""
    return url_maker(from_page)(target)


def url_maker(from_page: str) -> Callable[[str], str]:
    """relative_url(from_page, ·), quicker for the links that leave the page's top folder (most do)."""
    base = from_page.rstrip("/") if from_page.endswith("/") else from_page.rpartition("/")[0]
    top = base.partition("/")[0]
    up = "../" * (base.count("/") + 1) if base else ""

    def url(target: str) -> str:
        first = target.partition("/")[0].partition("#")[0]
        if first and first != top and first not in (".", ".."):
            return up + target
        return _relative_url(base, target)

    return url


def _relative_url(base: str, target: str) -> str:
    anchor = ""
    if "#" in target:
        target, _, anchor = target.partition("#")
        anchor = "#" + anchor
    if anchor and not target:  # an anchor alone stays on the page
        return anchor
    if target == "":  # the site's root (首页)
        return "../" * len(base.split("/")) if base else "./"
    is_dir = target.endswith("/")
    base_parts = base.split("/") if base else []
    target_parts = target.rstrip("/").split("/") if target.rstrip("/") else []
    common = 0
    for a, b in zip(base_parts, target_parts, strict=False):
        if a != b:
            break
        common += 1
    rel = "/".join([".."] * (len(base_parts) - common) + target_parts[common:]) or "."
    if is_dir:
        rel = "./" if rel == "." else rel + "/"
    return rel + anchor


# ------------------------------------------------------------------------------------------------------
# Markdown


def make_markdown() -> markdown.Markdown:
    import markdown
    from markdown.extensions.attr_list import AttrListExtension
    from markdown.extensions.sane_lists import SaneListExtension

    # the extensions as objects: by name, Python-Markdown looks them up among every installed package's entry
    # points (0.02 s)
    return markdown.Markdown(extensions=[AttrListExtension(), SaneListExtension()], output_format="html")


class MarkdownOnDemand:
    """make_markdown's converter, made when a text first needs it: most texts are the importer's plain
    paragraphs (plain_markdown_html), and importing and making it took 0.05 s of a rebuild that renders one
    page. A page's fingerprint counts it as the Markdown it stands for (cache.Fingerprinter)."""

    def __init__(self) -> None:
        self._md: markdown.Markdown | None = None

    def reset(self) -> None:
        if self._md is not None:
            self._md.reset()

    def convert(self, text: str) -> str:
        if self._md is None:
            self._md = make_markdown()
        return self._md.convert(text)


# The importer writes plain paragraphs: text with backslash escapes, &lt; / &amp;, **bold** lead-ins and a
# closing block of lines with hard breaks. For these, HTML is made here, as Python-Markdown makes it (tested
# on every section of the samples and on generated text); anything else goes to Python-Markdown. This
# halves the time of a report page.
_PLAIN_ESCAPES = re.compile(r"\\([\\`*_{}\[\]()>#+\-.!])")
_PLAIN_UNSAFE = re.compile(r"[`_\[\]{}<\\\x00-\x1f]|&(?!lt;|amp;)|\*\*\*|\s\*\*|\*\*\s|^\s|\s$")
_PLAIN_START = re.compile(r"\d+\.|[#>=|+*-]")
_CLOSING_TAIL = "\n{: .closing }"


def plain_paragraph_html(block: str) -> str | None:
    """A paragraph of the importer's plain Markdown as HTML, or None when it uses anything more."""
    if "\x02" in block:
        return None
    stash: list[str] = []

    def keep(m: re.Match[str]) -> str:
        stash.append(m.group(1))
        return "\x02"

    text = _PLAIN_ESCAPES.sub(keep, block)
    bare = text.replace("**", "")
    if not text or _PLAIN_UNSAFE.search(text) or _PLAIN_START.match(bare) or "*" in bare or text.count("**") % 2:
        return None
    text = text.replace("&lt;", "\x03").replace("&amp;", "\x04").replace("&", "&amp;").replace(">", "&gt;")
    text = text.replace("\x03", "&lt;").replace("\x04", "&amp;")
    parts = text.split("**")
    text = "".join(part if i % 2 == 0 else f"<strong>{part}</strong>" for i, part in enumerate(parts))
    if stash:
        escaped = iter(stash)
        text = re.sub("\x02", lambda m: {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(c := next(escaped), c), text)
    return text


def plain_markdown_html(markdown_text: str) -> str | None:
    """The HTML of Markdown made only of plain paragraphs and a closing block, or None."""
    out: list[str] = []
    for block in markdown_text.strip("\n").split("\n\n"):
        if block.endswith(_CLOSING_TAIL):
            lines = block[: -len(_CLOSING_TAIL)].split("  \n")
            html = [plain_paragraph_html(line) for line in lines]
            if None in html:
                return None
            out.append('<p class="closing">' + "<br>\n".join(html) + "</p>")  # type: ignore[arg-type]
            continue
        html_block = plain_paragraph_html(block)
        if html_block is None:
            return None
        out.append(f"<p>{html_block}</p>")
    return "\n".join(out)


def sanitized(html: str) -> str:
    """Raw HTML a publisher pasted into a report is never trusted: allow-list sanitizer."""
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRS, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


def markdown_to_html(md: markdown.Markdown | MarkdownOnDemand, text: str) -> str:
    html = plain_markdown_html(text)
    if html is not None:
        # Plain paragraphs are escaped here and hold no tag of the text's: the sanitizer would give them back
        # as they are but for the no-break space, which it spells as an entity (a test holds it to that).
        return html.replace("\xa0", "&nbsp;")
    md.reset()
    return sanitized(md.convert(text))


def section_tree(report: Report, matches: dict[str, tuple[TopicMatch, ...]],
                 md: markdown.Markdown | MarkdownOnDemand) -> list[SectionNode]:
    aliases: dict[str, list[str]] = defaultdict(list)
    for old, new in report.aliases.items():
        aliases[new].append(old)
    roots: list[SectionNode] = []
    by_id: dict[str, SectionNode] = {}
    for section in report.sections:
        node = SectionNode(section, markdown_to_html(md, section.body_md) if section.body_md else "",
                           matches.get(section.id, ()), [], tuple(sorted(aliases.get(section.id, ()))))
        by_id[section.id] = node
        parent = by_id.get(section.parent) if section.parent else None
        (parent.children if parent else roots).append(node)
    return roots


def display_heading(title: str) -> str:
    """Headings split from their paragraph keep the full stop in the source; the page drops it."""
    return title[:-1] if title.endswith("。") else title




_SPACES = re.compile(r"\s+")


def excerpt(text: str, length: int = 120) -> str:
    """The text's first `length` characters but spaces, with … when there are more."""
    # Spaces are taken out of a growing head of the text, not the whole: a topic page shows 160 characters
    # of sections of several thousand.
    end = length + 1
    while True:
        head = _SPACES.sub("", text[:end])
        if len(head) > length:
            return head[:length] + "…"
        if end >= len(text):
            return head
        end *= 2


# ------------------------------------------------------------------------------------------------------
# Rendering


def make_environment(templates_dir: Path, bytecode_dir: Path | None = None) -> Environment:
    """The templates' environment; with `bytecode_dir`, the templates compiled are kept there (by their
    source's checksum) for the next build."""
    from jinja2 import FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape

    from .environment import SiteEnvironment

    env = SiteEnvironment(loader=FileSystemLoader(str(templates_dir)), autoescape=select_autoescape(["html", "xml"]),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                          auto_reload=False,  # an environment serves one build: no stat() per page
                          bytecode_cache=FileSystemBytecodeCache(str(bytecode_dir)) if bytecode_dir else None)
    env.filters["heading"] = display_heading
    env.filters["excerpt"] = excerpt
    env.filters["level_label"] = lambda level: LEVEL_LABELS.get(level, level)
    env.filters["cn_date"] = lambda d: f"{d.year}年{d.month}月{d.day}日" if isinstance(d, date) else ""
    # constants of the code (its version is part of every page's key), not given to each of 10,000 pages
    from .compliance import DEADLINE_LABELS, STATUS_LABELS

    env.globals.update(status_labels=STATUS_LABELS, deadline_labels=DEADLINE_LABELS)
    return env


@dataclass(frozen=True)
class PendingPage:
    """A page to render: its template, site path and values. Pages are collected first and rendered
    together (pipeline.py), in worker processes when there are many."""

    template: str
    site_path: str
    context: dict[str, Any]
    key: bytes | None = None  # the build cache's digest of everything the page depends on (cache.py)

    @property
    def path(self) -> str:
        """The file it becomes."""
        p = self.site_path
        return p + "index.html" if p == "" or p.endswith("/") else p


Page = OutputFile | PendingPage  # what the page generators yield: a finished file, or a page to render
# PendingPage.key of a page with nothing to reuse (a cold build): its key is worked out where it is rendered,
# in a worker process, rather than in the parent before (seconds at 10,000 reports, in one process).
KEY_LATER = b""


class PageRenderer:
    """Renders one template for one site path, with `url()` relative to that path."""

    def __init__(self, env: Environment, data: SiteData):
        self.env, self.data = env, data

    def key_of(self, pending: PendingPage) -> bytes | None:
        """The page's key for the build cache (none without a cache)."""
        return pending.key

    def render(self, template: str, path: str, **context: Any) -> OutputFile | PendingPage:
        return self.render_now(PendingPage(template, path, context))

    def made(self, path: str, make: Callable[..., bytes], *args: Any) -> OutputFile:
        """The file at `path` whose bytes are make(*args): a pure function of its arguments (a data export)."""
        return OutputFile(path, make(*args))

    def group(self, name: str, inputs: tuple[Any, ...], make: Callable[[], Iterable[Page]]) -> Iterable[Page]:
        """The pages make() yields, which are made of `inputs`, the site's settings and the templates alone
        (the build cache keeps them all at once while those are unchanged)."""
        return make()

    def render_now(self, pending: PendingPage) -> OutputFile:
        page = pending.path
        url = url_maker(page)
        context = {k: v.value() if isinstance(v, Deferred) else v for k, v in pending.context.items()}
        html = self.env.get_template(pending.template).render(
            url=url, page_path=pending.site_path, canonical=self.data.config.absolute(pending.site_path),
            site=self.data.config, nav_extra=self.data.nav_extra, **context)
        return OutputFile(page, html.encode("utf-8"))


def problem_of(exc: BaseException) -> Problem:
    """A located problem for an exception raised while building (template errors, bugs)."""
    from jinja2 import TemplateSyntaxError

    if isinstance(exc, TemplateSyntaxError):
        return Problem(exc.filename or exc.name or "template", exc.lineno, f"template error: {exc.message}",
                       "fix the template")
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):  # Jinja puts template lines into the traceback
        if frame.filename.endswith((".html", ".xml")):
            return Problem(frame.filename, frame.lineno or 0, f"template error: {type(exc).__name__}: {exc}",
                           "fix the template")
    last = frames[-1] if frames else None
    return Problem(last.filename if last else "reportsite", (last.lineno or 0) if last else 0,
                   f"{type(exc).__name__}: {exc}", "this looks like a bug in reportsite; please report it")


class PageCollector(PageRenderer):
    """Collects pages to render instead of rendering them one by one."""

    def render(self, template: str, path: str, **context: Any) -> OutputFile | PendingPage:
        return PendingPage(template, path, context)


def report_description(report: Report) -> str:
    first = next((s for s in report.sections if s.body_md), None)
    return excerpt(first.text, 110) if first else report.title


def jurisdiction_label(report: ReportFace) -> str:
    j = report.jurisdiction
    if j.level == "department":
        return report.issuer or j.name
    return j.name


def render_reports(renderer: PageRenderer, data: SiteData, only: Collection[str] | None = None) -> Iterator[Page]:
    """The report pages (with `only`: of the reports with these slugs)."""
    md = MarkdownOnDemand()
    by_key: dict[str, list[Report]] = defaultdict(list)
    topic_names = {t.slug: t.name for t in data.topic_rules.topics}
    for report in data.reports:
        by_key[report.jurisdiction.key].append(report)
    for report in data.reports:
        if only is not None and report.slug not in only:
            continue
        matches = data.topics.get(report.slug, {})
        yield renderer.render(
            "report.html", report_path(report), report=report, tree=Deferred(section_tree, (report, matches, md)),
            other_years=sorted((r.face for r in by_key[report.jurisdiction.key] if r is not report),
                               key=lambda r: r.year),
            description=Deferred(report_description, (report,)), region=region_id(report),
            province=province_code(report),
            city=city_code(report), label=jurisdiction_label(report),
            topic_names=topic_names, panels=data.extra_report_panels.get(report.slug, []))
