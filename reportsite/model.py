"""The content model: `content/` Markdown files -> validated, typed Report objects with a section tree.

Every problem is a Problem with `path:line`; a bad report is left out and the others still load.
"""

from __future__ import annotations

import operator
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from . import divisions as dv
from .datafile import YAML_LOADER
from .divisions import LEVELS
from .errors import Problem
from .markup import cn_int, match_heading, strip_markup
from .slugs import default_slug, pinyin_slug
from .textio import blank_control_characters
from .workers import SharedObjects, map_in_pool, pool_size

MIN_YEAR, MAX_YEAR = 2000, date.today().year + 1
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,79}$")
_LEVEL_ALIASES = {"省": "province", "直辖市": "province", "自治区": "province", "地级市": "city", "市": "city",
                  "市辖区": "district", "区": "district", "县": "county", "县级市": "county", "旗": "county",
                  "自治县": "county", "镇": "town", "乡": "town", "街道": "street", "部门": "department",
                  "开发区": "other", "其他": "other"}
LEVEL_LABELS = {"province": "省级", "city": "市级", "district": "市辖区", "county": "县(市)",
                "town": "乡镇", "street": "街道", "department": "部门", "other": "其他(开发区等)"}


@dataclass(frozen=True)
class Jurisdiction:
    name: str
    level: str
    city: str | None
    province: str | None
    adcode: str | None
    county: str | None = None

    @property
    def key(self) -> str:
        """Identity of the jurisdiction across years (a department is its own jurisdiction)."""
        return f"{self.adcode or ''}:{self.name}:{self.level}"


@dataclass(frozen=True)
class Section:
    id: str
    level: int  # 0 for the text before the first heading, then 2, 3, 4 (Markdown ## ### ####)
    title: str  # heading text as written, without Markdown
    body_md: str  # Markdown of this section's own text (not its subsections)
    line: int  # line of the heading in the content file
    parent: str | None  # id of the enclosing section
    number: str | None = None

    @cached_property
    def text(self) -> str:
        """Plain text of the section's own body (computed once: topics, figures and search all read it)."""
        return strip_markup(self.body_md)


@dataclass(frozen=True)
class ReportFace:
    """What a page other than the report's own shows of a report: a list's row, a link, a chart's label.
    Those pages and the per-report results they show (indicator values, structure checks) hold this, not
    the Report, so that their build-cache keys change when it does, not with every edit of the text."""

    slug: str
    title: str
    jurisdiction: Jurisdiction
    year: int
    published: date | None
    issuer: str | None
    source: str | None


@dataclass(frozen=True)
class Report(ReportFace):
    """A report: its face and its text."""

    path: str
    sha256: str | None
    sections: tuple[Section, ...]
    aliases: dict[str, str] = field(default_factory=dict)  # old anchor -> current anchor
    warnings: tuple[str, ...] = ()
    # its face as a value of its own, which pages other than the report's digest by content
    face: ReportFace = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        face = ReportFace(**{f.name: getattr(self, f.name) for f in fields(ReportFace)})
        object.__setattr__(self, "face", face)  # frozen: a field made from the others

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def heading_path(self, section: Section) -> list[Section]:
        chain: list[Section] = []
        current: Section | None = section
        while current is not None:
            chain.append(current)
            current = self.section(current.parent) if current.parent else None
        return [s for s in reversed(chain) if s.level > 0]

    def heading_paths(self) -> dict[str, list[Section]]:
        """section id -> heading_path(section), for every section in one pass (a parent precedes its
        children): topic pages need the paths of 170,000 sections at 10,000 reports."""
        paths: dict[str, list[Section]] = {}
        for section in self.sections:
            if section.id in paths:
                continue
            if section.parent and section.parent not in paths:
                paths[section.id] = self.heading_path(section)
                continue
            above = paths[section.parent] if section.parent else []
            paths[section.id] = [*above, section] if section.level > 0 else above
        return paths


@dataclass(frozen=True)
class Content:
    reports: tuple[Report, ...]
    problems: tuple[Problem, ...]
    derived: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # report path -> ReportWork results

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


# ------------------------------------------------------------------------------------------------------
# Front matter


class _FrontMatterError(Exception):
    def __init__(self, line: int, message: str, hint: str):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


def split_front_matter(text: str) -> tuple[str, str, int]:
    """(front matter YAML, body, line number where the body starts)."""
    text = text.lstrip("\ufeff")
    if not text.startswith("---\n"):
        raise _FrontMatterError(1, "no front matter", "start the file with a `---` line, YAML fields, and `---`")
    end = text.find("\n---\n", 3)
    if end < 0:
        if text.rstrip().endswith("\n---"):
            end = len(text.rstrip()) - 4
        else:
            raise _FrontMatterError(1, "front matter is not closed", "add a line `---` after the YAML fields")
    front = text[4:end + 1]
    body = text[end + 5:]
    return front, body, front.count("\n") + 3


def parse_front_matter(front: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Safe-load YAML front matter; return (data, key -> line). Aliases are refused (alias bombs)."""
    try:
        events = yaml.parse(front, Loader=YAML_LOADER) if "*" in front else ()  # no `*`, no alias: skip the scan
        for event in events:
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 2 if event.start_mark else 1
                raise _FrontMatterError(line, "YAML aliases (*name) are not allowed in front matter",
                                        "write the value out instead of referring to an anchor")
        node = yaml.compose(front, Loader=YAML_LOADER)
        data = _construct(node)
    except UnicodeEncodeError as exc:  # a lone surrogate: libyaml takes only valid Unicode
        line = front[: exc.start].count("\n") + 2
        raise _FrontMatterError(line, "front matter holds a character that is not valid Unicode",
                                "re-save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = "use spaces, not tabs, to indent YAML" if "\t" in front else "fix the YAML syntax"
        raise _FrontMatterError(line, f"front matter is not valid YAML ({problem})", hint) from None
    if not isinstance(data, dict):
        raise _FrontMatterError(2, "front matter must be a mapping of fields", "write `field: value` lines")
    lines = {}
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            lines[str(key.value)] = key.start_mark.line + 2
    return data, lines


def _construct(node: yaml.Node | None) -> Any:
    """Build Python values from the composed node; a value YAML cannot build (2024-13-45) is located."""
    if node is None:
        return None
    constructor = yaml.constructor.SafeConstructor()
    try:
        return constructor.construct_document(node)
    except (ValueError, TypeError, OverflowError) as exc:
        line = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                try:
                    yaml.constructor.SafeConstructor().construct_document(value)
                except (ValueError, TypeError, OverflowError):
                    line = key.start_mark.line + 2
                    break
        raise _FrontMatterError(line, f"a value cannot be read ({exc})",
                                "write dates as YYYY-MM-DD and quote other text") from None


# ------------------------------------------------------------------------------------------------------
# Sections

_HEADING_LINE = re.compile(r"^(#{2,6})[ \t]+(.+?)[ \t]*$")
_EXPLICIT_ID = re.compile(r"\s*\{#([A-Za-z][A-Za-z0-9_-]*)\}\s*$")
def _auto_id(title: str, number: int | None, parent: str | None) -> str:
    """s2-1-3 for 二、> (一) > 3.: short, ASCII (survives being pasted into chat apps) and readable
    by anyone who sees the report's own numbering; a subsection extends its parent's id, so ids
    stay put when the wording changes. Unnumbered headings fall back to pinyin."""
    if number:
        return f"{parent}-{number}" if parent else f"s{number}"
    return "h-" + (pinyin_slug(strip_markup(title)) or "section")


def parse_sections(body: str, first_line: int) -> tuple[list[Section], list[tuple[int, str]]]:
    """Split a Markdown body at ATX headings into sections with stable ids; return (sections, problems)."""
    sections: list[Section] = []
    problems: list[tuple[int, str]] = []
    stack: list[tuple[int, str]] = []  # (level, id)
    current = {"id": "preamble", "level": 0, "title": "", "line": first_line, "parent": None, "number": None}
    buffer: list[str] = []
    seen: Counter[str] = Counter()

    def flush() -> None:
        sections.append(Section(current["id"], current["level"], current["title"], "\n".join(buffer).strip(),
                                current["line"], current["parent"], current["number"]))
        buffer.clear()

    in_fence = False
    for offset, line in enumerate(body.split("\n")):
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else _HEADING_LINE.match(line)
        if not m:
            buffer.append(line)
            continue
        flush()
        level = min(len(m.group(1)), 4)
        raw_title = m.group(2)
        explicit = _EXPLICIT_ID.search(raw_title)
        title = strip_markup(_EXPLICIT_ID.sub("", raw_title)).strip()
        heading = match_heading(title)
        number = heading.number if heading else None
        while stack and stack[-1][0] >= level:
            stack.pop()
        parent = stack[-1][1] if stack else None
        value = cn_int(number) if heading and heading.level == level else None
        section_id = explicit.group(1) if explicit else _auto_id(title, value, parent)
        seen[section_id] += 1
        if seen[section_id] > 1:
            if explicit:
                problems.append((first_line + offset, f"heading id #{section_id} is used twice"))
            # A repeated numbering (a second 一、 series) gets -x2, -x3: never clashes with s1-2 style ids.
            section_id = f"{section_id}-x{seen[section_id]}"
        current = {"id": section_id, "level": level, "title": title, "line": first_line + offset,
                   "parent": parent, "number": number}
        stack.append((level, section_id))
    flush()
    if sections and sections[0].level == 0 and not sections[0].body_md:
        sections.pop(0)
    return sections, problems


# ------------------------------------------------------------------------------------------------------
# Validation


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError(f"`{key}` must be text, not a {type(value).__name__}")
    return str(value).strip() or None


def _jurisdiction(data: dict[str, Any], table: dv.DivisionTable) -> Jurisdiction:
    raw = data.get("jurisdiction")
    if isinstance(raw, str):  # flat form: jurisdiction: 平谷区, level:, city:, province:
        raw = {"name": raw, "level": data.get("level"), "city": data.get("city"), "province": data.get("province")}
    if not isinstance(raw, dict):
        raise ValueError("`jurisdiction` is missing or not a mapping (name, level, city, province, adcode)")
    name = _str(raw, "name")
    if not name:
        raise ValueError("`jurisdiction.name` is missing")
    level = _str(raw, "level")
    level = _LEVEL_ALIASES.get(level or "", level)
    adcode = _str(raw, "adcode")
    city, province = _str(raw, "city"), _str(raw, "province")
    if adcode is None:  # resolve a hand-written jurisdiction with the division table
        matches = [d for d in table.by_name.get(name, ()) if (not city or d.city == city)
                   and (not province or d.province == province)]
        if len(matches) == 1:
            adcode = matches[0].adcode
            city, province = city or matches[0].city, province or matches[0].province
            level = level or matches[0].level
    elif adcode in table.by_code:
        division = table.by_code[adcode]
        city, province = city or division.city, province or division.province
    if level not in LEVELS:
        raise ValueError(f"`jurisdiction.level` is {level!r}, not one of {', '.join(LEVELS)}")
    if adcode is not None and not re.fullmatch(r"\d{6}", adcode):
        raise ValueError(f"`jurisdiction.adcode` {adcode!r} is not a 6-digit GB/T 2260 code")
    return Jurisdiction(name, level, city, province, adcode, _str(raw, "county"))


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"date {value!r} is not YYYY-MM-DD") from None


def load_report(path: Path, text: str, table: dv.DivisionTable | None = None) -> tuple[Report | None, list[Problem]]:
    """Parse one content file. Returns (report or None, problems)."""
    table = table or dv.load_divisions()
    where = str(path)
    text, controls = blank_control_characters(text)
    warnings = [Problem(where, 1, f"{controls} control character(s) replaced by spaces",
                        "remove them from the file", "warning")] if controls else []
    try:
        front, body, body_line = split_front_matter(text)
        data, lines = parse_front_matter(front)
    except _FrontMatterError as exc:
        return None, [Problem(where, exc.line, exc.message, exc.hint), *warnings]

    def problem(key: str, message: str, hint: str) -> Problem:
        return Problem(where, lines.get(key.split(".")[0], 2), message, hint)

    problems: list[Problem] = []
    if not isinstance(data.get("title"), (str, int)) or not str(data["title"]).strip():
        problems.append(problem("title", "`title` is missing or not text", "add `title: 报告标题`"))
    year = data.get("year")
    if isinstance(year, bool) or not isinstance(year, int):
        problems.append(problem("year", f"`year` is {year!r}, not a whole number",
                                "write the year reported on, e.g. `year: 2023`"))
    elif not MIN_YEAR <= year <= MAX_YEAR:
        problems.append(problem("year", f"`year` {year} is out of range {MIN_YEAR}-{MAX_YEAR}",
                                "write the year the report covers"))
    try:
        jurisdiction = _jurisdiction(data, table)
    except ValueError as exc:
        problems.append(problem("jurisdiction", str(exc), "see the front-matter fields in README.md"))
        jurisdiction = None
    try:
        published = _date(data.get("published", data.get("date")))
        issuer, source = _str(data, "issuer"), _str(data, "source")
    except ValueError as exc:
        problems.append(problem("published", str(exc), "write dates as YYYY-MM-DD"))
        published = issuer = source = None
    aliases = data.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        problems.append(problem("aliases", "`aliases` must map old anchor ids to current ones",
                                "write `aliases: {s2-1: s2-2}`"))
        aliases = {}
    if problems or jurisdiction is None:
        return None, problems + warnings
    slug = data.get("slug")
    if slug is None:
        j = jurisdiction
        slug = default_slug(adcode=j.adcode, name=j.name, level=j.level, city=j.city, county=j.county, year=year,
                            issuer=issuer)
    elif not isinstance(slug, str) or not SLUG_RE.match(slug):
        return None, [problem("slug", f"`slug` {slug!r} is not lower-case ASCII letters, digits and hyphens",
                              "write e.g. `slug: 130502-2023` (no slashes, dots or spaces)"), *warnings]
    sections, section_problems = parse_sections(body, body_line)
    problems += [Problem(where, line, msg, "give each heading its own `{#id}`") for line, msg in section_problems]
    ids = {s.id for s in sections}
    for old, new in aliases.items():
        if not ID_RE.match(old) or new not in ids:
            problems.append(problem("aliases", f"alias #{old} -> #{new}: no section has the id #{new}",
                                    "point the alias at an existing section id"))
        elif old in ids:
            problems.append(problem("aliases", f"alias #{old} is also a current section id",
                                    "remove the alias; the section exists"))
    if problems:
        return None, problems + warnings
    noted = tuple(str(w) for w in data.get("warnings") or () if isinstance(w, str))
    return Report(slug=slug, title=_str(data, "title") or "", jurisdiction=jurisdiction, year=year,
                  published=published, issuer=issuer, source=source, path=where, sha256=_str(data, "sha256"),
                  sections=tuple(sections), aliases=dict(aliases), warnings=noted), warnings


def content_files(content_dir: Path) -> list[Path]:
    """The content files in the order of their paths (Path's order, by their parts: sorted by Path's own
    comparison, 10,000 paths took 0.3 s)."""
    return sorted(found_content_files(content_dir), key=operator.attrgetter("parts"))


def found_content_files(content_dir: Path) -> Iterator[Path]:
    """The content files, unsorted, as they are found (a caller may stop early); no hidden file (an editor's
    lock or swap file), none in a hidden folder (an editor's, a version control's, the build cache's). As
    Path.rglob("*.md") finds them (no folder linked to is entered), in a third of its time."""
    root = content_dir / "reports" if (content_dir / "reports").is_dir() else content_dir
    for folder, folders, names in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            if name.endswith(".md") and not name.startswith(".") and os.path.isfile(path := os.path.join(folder, name)):
                yield Path(path)


# Per-report derived work, done while parsing (in the parse workers on a big build): function(report, *args).
ReportWork = tuple[Callable[..., Any], tuple[Any, ...]]


@dataclass(frozen=True)
class Earlier:
    """Among a ReportWork's arguments: the result of an earlier item of the same work, for the same report."""

    index: int


def work_args(args: tuple[Any, ...], done: Sequence[Any]) -> tuple[Any, ...]:
    """A ReportWork's arguments, with the earlier results (`done`) they name."""
    return tuple(done[arg.index] if isinstance(arg, Earlier) else arg for arg in args)


def do_work(report: Report, work: Sequence[ReportWork]) -> tuple[Any, ...]:
    """The results of the per-report work, in order."""
    done: list[Any] = []
    for function, args in work:
        done.append(function(report, *work_args(args, done)))
    return tuple(done)


@dataclass(frozen=True)
class Parsed:
    """One content file parsed: its report (None if unusable), problems, and the ReportWork results."""

    report: Report | None
    problems: tuple[Problem, ...]
    derived: tuple[Any, ...] = ()
    derived_digests: tuple[Any, ...] = ()  # their digests, when `after` (a build cache) made them...
    face_digest: bytes = b""  # ...and the report's face's


def parse_file(path: str, data: bytes, table: dv.DivisionTable, work: Sequence[ReportWork] = ()) -> Parsed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Parsed(None, (Problem(str(path), line, "content file is not UTF-8", "re-save it as UTF-8"),))
    report, problems = load_report(Path(path), text, table)
    derived = do_work(report, work) if report else ()
    return Parsed(report, tuple(problems), derived)


CHUNK = 25  # files per task of the parse pool
# Called with each file's path and parse where it was parsed, returns the parse to keep (a build cache
# digests the derived results and stores it from the worker), or, in a worker, its own entry for it as it
# pickled it to store it (with SharedObjects of the work's arguments): those bytes are sent, not the parse
# pickled a second time, and parse_files gives the entry.
AfterParse = Callable[[str, Parsed], Any]
# in each worker
_parse_job: tuple[dv.DivisionTable, Sequence[ReportWork], AfterParse | None, SharedObjects] | None = None


def _start_parse_worker(table: dv.DivisionTable, work: Sequence[ReportWork], after: AfterParse | None,
                        shared: SharedObjects) -> None:
    global _parse_job
    _parse_job = (table, work, after, shared)


def _parse_chunk(items: list[tuple[str, bytes]]) -> bytes:
    """The chunk's Parsed list, pickled with the rules' objects as references (workers.SharedObjects)."""
    assert _parse_job is not None
    table, work, after, shared = _parse_job
    return shared.dumps([_parse_one(path, data, table, work, after) for path, data in items])


def _parse_one(path: str, data: bytes, table: dv.DivisionTable, work: Sequence[ReportWork],
               after: AfterParse | None) -> Any:
    parsed = parse_file(path, data, table, work)
    return after(path, parsed) if after is not None else parsed


def parse_files(items: list[tuple[str, bytes]], table: dv.DivisionTable, work: Sequence[ReportWork] = (),
                advance: Callable[[int], None] = lambda n: None, after: AfterParse | None = None,
                arrived: Callable[[bytes, Any], None] | None = None) -> list[Any]:
    """Parse content files (and do the per-report work, and `after`), in worker processes when there are
    many. `arrived` is told of each entry a worker sent as bytes (see AfterParse), with what they hold."""
    workers = pool_size(len(items))
    if workers < 2:
        out = []
        for path, data in items:
            out.append(_parse_one(path, data, table, work, after))
            advance(1)
        return out
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    results: list[Any] = []
    shared = SharedObjects([args for _, args in work])
    for chunk_result in map_in_pool(_parse_chunk, chunks, workers, _start_parse_worker, (table, work, after, shared)):
        parsed = shared.loads(chunk_result)
        # unpickled as they come, while the workers parse on (all of them at once: 280 MB at 10,000 reports)
        for p in parsed:
            if isinstance(p, bytes):
                entry = shared.loads(p)
                if arrived is not None:
                    arrived(p, entry)
                p = entry
            results.append(p)
        advance(len(parsed))
    return results


def load_content(content_dir: Path, work: Sequence[ReportWork] = ()) -> Content:
    """Load every report under content_dir/reports; duplicates of slug or jurisdiction+year are errors.
    `work` is done per report as it is parsed; its results are in `Content.derived`."""
    table = dv.load_divisions()
    items = [(str(path), path.read_bytes()) for path in content_files(content_dir)]
    reports: list[Report] = []
    problems: list[Problem] = []
    derived: dict[str, tuple[Any, ...]] = {}
    for parsed in parse_files(items, table, work):
        problems += parsed.problems
        if parsed.report:
            reports.append(parsed.report)
            derived[parsed.report.path] = parsed.derived
    return Content(*_drop_duplicates(reports, problems), derived=derived)


def _drop_duplicates(reports: list[Report], problems: list[Problem]) -> tuple[tuple[Report, ...], tuple[Problem, ...]]:
    kept: list[Report] = []
    slugs: dict[str, Report] = {}
    editions: dict[tuple[str, int], Report] = {}
    for report in reports:
        first = slugs.get(report.slug)
        if first:
            problems.append(Problem(report.path, 1, f"slug {report.slug!r} is already used by {first.path}",
                                    "set a different `slug:` in one of them"))
            continue
        edition = editions.get((report.jurisdiction.key, report.year))
        if edition:  # kept: a revised or republished text is worth reading too, but say so
            problems.append(Problem(report.path, 1, f"{report.jurisdiction.name} {report.year} is also "
                                    f"reported by {edition.path}", "remove one if it is a duplicate, or correct "
                                    "`year:`", "warning"))
        editions.setdefault((report.jurisdiction.key, report.year), report)
        slugs[report.slug] = report
        kept.append(report)
    kept.sort(key=lambda r: (r.jurisdiction.province or "", r.jurisdiction.city or "", r.jurisdiction.name,
                             r.year, r.slug))
    return tuple(kept), tuple(problems)
