"""Render (continued): indicator comparison pages, the report-structure check, key-figure panels and the
data exports for researchers (data/reports.csv, data/reports.json, data/figures.csv)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from .compliance import Compliance, PartRules
from .config import SiteConfig
from .figures import Analysis, Indicator, IndicatorRules, IndicatorValue, analyse_report, combine, number_text
from .model import LEVEL_LABELS, Report, ReportFace
from .render import (
    Deferred,
    Page,
    PageRenderer,
    ReportPanel,
    SiteData,
    jurisdiction_label,
    report_path,
)

NAV = (("指标对比", "indicators/"), ("合规检查", "compliance/"))


def figure_link(value: IndicatorValue) -> str:
    """Site path that opens the report at the value's sentence and highlights it (theme/figures.js)."""
    return f"{report_path(value.report)}?fig={value.figure.id}#{value.figure.section_id}"


Memo = Callable[..., Any]  # call(function, *args) -> function(*args), perhaps remembered (a build cache)


def _direct(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def with_analysis(data: SiteData, rules: IndicatorRules, part_rules: PartRules, call: Memo = _direct) -> SiteData:
    """SiteData plus key figures and the structure check, their report-page panels and menu entries.
    `call(function, *args)` may remember the per-report work (a build cache)."""
    analysis = combine(rules, part_rules, {r.slug: call(analyse_report, r, rules, part_rules) for r in data.reports})
    panels = {slug: list(items) for slug, items in data.extra_report_panels.items()}
    for report in data.reports:
        panels.setdefault(report.slug, []).insert(0, figures_panel(report, analysis.values.get(report.slug, ()),
                                                                   analysis.compliance[report.slug]))
    nav = data.nav_extra + tuple(item for item in NAV if item not in data.nav_extra)
    return replace(data, analysis=analysis, extra_report_panels=panels, nav_extra=nav)


def figures_panel(report: Report, values: tuple[IndicatorValue, ...], compliance: Compliance) -> ReportPanel:
    """The report page's block of key figures and structure check (templates/_figures_panel.html)."""
    return ReportPanel("_figures_panel.html", {"report": report, "figure_values": values, "compliance": compliance})


# ------------------------------------------------------------------------------------------------------
# Indicator pages


@dataclass(frozen=True)
class Bar:
    label: str
    value: IndicatorValue
    y: int
    width: float


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int
    bar_height: int
    plot_width: int
    maximum: float
    total: int  # like-for-like values; the chart shows the largest len(bars) of them


def bar_chart(values: list[IndicatorValue], indicator: Indicator, limit: int) -> Chart | None:
    """Horizontal bars of the `limit` largest like-for-like values; geometry for a static SVG. (All of a
    national collection's would make a chart 200,000 pixels tall; the table below lists every value.)"""
    ranked = sorted((v for v in values if v.charted), key=lambda v: (-v.figure.value, v.report.slug))
    charted = ranked[:limit]
    if not charted:
        return None
    label_width, plot_width, bar_height, gap = 150, 340, 22, 10
    maximum = max(v.figure.value for v in charted)
    if indicator.is_rate:
        maximum = max(maximum, 100.0)
    bars = tuple(Bar(f"{jurisdiction_label(v.report)} {v.report.year}", v, 10 + i * (bar_height + gap),
                     round(plot_width * v.figure.value / maximum, 1) if maximum else 0.0)
                 for i, v in enumerate(charted))
    height = 10 + len(bars) * (bar_height + gap) + 10
    return Chart(bars, label_width + plot_width + 80, height, label_width, bar_height, plot_width, maximum,
                 len(ranked))


@dataclass(frozen=True)
class MatrixRow:
    report: ReportFace  # the jurisdiction's most recent report, for its name and place
    cells: dict[int, list[IndicatorValue]]  # year -> values


def indicator_matrix(values: list[IndicatorValue]) -> tuple[list[int], list[MatrixRow]]:
    years = sorted({v.report.year for v in values})
    rows: dict[str, MatrixRow] = {}
    for v in sorted(values, key=lambda v: (-v.report.year, v.report.slug)):
        row = rows.setdefault(v.report.jurisdiction.key, MatrixRow(v.report, {}))
        row.cells.setdefault(v.report.year, []).append(v)
    ordered = sorted(rows.values(), key=lambda r: (r.report.jurisdiction.province or "",
                                                   r.report.jurisdiction.city or "", jurisdiction_label(r.report)))
    return years, ordered


class IndicatorTable(NamedTuple):
    """What an indicator's page shows of its values: all of them (newest year first), the matrix of
    jurisdictions by year, and the chart."""

    values: list[IndicatorValue]
    years: list[int]
    rows: list[MatrixRow]
    chart: Chart | None


def indicator_table(values: list[IndicatorValue], indicator: Indicator, chart_bars: int) -> IndicatorTable:
    """Made only when the page is rendered (a Deferred value): a page kept from the last build needs none
    of it (1.2 s at 10,000 reports, every build)."""
    years, rows = indicator_matrix(values)
    return IndicatorTable(sorted(values, key=lambda v: (-v.report.year, jurisdiction_label(v.report))), years, rows,
                          bar_chart(values, indicator, chart_bars))


def render_analysis_pages(renderer: PageRenderer, data: SiteData) -> Iterator[Page]:
    analysis: Analysis | None = data.analysis
    if analysis is None:
        return
    indicators = analysis.rules.indicators
    grouped = analysis.grouped()
    by_indicator = {i.slug: grouped[i.slug] for i in indicators}
    common = {"figure_link": figure_link, "label_of": jurisdiction_label, "level_labels": LEVEL_LABELS,
              "number_text": number_text}
    yield renderer.render("indicators.html", "indicators/", indicators=indicators, by_indicator=by_indicator,
                          **common)
    for indicator in indicators:
        table = Deferred(indicator_table, (by_indicator[indicator.slug], indicator, data.config.chart_bars))
        yield renderer.render("indicator.html", f"indicators/{indicator.slug}/", indicator=indicator, table=table,
                              **common)
    checks = [analysis.compliance[r.slug] for r in sorted(data.reports, key=lambda r: (-r.year, r.slug))]
    yield renderer.render("compliance.html", "compliance/", checks=checks,
                          parts=analysis.part_rules.in_regulation_order, deadline=analysis.part_rules, **common)
    yield from data_exports(renderer, data, analysis)


# ------------------------------------------------------------------------------------------------------
# Data exports


REPORT_FIELDS = ("slug", "title", "jurisdiction", "level", "province", "city", "adcode", "year", "published",
                 "issuer", "source", "url", "deadline", "deadline_status")
FIGURE_FIELDS = ("report", "jurisdiction", "year", "indicator", "indicator_name", "value", "unit", "as_written",
                 "flags", "section", "sentence", "url")


def report_record(config: SiteConfig, analysis: Analysis, report: ReportFace) -> dict[str, object]:
    j = report.jurisdiction
    check = analysis.compliance[report.slug]
    record: dict[str, object] = {
        "slug": report.slug, "title": report.title, "jurisdiction": jurisdiction_label(report), "level": j.level,
        "province": j.province or "", "city": j.city or "", "adcode": j.adcode or "", "year": report.year,
        "published": report.published.isoformat() if report.published else "", "issuer": report.issuer or "",
        "source": report.source or "", "url": config.absolute(report_path(report)),
        "deadline": check.deadline.isoformat(), "deadline_status": check.deadline_status}
    for finding in check.findings:
        record[f"part_{finding.part.key}"] = finding.status
    return record


def _csv(rows: list[dict[str, object]], fields: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")  # with BOM, so Excel opens Chinese text correctly


def reports_csv(config: SiteConfig, analysis: Analysis, reports: tuple[ReportFace, ...]) -> bytes:
    part_fields = [f"part_{p.key}" for p in analysis.part_rules.in_regulation_order]
    return _csv([report_record(config, analysis, r) for r in reports], [*REPORT_FIELDS, *part_fields])


def reports_json(config: SiteConfig, analysis: Analysis, reports: tuple[ReportFace, ...]) -> bytes:
    records = [report_record(config, analysis, r) for r in reports]
    return (json.dumps(records, ensure_ascii=False, indent=1) + "\n").encode()


def figures_csv(config: SiteConfig, analysis: Analysis, reports: tuple[ReportFace, ...]) -> bytes:
    rows = []
    for report in reports:
        for v in analysis.values.get(report.slug, ()):
            rows.append({
                "report": report.slug, "jurisdiction": jurisdiction_label(report), "year": report.year,
                "indicator": v.indicator.slug, "indicator_name": v.indicator.name,
                "value": number_text(v.figure.value), "unit": v.figure.unit, "as_written": v.figure.text,
                "flags": ";".join(v.flags), "section": v.figure.section_id, "sentence": v.figure.sentence,
                "url": config.absolute(figure_link(v))})
    return _csv(rows, list(FIGURE_FIELDS))


def data_exports(renderer: PageRenderer, data: SiteData, analysis: Analysis) -> Iterator[Page]:
    """The exports, each made again only when what it holds changed (an edit of a report's text that
    leaves its figures and structure check alone does not: 0.8 s at 10,000 reports)."""
    reports = tuple(r.face for r in data.reports)
    for path, make in (("data/reports.csv", reports_csv), ("data/reports.json", reports_json),
                       ("data/figures.csv", figures_csv)):
        yield renderer.made(path, make, data.config, analysis, reports)
