"""Key figures and indicator values, checked against a hand reading of the five sample reports."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportsite.errors import ReportsiteError
from reportsite.figures import (
    Analysis,
    extract_figures,
    load_analysis,
    load_indicators,
    number_text,
    parse_number,
    sentence_figures,
)
from reportsite.model import Report, Section, load_content

from .conftest import CONTENT_DIR, ROOT

# Every indicator value the extractor gives for the five samples, each confirmed by reading the report
# (see docs/figures.md for the precision measurement): report, indicator, value as written, flags.
CONFIRMED = {
    ("130502-2023", "xingzheng-fuyi", "42件", ()),  # 2023年办理行政复议案件42件
    ("130502-2023", "chuting-yingsu-lv", "100%", ()),  # 2023年行政机关负责人出庭应诉率100%
    ("130502-2023", "falv-yuanzhu", "421件", ()),  # 2023年共办理法律援助案件421件
    ("130502-2023", "jiufen-tiaojie", "728件", ()),  # 2023年全区人民调解组织共受理案件728件,全部调解成功
    ("130502-2023", "wangban-shixiang", "982项", ()),  # 982项政务服务事项开通网上办理
    ("130502-2023", "wangban-lv", "100%", ()),  # 网办率达100%
    ("130502-2023", "pufa-huodong", "23场次", ()),  # 2023年开展普法活动23场次
    ("130502-2023", "guifan-wenjian-baobei", "2件", ()),  # 2023年向市政府报备行政规范性文件2件
    ("130502-2023", "guifan-wenjian-feizhi", "1件", ()),  # (规范性文件清理中)已废止1件
    ("130502-2023", "zhongda-juece", "2件", ()),  # 对本年度的2件重大行政决策在区政府网站进行公开
    ("130502-2023", "falv-mingbairen", "187人", ()),  # 截至目前,全区共培养法律明白人187人
    ("130502-2023", "anjuan-pingcha", "3次", ()),  # 开展行政执法案卷评查活动3次 (stated twice)
    ("210700-2020", "xingzheng-fuyi", "56件", ("市本级",)),  # 市本级共受理行政复议案件56件
    ("210700-2020", "jiufen-tiaojie", "11601件", ()),  # 全市共调解各类纠纷11601件
    ("210700-2020", "jiufen-huajie", "11594件", ()),  # 调解成功11594件
    ("210700-2020", "jiufen-huajie-lv", "99.93%", ()),  # 成功率99.93%
    ("210700-2020", "pufa-huodong", "1000余场次", ()),  # 全年共开展普法宣传活动1000余场次
    ("210700-2020", "guifan-wenjian-shenhe", "17件", ()),  # 对…等17件市政府规范性文件进行了合法性审核
    ("370214-2024", "xingzheng-fuyi", "666件", ()),  # 受理行政复议案件666件
    ("370214-2024", "wangban-shixiang", "1521项", ()),  # 1521项政务服务事项可一站查询、网上办理
    ("370214-2024", "guifan-wenjian-baobei", "2件", ()),  # 制定并报备区政府及部门行政规范性文件2件
    ("370214-2024", "guifan-wenjian-feizhi", "4件", ()),  # (规范性文件评估清理,)其中废止4件
    ("370214-2024", "zhongda-juece", "13件", ("多级合计",)),  # 区街两级…指导出台重大行政决策13件
    ("371329-2024", "falv-yuanzhu", "2000余件", ()),  # 今年以来,累计办理各类法律援助案件2000余件
    ("371329-2024", "jiufen-huajie", "2700余件", ()),  # 今年以来,共调处化解各类矛盾纠纷2700余件
    ("371329-2024", "pufa-huodong", "200余场", ()),  # (“八五”普法规划)开展系列主题活动200余场
    ("371329-2024", "guifan-wenjian-feizhi", "2件", ()),  # 县政府规范性文件失效6件,废止2件
    ("371329-2024", "zhongda-juece", "20件", ("多级合计",)),  # 县镇两级政府20件重大行政决策
    ("610114-2023", "chuting-yingsu-lv", "100%", ()),  # 党政机关负责人出庭应诉制度,出庭应诉率100%
    ("610114-2023", "jiufen-tiaojie", "1922件", ()),  # 共排查矛盾纠纷1922件
    ("610114-2023", "jiufen-huajie", "1920件", ()),  # 成功化解1920件
    ("610114-2023", "jiufen-huajie-lv", "99.89%", ()),  # 化解率为99.89%
    ("610114-2023", "wangban-shixiang", "1357项", ()),  # …等1357项政务服务事项已实现全程网办
    ("610114-2023", "wangban-lv", "78.29%", ()),  # (全程网办,)占比78.29%
    ("610114-2023", "pufa-huodong", "100余场次", ()),  # 等普法活动100余场次
    ("610114-2023", "falv-mingbairen", "528人", ()),  # 培养“法律明白人”528人
}


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {r.slug: r for r in load_content(CONTENT_DIR).reports}


@pytest.fixture(scope="module")
def analysis(reports: dict[str, Report]) -> Analysis:
    return load_analysis(tuple(reports.values()), CONTENT_DIR)


def values_of(analysis: Analysis, slug: str, indicator: str):
    return [v for v in analysis.values[slug] if v.indicator.slug == indicator]


def only_value(analysis: Analysis, slug: str, indicator: str):
    found = values_of(analysis, slug, indicator)
    assert len(found) == 1, [v.figure.text for v in found]
    return found[0]


# ------------------------------------------------------------------------------------------------------
# The figures named in the issue


@pytest.mark.parametrize(("slug", "indicator", "value", "unit", "words"), [
    ("130502-2023", "xingzheng-fuyi", 42, "件", "办理行政复议案件42件"),
    ("130502-2023", "falv-yuanzhu", 421, "件", "法律援助案件421件"),
    ("370214-2024", "xingzheng-fuyi", 666, "件", "受理行政复议案件666件"),
    ("610114-2023", "jiufen-tiaojie", 1922, "件", "排查矛盾纠纷1922件"),
    ("610114-2023", "jiufen-huajie", 1920, "件", "成功化解1920件"),
    ("610114-2023", "jiufen-huajie-lv", 99.89, "%", "化解率为99.89%"),
    ("210700-2020", "jiufen-huajie-lv", 99.93, "%", "成功率99.93%"),
    ("371329-2024", "falv-yuanzhu", 2000, "件", "法律援助案件2000余件"),
])
def test_issue_figures(analysis: Analysis, reports: dict[str, Report], slug: str, indicator: str, value: float,
                       unit: str, words: str) -> None:
    v = only_value(analysis, slug, indicator)
    assert (v.figure.value, v.figure.unit) == (value, unit)
    assert words in v.figure.sentence
    assert v.flags == ()
    # Provenance: the sentence is in the section the value points to.
    section = reports[slug].section(v.figure.section_id)
    assert section is not None and v.figure.sentence in section.text


def test_city_level_figure_is_flagged_not_compared(analysis: Analysis) -> None:
    v = only_value(analysis, "210700-2020", "xingzheng-fuyi")
    assert (v.figure.text, v.figure.value) == ("56件", 56)
    assert v.flags == ("市本级",)
    assert not v.charted
    assert v.figure.sentence.startswith("市本级共受理行政复议案件56件")


def test_approximate_values_keep_their_wording(analysis: Analysis) -> None:
    v = only_value(analysis, "371329-2024", "falv-yuanzhu")
    assert v.figure.text == "2000余件" and v.figure.approx
    # 今年以来,累计… is this year's total, not a several-year total.
    assert "累计" in v.figure.sentence and "累计" not in v.flags


def test_every_value_shown_is_confirmed(analysis: Analysis) -> None:
    """Precision: the values on the site are exactly those a reader confirmed (docs/figures.md)."""
    shown = {(slug, v.indicator.slug, v.figure.text, v.flags) for slug, vs in analysis.values.items() for v in vs}
    assert shown - CONFIRMED == set(), "new values: read them in the report and add them to CONFIRMED"
    assert CONFIRMED - shown == set(), "values no longer found"


def test_breakdowns_and_repeats_are_not_extra_values(analysis: Analysis) -> None:
    # 城阳: 重大行政决策13件,其中区政府…5件、街道…8件 -> only the total.
    assert [v.figure.text for v in values_of(analysis, "370214-2024", "zhongda-juece")] == ["13件"]
    # 襄都 states 案卷评查活动3次 twice: one value, the repeat kept as a second source.
    v = only_value(analysis, "130502-2023", "anjuan-pingcha")
    assert len(v.also) == 1 and v.also[0].value == 3


def test_ambiguous_wording_is_left_out(analysis: Analysis) -> None:
    # 阎良: 超期或废止1件 mixes two things; 襄都: “法治进校园”…法治宣传活动200余场次 is one kind of activity.
    assert values_of(analysis, "610114-2023", "guifan-wenjian-feizhi") == []
    assert [v.figure.text for v in values_of(analysis, "130502-2023", "pufa-huodong")] == ["23场次"]
    # 阎良: 每个村(社区)均达到5名“法律明白人” is a per-village count, not the total.
    assert [v.figure.text for v in values_of(analysis, "610114-2023", "falv-mingbairen")] == ["528人"]


# ------------------------------------------------------------------------------------------------------
# Reading numbers from real sentences


def sentence_with(reports: dict[str, Report], slug: str, words: str) -> str:
    text = "\n".join(s.text for s in reports[slug].sections)
    return next(s for s in re.split(r"(?<=[。；;])|\n", text) if words in s)


@pytest.mark.parametrize(("slug", "words", "expected"), [
    ("370214-2024", "3.96万户", [("3.96万户", 39600, "户")]),
    ("370214-2024", "15.35万件次", [("10.2万个", 102000, "个"), ("15.35万件次", 153500, "件次")]),
    ("370214-2024", "8亿余元", [("666件", 666, "件"), ("594件", 594, "件"), ("8亿余元", 8, "亿元")]),
    ("130502-2023", "26万余元", [("26万余元", 26, "万元")]),
    ("130502-2023", "十余个", [("十余个", 10, "个")]),
    ("371329-2024", "6个百分点", [("10.1%", 10.1, "%"), ("6个百分点", 6, "个百分点"), ("97.62%", 97.62, "%")]),
    # 一站式, 一件事, 第三批 and 5·15 are words, not counts.
    ("210700-2020", "5·15", []),
    ("610114-2023", "第三批西安市", []),
])
def test_numbers_in_sentences(reports: dict[str, Report], slug: str, words: str, expected: list) -> None:
    sentence = sentence_with(reports, slug, words)
    found = [(m.group(), value, unit) for m, unit, value in sentence_figures(sentence)]
    assert found == expected


def test_lone_chinese_digit_is_not_a_count(reports: dict[str, Report]) -> None:
    sentence = sentence_with(reports, "130502-2023", "三个办法、四类文本、五个清单")
    assert [m.group() for m, _, _ in sentence_figures(sentence)] == []


def test_figures_keep_sentence_and_section(reports: dict[str, Report]) -> None:
    figures = extract_figures(reports["610114-2023"])
    ids = [f.id for f in figures]
    assert len(ids) == len(set(ids))
    rate = next(f for f in figures if f.text == "78.29%")
    assert rate.section_id == "s1-2" and rate.before == "占比" and "全程网办" in rate.sentence


def figures_sentence_by_sentence(report: Report) -> list[tuple]:
    """The definition extract_figures keeps (it skips sentences that cannot hold a number): every sentence's
    numbers, each with the words of its clause (a clause ends at ，,：:；;。！？!?)."""
    found = []
    for section in report.sections:
        count = 0
        for sentence in (m.group().strip() for m in re.finditer(r"[^。！？；;!?\n]+[。！？；;!?]?", section.text)):
            previous_end = 0
            for m, unit, value in sentence_figures(sentence):
                count += 1
                clause_start = max(sentence.rfind(c, 0, m.start()) for c in "，,：:；;。！？!?") + 1
                ends = [i for i in (sentence.find(c, m.end()) for c in "，,：:；;。！？!?") if i >= 0]
                after = sentence[m.end():min(ends) if ends else len(sentence)]
                found.append((f"{section.id}-n{count}", section.id, sentence, m.group(), value, unit,
                              sentence[max(clause_start, previous_end):m.start()].lstrip("、和及与"), after,
                              sentence[clause_start:m.start()], sentence[:m.start()],
                              sentence[clause_start:m.start()] + m.group() + after))
                previous_end = m.end()
    return found


def as_read(figures) -> list[tuple]:
    return [(f.id, f.section_id, f.sentence, f.text, f.value, f.unit, f.before, f.after, f.clause_before,
             f.sentence_before, f.clause) for f in figures]


def test_figures_are_every_number_of_every_sentence(reports: dict[str, Report]) -> None:
    for report in reports.values():
        assert as_read(extract_figures(report)) == figures_sentence_by_sentence(report)


NUMBERS_AND_PUNCTUATION = ("零一二两十百万亿余多以上左右件次人项个场%％元0123456789.第·其中率为达"
                           ",，、和：:；;。！？!? \n\t　")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=NUMBERS_AND_PUNCTUATION, max_size=80))
def test_any_text_gives_the_figures_read_sentence_by_sentence(reports: dict[str, Report], body: str) -> None:
    report = dataclasses.replace(reports["130502-2023"], sections=(Section("s1", 2, "一、标题", body, 9, None),))
    assert as_read(extract_figures(report)) == figures_sentence_by_sentence(report)


@given(st.text(alphabet="零〇一二两三四五六七八九十百千万亿余多件次人项个%,，。0123456789.第·", max_size=30))
def test_any_numeral_text_is_read_or_skipped_never_fails(text: str) -> None:
    for m, unit, value in sentence_figures(text):
        assert value >= 0 and unit and m.group() in text


def test_a_money_unit_without_a_number_is_not_a_figure() -> None:
    assert [m.group() for m, _, _ in sentence_figures("单位万元GDP能耗下降,亿元以上项目3个")] == ["3个"]


def test_chinese_numerals() -> None:
    assert [parse_number(n, None) for n in ("十", "十二", "两千", "一百零五", "三", "千", "万")] == [
        10, 12, 2000, 105, None, None, None]
    assert parse_number("3.96", "万") == 39600


def test_a_build_imports_the_numeral_and_pinyin_libraries_only_when_a_report_needs_them() -> None:
    """cn2an (75 ms to import) and pypinyin (100 ms) are not imported with the build's code: a rebuild whose
    edited report has no Chinese numeral in a figure, and no name without a code, does not pay for them."""
    probe = ("import sys; import reportsite.cli, reportsite.pipeline; "
             "print(sorted(m for m in ('cn2an', 'pypinyin') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_number_text() -> None:
    assert [number_text(v) for v in (39600.0, 99.89, 1234567.0, 0.5)] == ["39600", "99.89", "1234567", "0.5"]


# ------------------------------------------------------------------------------------------------------
# Plans and targets are not achievements (real sentences moved or reworded in a copy of the content)


def copy_content(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def edited_analysis(tmp_path: Path, slug: str, edit) -> Analysis:
    content = copy_content(tmp_path)
    path = content / "reports" / f"{slug}.md"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return load_analysis(load_content(content).reports, content)


LEGAL_AID = ("2023年共办理法律援助案件421件,其中通知辩护263件,申请法律援助46件,法律帮助112件,"
             "群众满意率达100%,超额完成年度任务。")


def test_figure_in_next_year_section_is_not_an_achievement(tmp_path: Path) -> None:
    def move_to_plans(text: str) -> str:
        assert LEGAL_AID in text
        plans = "## 七、2024年工作要点\n"
        return text.replace(LEGAL_AID, "").replace(plans, plans + "\n" + LEGAL_AID + "\n")

    moved = edited_analysis(tmp_path, "130502-2023", move_to_plans)
    assert values_of(moved, "130502-2023", "falv-yuanzhu") == []
    # The same sentence is still read as a figure, only not as an achievement.
    report = next(r for r in load_content(tmp_path / "content").reports if r.slug == "130502-2023")
    figures = extract_figures(report, moved.compliance["130502-2023"].plan_section_ids(report))
    plan_figures = [f for f in figures if f.text == "421件"]
    assert len(plan_figures) == 1 and plan_figures[0].in_plans and plan_figures[0].section_id == "s7"


def test_target_is_not_an_achievement(tmp_path: Path) -> None:
    target = edited_analysis(tmp_path, "130502-2023",
                             lambda t: t.replace("2023年共办理法律援助案件421件", "力争全年办理法律援助案件500件"))
    assert values_of(target, "130502-2023", "falv-yuanzhu") == []


def test_change_is_not_a_rate(tmp_path: Path) -> None:
    changed = edited_analysis(tmp_path, "130502-2023",
                              lambda t: t.replace("行政机关负责人出庭应诉率100%", "行政机关负责人出庭应诉率同比提高5%"))
    assert values_of(changed, "130502-2023", "chuting-yingsu-lv") == []


def test_other_year_and_multi_year_totals_are_flagged(tmp_path: Path) -> None:
    other = edited_analysis(tmp_path, "130502-2023",
                            lambda t: t.replace("2023年办理行政复议案件42件", "2022年办理行政复议案件42件"))
    assert only_value(other, "130502-2023", "xingzheng-fuyi").flags == ("其他年度",)
    shutil.rmtree(tmp_path / "content")
    total = edited_analysis(tmp_path, "130502-2023",
                            lambda t: t.replace("2023年共办理法律援助案件421件", "近五年累计办理法律援助案件421件"))
    v = only_value(total, "130502-2023", "falv-yuanzhu")
    assert v.flags == ("累计",) and not v.charted


def test_different_values_for_one_indicator_are_flagged(tmp_path: Path) -> None:
    twice = edited_analysis(tmp_path, "610114-2023",
                            lambda t: t.replace("出庭应诉率100%", "出庭应诉率100%。行政机关负责人出庭应诉率95%"))
    found = values_of(twice, "610114-2023", "chuting-yingsu-lv")
    assert sorted(v.figure.text for v in found) == ["100%", "95%"]
    assert all("数值不一" in v.flags and not v.charted for v in found)


# ------------------------------------------------------------------------------------------------------
# The editable rules


def test_bad_indicator_rules_say_where(tmp_path: Path) -> None:
    content = copy_content(tmp_path)
    rules = content / "indicators.yml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("before: '法律援助案件'", "before: '法律援助(案件'"), encoding="utf-8")
    with pytest.raises(ReportsiteError) as error:
        load_indicators(content)
    message = str(error.value)
    line = text.splitlines().index("  - slug: falv-yuanzhu") + 1
    assert message.startswith(f"{rules}:{line}: pattern '法律援助(案件' is not a valid regular expression")
    rules.write_text(text.replace("units: [件]", "units: [宗]", 1), encoding="utf-8")
    with pytest.raises(ReportsiteError, match="unit '宗' is not read from reports"):
        load_indicators(content)


def test_an_editor_can_add_an_indicator(tmp_path: Path) -> None:
    content = copy_content(tmp_path)
    with (content / "indicators.yml").open("a", encoding="utf-8") as rules:
        rules.write("\n  - slug: xingzheng-fuyi-jiean\n    name: 行政复议结案数\n    units: [件]\n"
                    "    match:\n      - before: '^(结案|审结)'\n        sentence: '行政复议'\n")
    extended = load_analysis(load_content(content).reports, content)
    assert [v.figure.text for v in values_of(extended, "370214-2024", "xingzheng-fuyi-jiean")] == ["594件"]
    assert [(v.figure.text, v.flags) for v in values_of(extended, "210700-2020", "xingzheng-fuyi-jiean")] == [
        ("48件", ("市本级",))]


# ------------------------------------------------------------------------------------------------------
# The built site


def test_indicator_pages_link_every_value_to_its_sentence(built_site: Path, analysis: Analysis) -> None:
    index = (built_site / "indicators" / "index.html").read_text(encoding="utf-8")
    for indicator in analysis.rules.indicators:
        assert f'href="{indicator.slug}/"' in index
        page = (built_site / "indicators" / indicator.slug / "index.html").read_text(encoding="utf-8")
        for v in analysis.by_indicator(indicator.slug):
            link = f"../../reports/{v.report.slug}/?fig={v.figure.id}#{v.figure.section_id}"
            assert link in page
            report_page = (built_site / "reports" / v.report.slug / "index.html").read_text(encoding="utf-8")
            assert f'data-fig="{v.figure.id}" data-sec="{v.figure.section_id}"' in report_page
            assert f'id="{v.figure.section_id}"' in report_page
        assert "style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)


def test_chart_is_accessible_and_leaves_out_flagged_values(built_site: Path) -> None:
    page = (built_site / "indicators" / "xingzheng-fuyi" / "index.html").read_text(encoding="utf-8")
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "襄都区 2023" in svg and "城阳区 2024" in svg and "锦州市 2020" not in svg
    # 666 is the longest bar (the full plot width, 340); 42 is to scale.
    widths = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'<title>(\S+) \d{4}年度：[^<]*</title>\s*<text[^>]*>[^<]*</text>\s*<rect[^>]*width="([\d.]+)"', svg)}
    assert widths == {"城阳区": 340.0, "襄都区": round(340 * 42 / 666, 1)}
    # The table is the fallback and lists the flagged value too.
    table = page[page.index('<table class="indicator-table"'):]
    assert "56件" in table and "市本级" in table


def test_report_page_has_key_figures_and_badge(built_site: Path) -> None:
    page = (built_site / "reports" / "130502-2023" / "index.html").read_text(encoding="utf-8")
    assert "关键数据" in page and 'href="../../compliance/#r-130502-2023"' in page
    # 襄都 has no 不足和原因 section and names 第一责任人 only in its text (see test_compliance.py).
    assert "报告结构 2/4" in page and "不足和原因：缺；第一责任人职责：仅正文提及" in page
    assert '<script type="module" src="../../assets/figures.js"></script>' in page
    nav = page[page.index('<nav class="site-nav"'):page.index("</nav>")]
    assert "指标对比" in nav and "合规检查" in nav


def test_exports(built_site: Path, analysis: Analysis) -> None:
    raw = (built_site / "data" / "figures.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the file as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == len(CONFIRMED)
    row = next(r for r in rows if r["report"] == "210700-2020" and r["indicator"] == "xingzheng-fuyi")
    assert (row["value"], row["unit"], row["as_written"], row["flags"]) == ("56", "件", "56件", "市本级")
    assert row["sentence"].startswith("市本级共受理行政复议案件56件")
    assert row["url"].endswith("/reports/210700-2020/?fig=s1-8-n1#s1-8")
    reports_csv = list(csv.DictReader(io.StringIO((built_site / "data" / "reports.csv").read_text("utf-8-sig"))))
    reports_json = json.loads((built_site / "data" / "reports.json").read_text(encoding="utf-8"))
    assert len(reports_csv) == len(reports_json) == 5
    xiangdu = next(r for r in reports_json if r["slug"] == "130502-2023")
    assert xiangdu["published"] == "2024-02-28" and xiangdu["deadline_status"] == "on_time"
    assert xiangdu["part_shortcomings"] == "missing"
    about = (built_site / "about" / "index.html").read_text(encoding="utf-8")
    for name in ("reports.csv", "reports.json", "figures.csv"):
        assert f'href="../data/{name}"' in about


# ------------------------------------------------------------------------------------------------------
# In the browser: highlight and sorting


@pytest.mark.browser
def test_link_opens_report_at_highlighted_sentence(browser, site_url: str, analysis: Analysis) -> None:
    v = only_value(analysis, "610114-2023", "jiufen-huajie-lv")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site_url + "indicators/jiufen-huajie-lv/")
    page.click(f'table.indicator-table a[href*="fig={v.figure.id}"]')
    page.wait_for_selector("mark.fig-hl")
    marked = "".join(page.eval_on_selector_all("mark.fig-hl", "els => els.map(e => e.textContent)"))
    assert marked == v.figure.sentence
    # Focus moves once the page has loaded (polled here: the site's CSP forbids wait_for_function's eval).
    for _ in range(50):
        if page.evaluate("document.activeElement && document.activeElement.id") == "fig-target":
            break
        page.wait_for_timeout(100)
    assert page.evaluate("document.activeElement.id") == "fig-target"
    top = page.evaluate("document.getElementById('fig-target').getBoundingClientRect().top")
    assert 0 <= top < page.viewport_size["height"]
    # A panel link highlights another sentence in place and removes the old marks.
    other = only_value(analysis, "610114-2023", "falv-mingbairen")
    page.click(f'.key-figures a.kf-value[href^="?fig={other.figure.id}"]')
    marked = "".join(page.eval_on_selector_all("mark.fig-hl", "els => els.map(e => e.textContent)"))
    assert marked == other.figure.sentence and f"fig={other.figure.id}" in page.url
    assert errors == []
    page.close()


@pytest.mark.browser
def test_indicator_table_sorts(browser, site_url: str) -> None:
    page = browser.new_page()
    page.goto(site_url + "indicators/xingzheng-fuyi/")
    sources = "table.sources-table"
    page.click(f"{sources} thead th:nth-child(3) button")
    values = page.eval_on_selector_all(f"{sources} tbody td.num", "els => els.map(e => e.textContent.trim())")
    assert [v.split()[0] for v in values] == ["42件", "56件", "666件"]
    page.click(f"{sources} thead th:nth-child(3) button")
    values = page.eval_on_selector_all(f"{sources} tbody td.num", "els => els.map(e => e.textContent.trim())")
    assert [v.split()[0] for v in values] == ["666件", "56件", "42件"]
    assert page.get_attribute(f"{sources} thead th:nth-child(3)", "aria-sort") == "descending"
    page.close()


def test_chart_shows_the_largest_values_only_and_says_how_many_there_are(content_copy: Path, tmp_path: Path) -> None:
    from reportsite.pipeline import BuildOptions, build

    with (content_copy / "site.yml").open("a", encoding="utf-8") as f:
        f.write("chart_bars: 1\n")
    build(BuildOptions(content_copy, tmp_path / "site", templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    page = (tmp_path / "site" / "indicators" / "xingzheng-fuyi" / "index.html").read_text(encoding="utf-8")
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert "城阳区 2024" in svg and "襄都区 2023" not in svg  # 666 before 42
    assert "中最大的 1 个，共 2 个" in page
    assert "襄都区" in page[page.index('<table class="indicator-table"'):]  # the table still lists every value
