"""Derived view: does a report have the four parts the 2019 督察工作规定 asks for, and was it public in time?

The parts, their recognising patterns and the deadline are data (content/required_parts.yml).
Every finding links to the section that supports it, so a reader can check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from .datafile import read_yaml
from .errors import fail
from .model import Report, ReportFace, Section

FOUND, MENTIONED, MISSING = "found", "mentioned", "missing"
# as pages show them (render.make_environment makes them the templates' globals)
STATUS_LABELS = {FOUND: "有", MENTIONED: "仅正文提及", MISSING: "缺"}
DEADLINE_LABELS = {"on_time": "按时公开", "late": "逾期公开", "unknown": "发布日期不详"}
ON_TIME, LATE, UNKNOWN = "on_time", "late", "unknown"


@dataclass(frozen=True)
class Part:
    key: str
    number: int  # place in the regulation's list, 1-4
    name: str
    short: str
    headings: tuple[str, ...]  # regex sources; may hold {year} / {next_year}
    text: tuple[str, ...]
    plans: bool = False  # its sections hold next-year plans
    fallback: str | None = None  # "other_sections": thematic top-level sections cover it


@dataclass(frozen=True)
class PartRules:
    parts: tuple[Part, ...]  # in matching order
    deadline_month: int = 4
    deadline_day: int = 1

    @property
    def in_regulation_order(self) -> tuple[Part, ...]:
        return tuple(sorted(self.parts, key=lambda p: p.number))


class FoundSection(NamedTuple):
    """A section as a finding shows it: its anchor and heading. (Not the Section: the structure-check page
    then changes only with what it shows, not with every edit of a section's text.)"""

    id: str
    title: str


@dataclass(frozen=True)
class PartFinding:
    part: Part
    status: str  # found / mentioned / missing
    sections: tuple[FoundSection, ...]  # the top-level sections that are this part, or the section that mentions it

    @property
    def anchor(self) -> str | None:
        return self.sections[0].id if self.sections else None


@dataclass(frozen=True)
class Compliance:
    report: ReportFace
    findings: tuple[PartFinding, ...]  # in regulation order
    deadline: date
    deadline_status: str  # on_time / late / unknown

    @property
    def found(self) -> int:
        return sum(1 for f in self.findings if f.status == FOUND)

    @property
    def complete(self) -> bool:
        return self.found == len(self.findings)

    def finding(self, key: str) -> PartFinding:
        return next(f for f in self.findings if f.part.key == key)

    def plan_section_ids(self, report: Report) -> frozenset[str]:
        """Ids of every section of the checked report (with its subsections) that holds next-year plans."""
        roots = {s.id for f in self.findings if f.part.plans and f.status == FOUND for s in f.sections}
        return frozenset(s.id for s in report.sections if _within(report, s, roots))


def _within(report: Report, section: Section, roots: set[str]) -> bool:
    current: Section | None = section
    while current is not None:
        if current.id in roots:
            return True
        current = report.section(current.parent) if current.parent else None
    return False


# ------------------------------------------------------------------------------------------------------
# Rules


def load_part_rules(content_dir: Path) -> PartRules:
    path = content_dir / "required_parts.yml"
    if not path.exists():
        return PartRules(())
    text = path.read_text(encoding="utf-8")
    data = read_yaml(path) or {}
    raw_parts = data.get("parts") if isinstance(data, dict) else None
    if not isinstance(raw_parts, list):
        raise fail(str(path), 1, "`parts:` must be a list", "see the comment at the top of required_parts.yml")
    parts = [_part(path, text, i, raw) for i, raw in enumerate(raw_parts)]
    deadline = data.get("deadline") or {}
    month, day = deadline.get("month", 4), deadline.get("day", 1)
    try:
        date(2001, month, day)
    except (TypeError, ValueError):
        raise fail(str(path), _line_of(text, "deadline:"), f"deadline month {month!r} / day {day!r} is not a date",
                   "write e.g. `month: 4` and `day: 1`") from None
    return PartRules(tuple(parts), month, day)


def _part(path: Path, text: str, index: int, raw: Any) -> Part:
    line = _line_of(text, "- key:", index)
    if not isinstance(raw, dict) or not raw.get("key") or not raw.get("name"):
        raise fail(str(path), line, f"part #{index + 1} needs `key` and `name`", "add both fields")
    patterns = {name: tuple(str(p) for p in raw.get(name) or ()) for name in ("headings", "text")}
    for source in (*patterns["headings"], *patterns["text"]):
        try:
            re.compile(_fill(source, 2000))
        except re.error as exc:
            raise fail(str(path), line, f"pattern {source!r} of part {raw['key']} is not a valid regular "
                       f"expression ({exc})", "fix or quote the pattern") from None
    fallback = raw.get("fallback")
    if fallback not in (None, "other_sections"):
        raise fail(str(path), line, f"fallback {fallback!r} is unknown", "write `fallback: other_sections` or drop it")
    return Part(str(raw["key"]), int(raw.get("number", index + 1)), str(raw["name"]),
                str(raw.get("short") or raw["name"]), patterns["headings"], patterns["text"],
                bool(raw.get("plans")), fallback)


def _line_of(text: str, marker: str, index: int = 0) -> int:
    count = -1
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(marker):
            count += 1
            if count == index:
                return n
    return 1


def _fill(pattern: str, year: int) -> str:
    return pattern.replace("{year}", str(year)).replace("{next_year}", str(year + 1))


def _patterns(sources: tuple[str, ...], year: int) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(_fill(p, year)) for p in sources)


def _matches(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(p.search(text) for p in patterns)


# ------------------------------------------------------------------------------------------------------
# The check


def top_sections(report: Report) -> list[Section]:
    """The report's parts: the sections at the highest heading level it uses."""
    levels = [s.level for s in report.sections if s.level > 0]
    if not levels:
        return []
    top = min(levels)
    return [s for s in report.sections if s.level == top]


def check_report(report: Report, rules: PartRules) -> Compliance:
    tops = top_sections(report)
    owner: dict[str, Part] = {}
    headings = [(p, _patterns(p.headings, report.year)) for p in rules.parts]  # filled in once per report
    for section in tops:
        part = next((p for p, patterns in headings if _matches(patterns, section.title)), None)
        if part:
            owner[section.id] = part
    plan_roots = {s.id for s in tops if owner.get(s.id) and owner[s.id].plans}
    # A plan to "do X" is not a report that X was done: plan sections never count as a mention.
    outside_plans = [s for s in report.sections if not _within(report, s, plan_roots)]
    findings = {p.key: _finding(report, p, tops, owner, outside_plans) for p in rules.parts}
    deadline = date(report.year + 1, rules.deadline_month, rules.deadline_day)
    status = _deadline_status(report.published, deadline)
    return Compliance(report.face, tuple(findings[p.key] for p in rules.in_regulation_order), deadline, status)


def _deadline_status(published: date | None, deadline: date) -> str:
    if published is None:
        return UNKNOWN
    return ON_TIME if published <= deadline else LATE


def _finding(report: Report, part: Part, tops: list[Section], owner: dict[str, Part],
             searchable: list[Section]) -> PartFinding:
    own = [s for s in tops if owner.get(s.id) is part]
    if own:
        return PartFinding(part, FOUND, _found(own))
    if part.fallback == "other_sections":
        # Thematic sections before the first 不足 / 安排 section cover the measures taken.
        others: list[Section] = []
        for section in tops:
            if section.id in owner:
                break
            others.append(section)
        if others:
            return PartFinding(part, FOUND, _found(others))
    patterns = _patterns(part.text, report.year)
    mention = next((s for s in searchable if patterns and _matches(patterns, s.text)), None)
    if mention:
        return PartFinding(part, MENTIONED, _found([mention]))
    return PartFinding(part, MISSING, ())


def _found(sections: list[Section]) -> tuple[FoundSection, ...]:
    return tuple(FoundSection(s.id, s.title) for s in sections)


def check_reports(reports: tuple[Report, ...], rules: PartRules) -> dict[str, Compliance]:
    return {r.slug: check_report(r, rules) for r in reports}
