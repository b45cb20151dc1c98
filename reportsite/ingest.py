"""Import: raw scraped report text -> Markdown body + front matter (the first step of the flow).

Web-page chrome is removed by the rules in data/chrome.yml and every removed line is recorded, so
the body plus `removed` always gives back the raw text. Metadata (jurisdiction, year, dates,
issuer) is read from the text; jurisdictions are resolved with the GB/T 2260 table.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import divisions as dv
from .datafile import YAML_LOADER
from .divisions import LEVELS
from .errors import ReportsiteError, fail
from .markup import cn_int, match_heading, to_markdown
from .slugs import default_slug
from .textio import blank_control_characters, decode_report

# ------------------------------------------------------------------------------------------------------
# Rules (data/chrome.yml)


@dataclass(frozen=True)
class ChromeRule:
    name: str
    pattern: re.Pattern[str]
    takes_next_line: bool = False
    meta: str | None = None


@dataclass(frozen=True)
class ImportRules:
    rules: tuple[ChromeRule, ...]
    max_line_length: int
    header_max_lines: int
    body_starts_at_length: int
    report_markers: tuple[str, ...]


@cache
def load_rules(path: str | None = None) -> ImportRules:
    if path is None:
        text = resources.files("reportsite").joinpath("data/chrome.yml").read_text(encoding="utf-8")
        path = "reportsite/data/chrome.yml"
    else:
        text = Path(path).read_text(encoding="utf-8")
    data = yaml.load(text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    rules = []
    for i, rule in enumerate(data["rules"]):
        try:
            pattern = re.compile(rule["pattern"])
        except re.error as exc:
            raise fail(path, i + 1, f"rule {rule.get('name')!r} has a bad pattern ({exc})",
                       "fix the regular expression") from None
        rules.append(ChromeRule(rule["name"], pattern, bool(rule.get("takes_next_line")), rule.get("meta")))
    zone = data.get("header_zone", {})
    return ImportRules(tuple(rules), int(data.get("max_line_length", 160)), int(zone.get("max_lines", 12)),
                       int(zone.get("body_starts_at_length", 40)), tuple(data.get("report_markers", ())))


# ------------------------------------------------------------------------------------------------------
# Result types


@dataclass(frozen=True)
class RemovedLine:
    line: int  # 1-based line number in the raw text
    rule: str
    text: str


@dataclass(frozen=True)
class ImportedReport:
    source: str
    front_matter: dict[str, Any]
    body: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def sections(self) -> int:
        return sum(1 for line in self.body.splitlines() if line.startswith("#"))


# ------------------------------------------------------------------------------------------------------
# Chrome removal

_TITLE = re.compile(r"(报告|情况|总结)$")


def _looks_like_title(line: str) -> bool:
    return (len(line) <= 80 and bool(_TITLE.search(line)) and any(w in line for w in ("法治", "依法"))
            and not match_heading(line) and "。" not in line)


def _match_rule(line: str, rules: ImportRules) -> ChromeRule | None:
    if len(line) > rules.max_line_length:
        return None
    return next((r for r in rules.rules if r.pattern.search(line)), None)


def split_chrome(lines: list[str], rules: ImportRules) -> tuple[list[str], list[RemovedLine], str | None]:
    """Return (kept lines with removed ones blanked, removed lines, the report's own title or None)."""
    kept = list(lines)
    removed: list[RemovedLine] = []
    title: str | None = None
    skip_next = False
    in_header = True
    nonempty_seen = 0
    for i, line in enumerate(lines):
        text = line.strip()
        if not text:
            continue
        nonempty_seen += 1
        rule = _match_rule(text, rules)
        if skip_next:
            rule_name, skip_next = "prev-next-title", False
        elif rule:
            rule_name, skip_next = rule.name, rule.takes_next_line
        elif in_header and title is None and _looks_like_title(text):
            title, rule_name = text, "title"
        elif (in_header and len(text) < rules.body_starts_at_length and nonempty_seen <= rules.header_max_lines
              and not match_heading(text) and "。" not in text):
            rule_name = "header"
        else:
            in_header = False
            continue
        if rule_name == "title":
            in_header = False
        removed.append(RemovedLine(i + 1, rule_name, text))
        kept[i] = ""
    return kept, removed, title


# ------------------------------------------------------------------------------------------------------
# Metadata

_ISO_DATE = re.compile(r"(\d{4})\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})")


def parse_date(text: str) -> date | None:
    m = _ISO_DATE.search(text) or re.search(r"([^\s年]{4})\s*年\s*([^\s月]{1,3})\s*月\s*([^\s日]{1,3})\s*日", text)
    if not m:
        return None
    try:
        return date(cn_int(m.group(1)), cn_int(m.group(2)), cn_int(m.group(3)))
    except ValueError:
        return None


_YEAR_IN_TITLE = re.compile(r"((?:19|20)\d{2})\s*年")
_YEAR_IN_OPENING = re.compile(
    r"((?:19|20)\d{2})\s*年(?:度)?\s*(?:以来|,|，|是|全年|推进法治政府建设|的?主要举措)")


_HEADING_START = (r"^(?:[一二三四五六七八九十]{1,3}\s*[、.．]|[(（]\s*[一二三四五六七八九十]{1,3}\s*[)）])"
                  r"\s*[^\n。]{0,12}?")
_YEAR_OF_RESULTS = re.compile(_HEADING_START + r"((?:19|20)\d{2})\s*年度?[^\n。]{0,12}?(?:存在|主要举措|成效|情况)",
                              re.MULTILINE)
_YEAR_OF_PLANS = re.compile(_HEADING_START + r"((?:19|20)\d{2})\s*年度?[^\n。]{0,16}?"
                            r"(?:主要安排|工作安排|工作要点|工作计划|工作打算)", re.MULTILINE)


def detect_year(title: str | None, body_text: str, published: date | None) -> int | None:
    """The year reported on: from the title, a heading on the year's results, the opening, the heading
    of next year's plans (minus one), or the publish date (minus one), in that order."""
    for pattern, text, offset in ((_YEAR_IN_TITLE, title or "", 0), (_YEAR_OF_RESULTS, body_text, 0),
                                  (_YEAR_OF_PLANS, body_text, -1), (_YEAR_IN_OPENING, body_text[:800], 0)):
        m = pattern.search(text)
        if m:
            return int(m.group(1)) + offset
    return published.year - 1 if published else None


def most_mentioned_year(body_text: str) -> int | None:
    """Last resort: the year the text names most often (a guess, so import warns about it)."""
    years = Counter(int(y) for y in re.findall(r"((?:19|20)\d{2})\s*年", body_text))
    return years.most_common(1)[0][0] if years else None


_ORG_SUFFIX = r"(?:人民政府|政府|委员会|委|局|厅|办公室|办|中心|管委会|工委|署)"
_SIGNATURE = re.compile(rf"^[\u4e00-\u9fff（）() ]{{2,40}}{_ORG_SUFFIX}$")
_TITLE_ISSUER = re.compile(rf"^(.{{2,40}}?{_ORG_SUFFIX})关于")


def detect_issuer(title: str | None, body_lines: list[str], meta: dict[str, str]) -> str | None:
    """Closing signature, else the issuing organs before 关于 in the title, else 发布机构 / 来源."""
    tail = [line.strip() for line in body_lines if line.strip()][-3:]
    for i, line in enumerate(tail):
        if i + 1 < len(tail) and parse_date(tail[i + 1]) and _SIGNATURE.match(line):
            return line
    if title:
        m = _TITLE_ISSUER.match(title)
        if m:
            return m.group(1)
    return meta.get("issuer") or meta.get("source_site")


# ------------------------------------------------------------------------------------------------------
# Jurisdiction

_DEPARTMENT = re.compile(r"^(?:中共)?(?P<org>\S{2,30}?(?:局|厅|委员会|办公室|中心))(?:关于)?(?:19|20)\d{2}")
_TOWN = re.compile(r"(?P<name>[\u4e00-\u9fff]{2,8}?(?:街道|镇|乡))"
                   r"(?:人民政府|办事处|党工委|党委)?(?:关于)?(?:19|20)\d{2}")
_ZONE = re.compile(r"(?P<name>[\u4e00-\u9fff]{2,16}?"
                   r"(?:经济技术开发区|高新技术产业开发区|经济开发区|开发区|高新区|示范区))")


def _pick_division(title: str | None, text: str, table: dv.DivisionTable) -> tuple[dv.Division | None, str | None]:
    counts = dv.count_mentions(text, table)
    if title:  # in a title even a two-character name (义县, 和县) is the jurisdiction, not a word
        for name, n in dv.count_mentions(title, table, min_free_length=2).items():
            counts[name] += 50 * n
    if not counts:
        return None, "no jurisdiction named in the text; add `jurisdiction:` to the front matter"
    ranked = counts.most_common()
    name, score = ranked[0]
    tied = [n for n, c in ranked if c == score]
    if len(tied) > 1:
        name = _innermost(tied, table)
        if name is None:
            return None, (f"jurisdiction unclear ({' or '.join(tied)}, named equally often); "
                          "set `jurisdiction.adcode` in the front matter")
    candidates = table.by_name[name]
    division = dv.disambiguate(candidates, text)
    if division is None:
        where = " or ".join(f"{d.province}{d.city or ''} ({d.adcode})" for d in candidates)
        return None, f"{name} is ambiguous: {where}; set `jurisdiction.adcode` in the front matter"
    return division, None


def _innermost(names: list[str], table: dv.DivisionTable) -> str | None:
    """Of names tied for most mentions, the one inside all the others (曹县 in 菏泽市 in 山东省): the
    report is about it and the others are its parents. None when they are not nested."""
    for name in names:
        for division in table.by_name[name]:
            parents = {division.name, division.city, division.province}
            if all(other in parents for other in names):
                return name
    return None


def _jurisdiction_dict(division: dv.Division, name: str | None = None, level: str | None = None,
                       county: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name or division.name,
        "level": level or division.level,
        "city": division.city,
        "province": division.province,
        "adcode": division.adcode,
    }
    if county:
        data["county"] = county
    return data


def resolve_jurisdiction(title: str | None, issuer: str | None, text: str,
                         table: dv.DivisionTable) -> tuple[dict[str, Any], str | None, str | None]:
    """Return (jurisdiction, department issuer or None, warning or None)."""
    division, warning = _pick_division(title, text, table)
    if division is None:
        name = None
        for candidate in dv.count_mentions((title or "") + text, table).most_common(1):
            name = candidate[0]
        ambiguous = table.by_name.get(name or "", ())
        level = ambiguous[0].level if ambiguous else "other"
        return {"name": name, "level": level, "city": None, "province": None, "adcode": None}, None, warning
    heading_text = title or ""
    for source in (heading_text, issuer or ""):
        m = _DEPARTMENT.match(source) if source is heading_text else None
        org = m.group("org") if m else (source if source.endswith(("局", "厅", "委员会")) else None)
        if org and division.name in org and not org.endswith(("人民政府", "市委", "区委", "县委")):
            return _jurisdiction_dict(division, level="department"), org, None
    m = _TOWN.search(heading_text)
    if m and division.level in (dv.LEVEL_DISTRICT, dv.LEVEL_COUNTY):
        town = m.group("name").split(division.name)[-1]  # 青岛市城阳区棘洪滩街道 -> 棘洪滩街道
        level = "street" if town.endswith("街道") else "town"
        return _jurisdiction_dict(division, name=town, level=level, county=division.name), None, None
    m = _ZONE.search(heading_text)
    if m:
        zone = m.group("name")
        zone = zone[zone.index(division.name) + len(division.name):] if division.name in zone else zone
        if zone not in table.by_name:
            return _jurisdiction_dict(division, name=zone, level="other"), None, None
    return _jurisdiction_dict(division), None, None


def normalised_title(jurisdiction: dict[str, Any], year: int | None, department: str | None) -> str:
    name = department or jurisdiction.get("name") or "某地"
    city = jurisdiction.get("city")
    prefix = city if city and city != jurisdiction.get("name") and not name.startswith(city) else ""
    return f"{prefix}{name}{year or ''}年度法治政府建设情况报告"


# ------------------------------------------------------------------------------------------------------
# The import itself


def _meta_from_removed(removed: list[RemovedLine], rules: ImportRules) -> dict[str, str]:
    by_name = {r.name: r for r in rules.rules}
    meta: dict[str, str] = {}
    for item in removed:
        rule = by_name.get(item.rule)
        if rule and rule.meta:
            # The published-time line often also carries 发布机构: search every rule's meta pattern.
            for other in rules.rules:
                if other.meta and other.meta not in meta:
                    m = re.search(other.pattern.pattern.lstrip("^"), item.text)
                    if m:
                        meta[other.meta] = m.group(1)
    return meta


def import_text(text: str, source: str, sha256: str, rules: ImportRules | None = None,
                where: str | None = None) -> ImportedReport:
    """Turn decoded raw text into an ImportedReport; raises ReportsiteError if it is not a report.

    `source` is recorded in the front matter; `where` (default: source) names the file in errors."""
    rules = rules or load_rules()
    where = where or source
    text, controls = blank_control_characters(text)
    table = dv.load_divisions()
    lines = text.split("\n")
    kept, removed, title = split_chrome(lines, rules)
    body_lines = [line.strip().replace("\u3000", " ").strip() for line in kept]
    body_text = "\n".join(line for line in body_lines if line)
    if not body_text:
        raise fail(where, 1, "only web-page chrome, no report text",
                   "copy the report's text from the page and import that")
    if not any(marker in body_text for marker in rules.report_markers):
        raise fail(where, 1, "this text does not look like a rule-of-law report (none of "
                   f"{'/'.join(rules.report_markers)} occurs)", "check the file, or remove it from the import")
    meta = _meta_from_removed(removed, rules)
    published = parse_date(meta["published"]) if "published" in meta else None
    closing_date = next((parse_date(ln) for ln in reversed(body_lines[-40:]) if ln and parse_date(ln)
                         and len(ln) <= 16), None)
    published = published or closing_date
    issuer = detect_issuer(title, body_lines, meta)
    jurisdiction, department, warning = resolve_jurisdiction(title, issuer, body_text, table)
    year = detect_year(title, body_text, published)
    warnings = [warning] if warning else []
    if year is None and (year := most_mentioned_year(body_text)):
        warnings.append(f"year {year} guessed from the years the text names most; check `year:`")
    if controls:
        warnings.append(f"{controls} control character(s) replaced by spaces")
    if year is None:
        warnings.append("no report year found; set `year:` in the front matter")
    if department:
        issuer = issuer if issuer and issuer != meta.get("issuer") else department
    front: dict[str, Any] = {
        "title": title or normalised_title(jurisdiction, year, department),
        "jurisdiction": jurisdiction,
        "year": year,
        "published": published,
        "issuer": issuer,
        "source": source,
        "sha256": sha256,
    }
    if not title:
        front["title_normalised"] = True
    front["removed"] = [{"line": r.line, "rule": r.rule, "text": r.text} for r in removed]
    if warnings:
        front["warnings"] = warnings
    return ImportedReport(source, front, to_markdown(body_lines), tuple(warnings))


def import_file(path: Path, rules: ImportRules | None = None) -> ImportedReport:
    data = path.read_bytes()
    text, _ = decode_report(data, str(path))
    return import_text(text, path.name, hashlib.sha256(data).hexdigest(), rules, where=str(path))


# ------------------------------------------------------------------------------------------------------
# Writing content files


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_presenter)


def render_content_file(report: ImportedReport) -> str:
    front = yaml.dump(report.front_matter, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                      default_flow_style=False, width=1000)
    return f"---\n{front}---\n\n{report.body}"


def output_name(report: ImportedReport) -> str:
    """Content files are named by their slug (130502-2023.md); unresolved ones by their source name."""
    fm, j = report.front_matter, report.front_matter["jurisdiction"]
    if not j.get("name") or not fm.get("year"):
        return Path(report.source).stem + ".md"
    return default_slug(adcode=j.get("adcode"), name=j["name"], level=j["level"], city=j.get("city"),
                        county=j.get("county"), year=fm["year"], issuer=fm.get("issuer")) + ".md"


def _recorded_sha256(path: Path) -> str | None:
    """The sha256 a content file says its raw source had (None when it has no such field)."""
    head = path.read_text(encoding="utf-8").split("\n---\n", 1)[0]
    m = re.search(r"^sha256: ['\"]?([0-9a-f]{64})", head, re.MULTILINE)
    return m.group(1) if m else None


def choose_output(out_dir: Path, report: ImportedReport, taken: set[Path]) -> tuple[Path, ImportedReport]:
    """Where this report's content file goes. A second, different report for the same jurisdiction and
    year (a republished or revised text) gets its own slug `<slug>-<first 6 of its sha256>`, recorded
    in its front matter, so both stay; importing the same raw file again finds its own file."""
    sha = report.front_matter["sha256"]
    first = out_dir / output_name(report)
    if report.front_matter["jurisdiction"].get("adcode") is None:
        # Pin the slug: once an editor fills in the jurisdiction, the URL must not move or collide.
        report = ImportedReport(report.source, {**report.front_matter, "slug": first.stem}, report.body,
                                report.warnings)
    for target in (first, first.with_name(f"{first.stem}-{sha[:6]}.md")):
        if target in taken or (target.exists() and _recorded_sha256(target) not in (sha, None)):
            continue
        if target is first:
            return target, report
        front = {**report.front_matter, "slug": target.stem}
        return target, ImportedReport(report.source, front, report.body, report.warnings)
    raise fail(report.source, 1, f"a different report already uses {first.name} and {first.stem}-{sha[:6]}.md",
               "import into another folder or remove the duplicate")


def collect_sources(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".text")))
        elif path.exists():
            found.append(path)
        else:
            raise fail(str(path), 0, "no such file or folder", "check the path")
    return found


__all__ = ["ImportedReport", "ReportsiteError", "import_file", "import_text", "render_content_file",
           "load_rules", "collect_sources", "output_name", "LEVELS"]
