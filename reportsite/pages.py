"""Render (continued): cross-jurisdiction index pages, topic pages and the site's machine files."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import NamedTuple

from .config import SiteConfig
from .model import LEVEL_LABELS, Report, ReportFace, Section
from .render import (
    Deferred,
    OutputFile,
    Page,
    PageRenderer,
    SiteData,
    city_code,
    excerpt,
    jurisdiction_label,
    province_code,
    region_id,
    report_path,
)
from .stamps import framed_digest
from .topics import Topic, TopicMatch


@dataclass(frozen=True)
class Region:
    """A page of the jurisdiction tree: a province, a city or one reporting jurisdiction."""

    id: str
    name: str
    kind: str  # province / city / own
    parent: str | None
    reports: tuple[ReportFace, ...]
    children: tuple[str, ...]


def build_regions(reports: tuple[ReportFace, ...]) -> dict[str, Region]:
    names: dict[str, str] = {}
    kinds: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    own_reports: dict[str, list[ReportFace]] = defaultdict(list)
    for report in reports:
        j = report.jurisdiction
        chain: list[tuple[str, str, str]] = []
        prov, city = province_code(report), city_code(report)
        if prov and j.province:
            chain.append((prov, j.province, "province"))
        if city and j.city and city != prov and j.city != j.province:
            chain.append((city, j.city, "city"))
        own = region_id(report)
        if own not in {c[0] for c in chain}:
            chain.append((own, jurisdiction_label(report), "own"))
        parent = None
        for code, name, kind in chain:
            names.setdefault(code, name)
            kinds.setdefault(code, kind)
            parents.setdefault(code, parent)
            parent = code
        own_reports[chain[-1][0]].append(report)
    children: dict[str | None, list[str]] = defaultdict(list)
    for code, parent in parents.items():
        children[parent].append(code)
    return {code: Region(code, names[code], kinds[code], parents[code],
                         tuple(sorted(own_reports.get(code, ()), key=lambda r: -r.year)),
                         tuple(sorted(children.get(code, ()))))
            for code in names}


def region_chain(region: Region, regions: dict[str, Region]) -> list[tuple[str, str]]:
    """(name, site path) of the regions above `region`, outermost first."""
    chain = []
    parent = region.parent
    while parent:
        chain.insert(0, (regions[parent].name, f"regions/{parent}/"))
        parent = regions[parent].parent
    return chain


def region_reports(region: Region, regions: dict[str, Region]) -> list[ReportFace]:
    found = list(region.reports)
    for child in region.children:
        found += region_reports(regions[child], regions)
    return found


class TopicEntry(NamedTuple):
    """A section on a topic's page."""

    report: Report
    section: Section
    match: TopicMatch
    path: list[Section]


Matches = dict[str, tuple[TopicMatch, ...]]  # a report's topic matches: section id -> matches, best first


def listed_sections(report: Report, matches: Matches) -> dict[str, list[tuple[Section, TopicMatch]]]:
    """topic slug -> the report's sections that the topic's pages list, with their match, in report order:
    a subsection of a listed section is shown through its parent."""
    listed: dict[str, list[tuple[Section, TopicMatch]]] = defaultdict(list)
    seen: dict[str, set[str]] = defaultdict(set)
    for section in report.sections:
        for match in matches.get(section.id, ()):
            ids = seen[match.topic]
            if not (section.parent and section.parent in ids):
                ids.add(section.id)
                listed[match.topic].append((section, match))
    return listed


@dataclass(frozen=True)
class TopicPage:
    """One page of a topic: whole jurisdictions (all their years), in report order."""

    number: int  # 1-based
    path: str  # site path
    groups: list[list[Report]]  # the reports of one jurisdiction each, newest first, whose sections it lists

    @property
    def provinces(self) -> list[str]:
        return list(dict.fromkeys(g[0].jurisdiction.province or "其他" for g in self.groups))


def topic_page_path(topic_slug: str, number: int) -> str:
    return f"topics/{topic_slug}/" if number == 1 else f"topics/{topic_slug}/{number}/"


def topic_pages(topic_slug: str, listed: list[tuple[Report, int, str]], per_page: int) -> list[TopicPage]:
    """Split a topic's reports (each with how many sections it lists and its jurisdiction's key, in report
    order) into pages of about `per_page` sections, never splitting a jurisdiction."""
    groups: list[list[tuple[Report, int]]] = []
    last = None
    for report, count, jurisdiction in listed:
        if groups and jurisdiction == last:
            groups[-1].append((report, count))
        else:
            groups.append([(report, count)])
        last = jurisdiction
    pages: list[list[list[Report]]] = [[]]
    size = 0
    for group in groups:
        if size >= per_page:
            pages.append([])
            size = 0
        pages[-1].append([group[0][0]] if len(group) == 1 else
                         [report for report, _ in sorted(group, key=lambda rc: -rc[0].year)])
        size += sum(count for _, count in group)
    return [TopicPage(n, topic_page_path(topic_slug, n), page) for n, page in enumerate(pages, start=1)]


def topic_entries(topic: str, groups: list[list[Report]], matches: list[list[Matches]]) -> list[list[TopicEntry]]:
    """The entries of a topic page, by jurisdiction (its reports, and their matches alongside): made only when
    the page is rendered (a Deferred value), so that a page's cache key digests its reports and their matches,
    not 400 entries (the 429 topic pages' keys took 1.7 s at 10,000 reports, and their entries 1.8 s more,
    every build). Lists of reports and of matches, not of pairs: the cache digests a list of objects it
    knows at once (0.3 s a build)."""
    pages = []
    for group, group_matches in zip(groups, matches, strict=True):
        entries = []
        for report, matches_of in zip(group, group_matches, strict=True):
            paths = report.heading_paths()
            entries += [TopicEntry(report, section, match, paths[section.id])
                        for section, match in listed_sections(report, matches_of).get(topic, ())]
        pages.append(entries)
    return pages


def section_excerpt_text(report: Report, section: Section) -> str:
    """A section's own text, or its first subsection's when the section is only a heading."""
    if section.body_md:
        return section.text
    child = next((s for s in report.sections if s.parent == section.id and s.body_md), None)
    return child.text if child else ""


TOPIC_EXCERPT_CHARS = 160


def topic_excerpt(report: Report, section: Section) -> str:
    """What a topic page shows of a listed section's text (topic_views digests this, not the whole text: an
    edit further on leaves the topic's pages as they were)."""
    return excerpt(section_excerpt_text(report, section), TOPIC_EXCERPT_CHARS)


class TopicView(NamedTuple):
    """What the pages of one topic show of one report: how many of its sections they list, and a digest of
    all they show of it (its face; each listed section, its headings above and its excerpt, and its match)."""

    count: int
    digest: bytes


# A section's fields that topic pages may show: not its line (where a heading is in the file: an edit above it
# moves it), nor its text, of which they show an excerpt (topic_excerpt)
_SHOWN_FIELDS = tuple(f.name for f in fields(Section) if f.name not in ("line", "body_md"))


def topic_views(report: Report, matches: Matches) -> dict[str, TopicView]:
    """topic slug -> what its pages show of `report` (done with the topic matches, as reports are parsed):
    an edit keeps the pages of the topics whose views of the edited report it leaves as they were."""
    def shown(section: Section) -> bytes:
        return repr(tuple(getattr(section, name) for name in _SHOWN_FIELDS)).encode()

    paths = report.heading_paths()
    face = repr(report.face).encode()
    views = {}
    for topic, listed in listed_sections(report, matches).items():
        parts = [face]
        for section, match in listed:
            parts += [shown(section), b"".join(shown(s) for s in paths[section.id]),
                      topic_excerpt(report, section).encode(), repr(match).encode()]
        views[topic] = TopicView(len(listed), framed_digest(*parts))
    return views


def render_index_pages(renderer: PageRenderer, data: SiteData) -> Iterator[Page]:
    # The reports as these pages show them: an edit of a report's text leaves their cache keys alone.
    reports = tuple(r.face for r in data.reports)
    listed_by_topic: dict[str, list[tuple[Report, int, str]]] = {t.slug: [] for t in data.topic_rules.topics}
    shown_by_topic: dict[str, list[bytes]] = {t.slug: [] for t in data.topic_rules.topics}
    for report in data.reports:
        jurisdiction = report.jurisdiction.key
        for topic, view in data.topic_views.get(report.slug, {}).items():
            listed = listed_by_topic.get(topic)
            if listed is not None:
                listed.append((report, view.count, jurisdiction))
                shown_by_topic[topic].append(view.digest)
    topic_counts = {slug: sum(count for _, count, _ in listed) for slug, listed in listed_by_topic.items()}
    # The lists are made of the reports' faces and the topics' counts alone: a rebuild after an edit of a text
    # keeps all 1,000 of them at once (10,000 reports), without working out each one's key.
    yield from renderer.group("lists", (reports, topic_counts, data.topic_rules.topics),
                              lambda: list_pages(renderer, data, reports, topic_counts))
    for topic in data.topic_rules.topics:
        listed = listed_by_topic[topic.slug]
        # A topic's pages are made of what they show of its reports alone (topic_views): an edit keeps the
        # pages of the topics it shows no change in, without working out each one's key.
        yield from renderer.group(f"topic {topic.slug}", (topic, b"".join(shown_by_topic[topic.slug])),
                                  lambda topic=topic, listed=listed: list(
                                      topic_pages_of(renderer, data, topic, listed, topic_counts[topic.slug])))


def topic_pages_of(renderer: PageRenderer, data: SiteData, topic: Topic, listed: list[tuple[Report, int, str]],
                   total: int) -> Iterator[Page]:
    """The pages of one topic, listing the sections of `listed` (see topic_pages)."""
    pages = topic_pages(topic.slug, listed, data.config.topic_page_size)
    index = [(p.number, p.path, p.provinces) for p in pages]
    for page in pages:
        matches = [[data.topics[report.slug] for report in group] for group in page.groups]
        yield renderer.render("topic.html", page.path, topic=topic, total=total, page=page, pages=index,
                              groups=Deferred(topic_entries, (topic.slug, page.groups, matches)),
                              excerpt_of=topic_excerpt)


def list_pages(renderer: PageRenderer, data: SiteData, reports: tuple[ReportFace, ...],
               topic_counts: dict[str, int]) -> Iterator[Page]:
    """The home page, the lists by region, year and level, the coverage matrix, the topics' list, the
    search page and the site's machine files: of the site's settings, the reports' faces and topic counts."""
    regions = build_regions(reports)
    years = sorted({r.year for r in reports}, reverse=True)
    levels = [lv for lv in LEVEL_LABELS if any(r.jurisdiction.level == lv for r in reports)]
    latest = sorted(reports, key=lambda r: (r.published or datetime.min.date(), r.year), reverse=True)[:10]
    by_province = Counter(r.jurisdiction.province or "未知" for r in reports)
    yield renderer.render("home.html", "", reports=reports, latest=latest, years=years, levels=levels,
                          by_province=by_province.most_common(), by_year=Counter(r.year for r in reports),
                          by_level=Counter(r.jurisdiction.level for r in reports), topics=data.topic_rules.topics,
                          topic_counts=topic_counts, regions=regions,
                          provinces=[regions[c] for c in sorted(c for c, r in regions.items() if r.parent is None)])
    yield renderer.render("regions.html", "regions/", regions=regions,
                          roots=[regions[c] for c in sorted(c for c, r in regions.items() if r.parent is None)],
                          region_reports=region_reports)
    for region in regions.values():
        # Only what this page shows is passed, so an edit re-renders only the regions that hold the report.
        yield renderer.render("region.html", f"regions/{region.id}/", region=region,
                              crumb_items=[("按地区", "regions/"), *region_chain(region, regions)],
                              children=[(c, regions[c].name, len(region_reports(regions[c], regions)))
                                        for c in region.children],
                              all_reports=sorted(region_reports(region, regions), key=lambda r: (-r.year, r.slug)))
    yield renderer.render("years.html", "years/", years=years, by_year=Counter(r.year for r in reports))
    for year in years:
        yield renderer.render("list.html", f"years/{year}/", heading=f"{year}年度报告",
                              reports=[r for r in reports if r.year == year], crumb_items=[("按年度", "years/")])
    for level in levels:
        yield renderer.render("list.html", f"levels/{level}/", heading=f"{LEVEL_LABELS[level]}报告",
                              reports=[r for r in reports if r.jurisdiction.level == level],
                              crumb_items=[("按层级", "levels/")])
    yield renderer.render("levels.html", "levels/", levels=levels,
                          by_level=Counter(r.jurisdiction.level for r in reports))
    yield renderer.render("coverage.html", "coverage/", **coverage_matrix(reports))
    yield renderer.render("topics.html", "topics/", topics=data.topic_rules.topics, topic_counts=topic_counts)
    yield renderer.render("about.html", "about/")
    yield renderer.render("search.html", "search/", topics=data.topic_rules.topics, years=years, levels=levels,
                          provinces=sorted({r.jurisdiction.province for r in reports if r.jurisdiction.province}))
    yield renderer.render("404.html", "404.html")
    yield sitemap(data.config, data.nav_extra, reports)
    yield atom_feed(renderer, reports)
    yield OutputFile("robots.txt", f"User-agent: *\nAllow: /\nSitemap: {data.config.absolute('sitemap.xml')}\n"
                     .encode())


def coverage_matrix(reports: tuple[ReportFace, ...]) -> dict:
    years = sorted({r.year for r in reports})
    if years:
        years = list(range(years[0], years[-1] + 1))
    rows: dict[str, dict] = {}
    for report in reports:
        key = report.jurisdiction.key
        row = rows.setdefault(key, {"label": jurisdiction_label(report), "province": report.jurisdiction.province,
                                    "city": report.jurisdiction.city, "by_year": {}})
        row["by_year"][report.year] = report
    ordered = sorted(rows.values(), key=lambda r: (r["province"] or "", r["city"] or "", r["label"]))
    missing = sum(1 for row in ordered for y in years if y not in row["by_year"])
    return {"years": years, "rows": ordered, "missing": missing}


def sitemap(config: SiteConfig, nav_extra: tuple[tuple[str, str], ...], reports: tuple[ReportFace, ...]
            ) -> OutputFile:
    pages = ("", "regions/", "years/", "levels/", "coverage/", "topics/", "about/", *(p for _, p in nav_extra))
    urls = [config.absolute(p) for p in pages]
    urls += [config.absolute(report_path(r)) for r in reports]
    body = "".join(f"<url><loc>{_xml(u)}</loc></url>" for u in urls)
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
           f"{body}</urlset>\n")
    return OutputFile("sitemap.xml", xml.encode("utf-8"))


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def atom_feed(renderer: PageRenderer, faces: tuple[ReportFace, ...]) -> Page:
    reports = sorted(faces, key=lambda r: (r.published or datetime.min.date(), r.slug), reverse=True)[:50]
    newest = max((r.published for r in reports if r.published), default=None)
    updated = datetime.combine(newest, datetime.min.time(), UTC) if newest else datetime(2000, 1, 1, tzinfo=UTC)
    return renderer.render("feed.xml", "feed.xml", reports=reports, updated=updated.isoformat(),
                           report_path=report_path)
