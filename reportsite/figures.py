"""Derived view: the figures a report states, and which of them are comparable indicators.

Every number with a unit (42件, 2000余件, 3.96万户, 十余个, 99.89%) is read with the words around it, its
sentence and its section. Indicator rules (content/indicators.yml) decide which figures measure the same
thing across reports. Precision first: plans, targets and changes are never values; values that are true
but not like-for-like (市本级, 累计 ...) are flagged.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compliance import Compliance, PartRules, check_report, load_part_rules
from .datafile import read_yaml
from .errors import fail
from .model import SLUG_RE, Report, ReportFace

# ------------------------------------------------------------------------------------------------------
# Reading numbers

# Longest first, so 人次 is not read as 人 and 个百分点 not as 个.
UNITS = ("个百分点", "人次", "件次", "家次", "户次", "场次", "万元", "亿元", "件", "次", "人", "项", "场", "家", "个",
         "条", "份", "户", "名", "元", "%", "％")
_CN_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
_NUMBER = re.compile(
    r"(?P<num>\d+(?:\.\d+)?(?P<mult>[万亿])?|[" + _CN_NUMERAL + r"]+)"
    r"(?P<approx>余|多)?(?P<unit>" + "|".join(re.escape(u) for u in UNITS) + r")(?P<bound>以上|左右)?")
# A lone 一 ... 九 before a unit is almost always an idiom (一件事, 三项制度, 一次办), not a count.
_LONE_DIGIT = set("零〇一二两三四五六七八九百千万亿")
# What every _NUMBER match holds: the number's last character, maybe 余/多, and the unit's first character.
# Sentences without it are not read for numbers (a quick scan: this starts with a character class).
_FIGURE_HINT = re.compile(r"[\d" + _CN_NUMERAL + r"][余多]?[" + re.escape("".join(sorted({u[0] for u in UNITS}))) + "]")
_SENTENCE = re.compile(r"[^。！？；;!?\n]+[。！？；;!?]?")
_CLAUSE_END = "，,：:；;。！？!?"
_CLAUSE_MARK = re.compile("[" + re.escape(_CLAUSE_END) + "]")
_QUOTES = str.maketrans("", "", "“”\"‘’「」『』")
_SMALL_WORDS = re.compile(r"(共计|总计|合计|分别为|分别|达到|共|为|达|约|近|超过|逾|是|了|有)$")


@dataclass(frozen=True)
class Figure:
    """One number with its unit, as the report states it. The words around it are kept as places in
    its sentence, not as copies: a build loads the figures of every indicator value."""

    id: str  # <section id>-n<k>: the k-th figure of the section
    section_id: str
    sentence: str
    text: str  # as written, with unit: 2000余件
    value: float  # in `unit` (万/亿 multiplied out, except 万元/亿元)
    unit: str
    approx: bool  # 余 / 多 / 以上 / 左右
    in_plans: bool  # in the next-year plan section
    start: int  # where `text` begins in the sentence
    before_start: int  # where `before` begins: after any earlier figure of the clause, and 、和及与
    clause_start: int  # where the clause begins
    clause_end: int  # where the clause ends (after `after`)

    @property
    def before(self) -> str:
        """The clause's words before the number, after any earlier figure in it."""
        return self.sentence[self.before_start:self.start]

    @property
    def after(self) -> str:
        """The words after the unit to the clause's end."""
        return self.sentence[self.start + len(self.text):self.clause_end]

    @property
    def clause_before(self) -> str:
        """The whole clause before the number."""
        return self.sentence[self.clause_start:self.start]

    @property
    def sentence_before(self) -> str:
        """The sentence before the number."""
        return self.sentence[:self.start]

    @property
    def phrase(self) -> str:
        """What the number measures, in the report's words: 办理行政复议案件 / 政务服务事项开通网上办理."""
        return (self.before or self.after).strip()

    @property
    def clause(self) -> str:
        return self.sentence[self.clause_start:self.clause_end]


def number_text(value: float) -> str:
    """39600.0 -> '39600', 99.89 -> '99.89' (no exponent, no trailing .0)."""
    return str(int(value)) if value == int(value) else f"{value:.12g}"


def parse_number(num: str, mult: str | None) -> float | None:
    """'3.96', '万' -> 39600; '十' -> 10; '两千' -> 2000; None when it is not a number."""
    if not num:  # 万元 with no number before it (单位万元GDP): the multiplier alone
        return None
    if num[0].isdigit():
        value = float(num.rstrip("万亿"))
        return value * {"万": 1e4, "亿": 1e8}.get(mult or "", 1)
    if len(num) == 1 and num in _LONE_DIGIT:
        return None
    if not any(c in num for c in "一二两三四五六七八九十"):
        return None
    import cn2an  # here: its import takes 75 ms, which a rebuild whose edit has no such number need not pay

    try:
        return float(cn2an.cn2an(num, "smart"))
    except (ValueError, KeyError):
        return None


def _unit_and_value(match: re.Match[str]) -> tuple[str, float] | None:
    num, mult, unit = match["num"], match["mult"], match["unit"]
    if unit == "％":
        unit = "%"
    if unit == "元" and (mult or num[-1] in "万亿"):  # 26万余元 -> 26 万元: money keeps its customary unit
        multiplier = mult or num[-1]
        number = num.rstrip("万亿")
        value = parse_number(number, None)
        return (multiplier + "元", value) if value is not None else None
    if unit == "元":
        return None
    value = parse_number(num, mult)
    return (unit, value) if value is not None else None


def sentence_figures(sentence: str) -> list[tuple[re.Match[str], str, float]]:
    found = []
    for m in _NUMBER.finditer(sentence):
        start = m.start()
        if start > 0 and (sentence[start - 1] == "第" or sentence[start - 1].isdigit()
                          or sentence[start - 1] in ".．·"):
            continue  # 第三批 is an ordinal; 4.15 and 5·15 are dates
        parsed = _unit_and_value(m)
        if parsed:
            found.append((m, *parsed))
    return found


def extract_figures(report: Report, plan_sections: frozenset[str] = frozenset()) -> tuple[Figure, ...]:
    figures: list[Figure] = []
    for section in report.sections:
        text = section.text
        hints = [h.start() for h in _FIGURE_HINT.finditer(text)]  # a number never spans sentences
        if not hints:
            continue
        count, next_hint = 0, 0
        in_plans = section.id in plan_sections
        for sm in _SENTENCE.finditer(text):
            while next_hint < len(hints) and hints[next_hint] < sm.start():
                next_hint += 1
            if next_hint == len(hints):
                break
            if hints[next_hint] >= sm.end():
                continue  # no figure in this sentence
            sentence = sm.group().strip()
            found = sentence_figures(sentence)
            if not found:
                continue
            marks = [c.start() for c in _CLAUSE_MARK.finditer(sentence)]  # where clauses end
            previous_end = 0
            for m, unit, value in found:
                count += 1
                start, end = m.start(), m.end()
                k = bisect_left(marks, start)
                clause_start = marks[k - 1] + 1 if k else 0
                k = bisect_left(marks, end, k)
                clause_end = marks[k] if k < len(marks) else len(sentence)
                before = sentence[max(clause_start, previous_end):start]
                figures.append(Figure(f"{section.id}-n{count}", section.id, sentence, m.group(), value, unit,
                                      bool(m["approx"] or m["bound"]), in_plans, start,
                                      start - len(before.lstrip("、和及与")), clause_start, clause_end))
                previous_end = end
    return tuple(figures)


# ------------------------------------------------------------------------------------------------------
# Indicator rules


@dataclass(frozen=True)
class MatchRule:
    before: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None
    sentence: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def fits(self, figure: Figure) -> bool:
        return self.fits_reading(_Reading(figure))

    def fits_reading(self, reading: _Reading) -> bool:
        if self.before and not self.before.search(reading.lead):
            return False
        if self.after and not self.after.match(reading.after):
            return False
        if self.sentence and not self.sentence.search(reading.figure.sentence):
            return False
        return not (self.exclude and self.exclude.search(reading.clause))


class _Reading:
    """A figure's words as the rules read them, worked out once per figure, not once per rule."""

    __slots__ = ("figure", "lead", "after", "clause")

    def __init__(self, figure: Figure):
        self.figure = figure
        self.lead = _lead_words(figure.before)
        self.after = figure.after.translate(_QUOTES)
        self.clause = figure.clause


def _lead_words(text: str) -> str:
    text = text.translate(_QUOTES).strip()
    while (shorter := _SMALL_WORDS.sub("", text)) != text:
        text = shorter
    return text


@dataclass(frozen=True)
class Indicator:
    slug: str
    name: str
    description: str
    units: tuple[str, ...]
    rules: tuple[MatchRule, ...]
    stock: bool = False

    @property
    def unit(self) -> str:
        return self.units[0]

    @property
    def is_rate(self) -> bool:
        return self.units == ("%",)

    def fits(self, figure: Figure) -> bool:
        return figure.unit in self.units and any(rule.fits(figure) for rule in self.rules)


@dataclass(frozen=True)
class FlagRule:
    label: str
    pattern: re.Pattern[str] | None
    where: str  # sentence_before / clause_before / clause
    unless: str | None = None  # pattern source; may hold {year}
    show_match: bool = False
    skip_stock: bool = False
    other_year: bool = False

    def flag(self, figure: Figure, report: Report, indicator: Indicator) -> str | None:
        if self.skip_stock and indicator.stock:
            return None
        text = getattr(figure, self.where)
        if self.other_year:
            years = {int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d\d)年", text)}
            return self.label if years - {report.year} else None
        m = self.pattern.search(text) if self.pattern else None
        if not m:
            return None
        if self.unless and re.search(self.unless.replace("{year}", str(report.year)), text):
            return None
        return m.group() if self.show_match else self.label


@dataclass(frozen=True)
class IndicatorRules:
    indicators: tuple[Indicator, ...]
    flags: tuple[FlagRule, ...] = ()
    targets: re.Pattern[str] | None = None
    changes: re.Pattern[str] | None = None


_WHERE = ("sentence_before", "clause_before", "clause")


def load_indicators(content_dir: Path) -> IndicatorRules:
    path = content_dir / "indicators.yml"
    if not path.exists():
        return IndicatorRules(())
    text = path.read_text(encoding="utf-8")
    data = read_yaml(path) or {}
    if not isinstance(data, dict) or not isinstance(data.get("indicators"), list):
        raise fail(str(path), 1, "`indicators:` must be a list", "see the comment at the top of indicators.yml")
    lines = _entry_lines(text)

    def regex(source: Any, line: int, anchor: str = "") -> re.Pattern[str] | None:
        if source in (None, ""):
            return None
        pattern = {"end": f"(?:{source})$", "start": f"(?:{source})"}.get(anchor, str(source))
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise fail(str(path), line, f"pattern {source!r} is not a valid regular expression ({exc})",
                       "fix the pattern; quote it in '...'") from None

    indicators, seen = [], set()
    for i, raw in enumerate(data["indicators"]):
        line = lines.get(("slug", i), 1)
        if not isinstance(raw, dict) or not raw.get("slug") or not raw.get("name") or not raw.get("units"):
            raise fail(str(path), line, f"indicator #{i + 1} needs `slug`, `name` and `units`", "add the fields")
        slug = str(raw["slug"])
        if not SLUG_RE.match(slug) or slug in seen:
            raise fail(str(path), line, f"indicator slug {slug!r} is not unique lower-case ASCII",
                       "use letters, digits and hyphens, once each")
        seen.add(slug)
        units = tuple("%" if str(u) == "％" else str(u) for u in raw["units"])
        unknown = [u for u in units if u not in UNITS]
        if unknown:
            raise fail(str(path), line, f"indicator {slug}: unit {unknown[0]!r} is not read from reports",
                       f"use one of {' '.join(UNITS)}")
        raw_rules = raw.get("match")
        if not isinstance(raw_rules, list) or not raw_rules or not all(isinstance(r, dict) for r in raw_rules):
            raise fail(str(path), line, f"indicator {slug}: `match:` must be a list of rules",
                       "give at least one rule with `before:` or `after:`")
        rules = tuple(MatchRule(regex(r.get("before"), line, "end"), regex(r.get("after"), line, "start"),
                                regex(r.get("sentence"), line), regex(r.get("exclude"), line)) for r in raw_rules)
        if not all(r.before or r.after for r in rules):
            raise fail(str(path), line, f"indicator {slug}: every rule needs `before:` or `after:`",
                       "say which words must stand next to the number")
        indicators.append(Indicator(slug, str(raw["name"]), str(raw.get("description", "")), units, rules,
                                    bool(raw.get("stock"))))
    flags = []
    for i, raw in enumerate(data.get("flags") or ()):
        line = lines.get(("label", i), 1)
        where = raw.get("where", "sentence_before") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not raw.get("label") or where not in _WHERE \
                or not (raw.get("pattern") or raw.get("other_year")):
            raise fail(str(path), line, f"flag #{i + 1} needs `label`, `pattern` (or `other_year: true`) and "
                       f"`where` one of {', '.join(_WHERE)}", "add the fields")
        flags.append(FlagRule(str(raw["label"]), regex(raw.get("pattern"), line), where,
                              str(raw["unless"]) if raw.get("unless") else None, bool(raw.get("show_match")),
                              bool(raw.get("skip_stock")), bool(raw.get("other_year"))))
    return IndicatorRules(tuple(indicators), tuple(flags), regex(data.get("targets"), 1),
                          regex(data.get("changes"), 1))


def _entry_lines(text: str) -> dict[tuple[str, int], int]:
    """(first key of a list entry, its index) -> line, for error messages."""
    found: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = defaultdict(int)
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*- (slug|label):", line)
        if m:
            found[(m.group(1), counts[m.group(1)])] = n
            counts[m.group(1)] += 1
    return found


# ------------------------------------------------------------------------------------------------------
# Figures -> indicator values


@dataclass(frozen=True)
class IndicatorValue:
    indicator: Indicator
    report: ReportFace
    figure: Figure
    flags: tuple[str, ...] = ()
    also: tuple[Figure, ...] = ()  # the same value stated again elsewhere in the report

    @property
    def charted(self) -> bool:
        """Only like-for-like values are compared in charts."""
        return not self.flags


def _candidates(readings: list[_Reading], indicator: Indicator, rules: IndicatorRules) -> list[Figure]:
    """The figures (read, in the indicator's units) that are values of the indicator."""
    found = []
    for reading in readings:
        for rule in indicator.rules:
            if rule.fits_reading(reading):
                break
        else:
            continue  # no rule fits
        if rules.targets and rules.targets.search(reading.clause):
            continue  # 力争达到…: a target, not an achievement
        if rules.changes and rules.changes.search(reading.lead):
            continue  # 同比增长12%: a change, not a level
        found.append(reading.figure)
    # A 其中 clause after a value of the same indicator in the same sentence is a breakdown of it.
    return [f for f in found if not ("其中" in f.clause_before
                                     and any(g.sentence == f.sentence and g.id < f.id for g in found))]


def indicator_values(report: Report, figures: tuple[Figure, ...], rules: IndicatorRules) -> list[IndicatorValue]:
    values: list[IndicatorValue] = []
    # Plan figures are never values; the others are read once, and offered to the indicators in their units.
    by_unit: dict[str, list[_Reading]] = {unit: [] for indicator in rules.indicators for unit in indicator.units}
    readings = []
    for figure in figures:
        if not figure.in_plans and figure.unit in by_unit:
            reading = _Reading(figure)
            by_unit[figure.unit].append(reading)
            readings.append(reading)
    for indicator in rules.indicators:
        units = indicator.units
        offered = by_unit[units[0]] if len(units) == 1 else [r for r in readings if r.figure.unit in units]
        candidates = _candidates(offered, indicator, rules)
        if not candidates:
            continue
        distinct = {(f.value, f.unit) for f in candidates}
        if len(distinct) == 1:
            first = candidates[0]
            values.append(IndicatorValue(indicator, report.face, first, _flags(first, report, indicator, rules),
                                         tuple(candidates[1:])))
            continue
        for figure in candidates:
            values.append(IndicatorValue(indicator, report.face, figure,
                                         ("数值不一", *_flags(figure, report, indicator, rules))))
    return values


def _flags(figure: Figure, report: Report, indicator: Indicator, rules: IndicatorRules) -> tuple[str, ...]:
    found = [flag.flag(figure, report, indicator) for flag in rules.flags]
    return tuple(dict.fromkeys(f for f in found if f))


# ------------------------------------------------------------------------------------------------------
# Everything the pages need


@dataclass(frozen=True)
class Analysis:
    rules: IndicatorRules
    part_rules: PartRules
    values: dict[str, tuple[IndicatorValue, ...]] = field(default_factory=dict)  # report slug -> values
    compliance: dict[str, Compliance] = field(default_factory=dict)  # report slug -> check

    def by_indicator(self, slug: str) -> list[IndicatorValue]:
        return self.grouped().get(slug, [])

    def grouped(self) -> dict[str, list[IndicatorValue]]:
        """indicator slug -> its values, in report order (one pass over 100,000 values at 10,000 reports)."""
        groups: dict[str, list[IndicatorValue]] = {i.slug: [] for i in self.rules.indicators}
        for values in self.values.values():
            for v in values:
                groups.setdefault(v.indicator.slug, []).append(v)
        return groups


@dataclass(frozen=True)
class ReportAnalysis:
    """The analysis of one report: a pure function of the report and the rules, so a build cache can
    keep it for reports that did not change. Its figures are not kept, only those of its indicator values:
    no page shows the others, and all of them were 500,000 objects at 10,000 reports, the biggest part
    of what a build loads."""

    compliance: Compliance
    values: tuple[IndicatorValue, ...]


def analyse_report(report: Report, rules: IndicatorRules, part_rules: PartRules) -> ReportAnalysis:
    compliance = check_report(report, part_rules)
    figures = extract_figures(report, compliance.plan_section_ids(report))
    return ReportAnalysis(compliance, tuple(indicator_values(report, figures, rules)))


def combine(rules: IndicatorRules, part_rules: PartRules, parts: dict[str, ReportAnalysis]) -> Analysis:
    """The site's analysis from its reports' (report slug -> analysis, in report order)."""
    return Analysis(rules, part_rules, {slug: a.values for slug, a in parts.items()},
                    {slug: a.compliance for slug, a in parts.items()})


def analyse(reports: tuple[Report, ...], rules: IndicatorRules, part_rules: PartRules) -> Analysis:
    return combine(rules, part_rules, {r.slug: analyse_report(r, rules, part_rules) for r in reports})


def load_analysis(reports: tuple[Report, ...], content_dir: Path) -> Analysis:
    return analyse(reports, load_indicators(content_dir), load_part_rules(content_dir))
