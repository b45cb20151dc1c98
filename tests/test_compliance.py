"""The report-structure check, against a reading of the five samples' headings."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest

from reportsite.compliance import (
    FOUND,
    LATE,
    MENTIONED,
    MISSING,
    ON_TIME,
    UNKNOWN,
    check_report,
    check_reports,
    load_part_rules,
)
from reportsite.errors import ReportsiteError
from reportsite.model import Report, load_content

from .conftest import CONTENT_DIR

# From reading each report's top-level headings (and, where no heading names a part, its text):
# part -> (status, section ids that cover it).
EXPECTED = {
    # 一、加强政治引领… to 六、优化法律服务… are thematic sections of measures; no section on 不足和原因;
    # 第一责任人 only in the text of 一、(三是狠抓责任落实); plans under 七、2024年工作要点.
    "130502-2023": {"measures": (FOUND, ("s1", "s2", "s3", "s4", "s5", "s6")), "shortcomings": (MISSING, ()),
                    "leaders": (MENTIONED, ("s1",)), "plans": (FOUND, ("s7",))},
    # 一、法治政府建设措施及成效; 二、我市法治政府建设存在的主要问题; 三、2021年法治政府建设主要工作安排;
    # 第一责任人 in the text of (一)完善工作机制 (一是加强党对法治政府建设工作的领导).
    "210700-2020": {"measures": (FOUND, ("s1",)), "shortcomings": (FOUND, ("s2",)),
                    "leaders": (MENTIONED, ("s1-1",)), "plans": (FOUND, ("s3",))},
    # 一、主要举措和成效; 二、存在的不足和原因; 三、党政主要负责人履行…第一责任人职责; 四、2025年…主要安排.
    "370214-2024": {"measures": (FOUND, ("s1",)), "shortcomings": (FOUND, ("s2",)),
                    "leaders": (FOUND, ("s3",)), "plans": (FOUND, ("s4",))},
    # 一、主要举措和成效; 二、党政主要负责人履行…; 三、存在的不足和原因; 四、2025年…主要安排.
    "371329-2024": {"measures": (FOUND, ("s1",)), "shortcomings": (FOUND, ("s3",)),
                    "leaders": (FOUND, ("s2",)), "plans": (FOUND, ("s4",))},
    # 一、主要举措和成效; 二、存在的不足和原因; 三、2024年度…主要安排; 第一责任人 in the text of (一)坚持党的领导.
    "610114-2023": {"measures": (FOUND, ("s1",)), "shortcomings": (FOUND, ("s2",)),
                    "leaders": (MENTIONED, ("s1-1",)), "plans": (FOUND, ("s3",))},
}
# Published (front matter) against 1 April of the year after.
EXPECTED_DEADLINE = {"130502-2023": ON_TIME, "210700-2020": ON_TIME, "370214-2024": UNKNOWN,
                     "371329-2024": UNKNOWN, "610114-2023": ON_TIME}


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {r.slug: r for r in load_content(CONTENT_DIR).reports}


@pytest.fixture(scope="module")
def checks(reports: dict[str, Report]):
    return check_reports(tuple(reports.values()), load_part_rules(CONTENT_DIR))


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_matrix_matches_a_reading_of_the_headings(checks, slug: str) -> None:
    check = checks[slug]
    found = {f.part.key: (f.status, tuple(s.id for s in f.sections)) for f in check.findings}
    assert found == EXPECTED[slug]
    assert [f.part.number for f in check.findings] == [1, 2, 3, 4]  # the regulation's order
    assert check.deadline_status == EXPECTED_DEADLINE[slug]
    assert check.deadline == date(check.report.year + 1, 4, 1)


def test_issue_examples(checks) -> None:
    xiangdu = checks["130502-2023"]
    assert xiangdu.finding("plans").sections[0].title == "七、2024年工作要点"
    assert xiangdu.finding("shortcomings").status == MISSING and not xiangdu.complete
    jinzhou = checks["210700-2020"]
    assert jinzhou.finding("plans").sections[0].title == "三、2021年法治政府建设主要工作安排"
    assert jinzhou.finding("shortcomings").sections[0].title == "二、我市法治政府建设存在的主要问题"
    assert checks["370214-2024"].complete and checks["371329-2024"].complete


def test_plan_sections_include_their_subsections(checks, reports: dict[str, Report]) -> None:
    assert checks["371329-2024"].plan_section_ids(reports["371329-2024"]) == {"s4", "s4-1", "s4-2", "s4-3", "s4-4"}
    assert checks["130502-2023"].plan_section_ids(reports["130502-2023"]) == {"s7"}


def test_mention_in_plans_does_not_count(tmp_path: Path) -> None:
    """阎良 with its only 第一责任人 sentence moved from the measures into the plans."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    path = content / "reports" / "610114-2023.md"
    text = path.read_text(encoding="utf-8")
    sentence = "推动党政主要负责人切实履行好推进法治政府建设第一责任人职责,确保法治政府建设各项工作落地见效。"
    assert text.count("第一责任人") == 2 and sentence in text
    text = text.replace("认真履行法治政府建设第一责任人职责", "认真履行法治政府建设职责").replace(sentence, "")
    text = text.replace("**一是高质量服务保障政府决策。**", "**一是高质量服务保障政府决策。**" + sentence)
    path.write_text(text, encoding="utf-8")
    report = next(r for r in load_content(content).reports if r.slug == "610114-2023")
    assert check_report(report, load_part_rules(content)).finding("leaders").status == MISSING


@pytest.mark.parametrize(("published", "status"), [
    (date(2024, 4, 1), ON_TIME), (date(2024, 4, 2), LATE), (date(2023, 12, 30), ON_TIME), (None, UNKNOWN)])
def test_deadline(reports: dict[str, Report], published: date | None, status: str) -> None:
    report = dataclasses.replace(reports["610114-2023"], published=published)
    assert check_report(report, load_part_rules(CONTENT_DIR)).deadline_status == status


def test_editor_can_change_the_deadline(tmp_path: Path, reports: dict[str, Report]) -> None:
    rules_dir = tmp_path
    text = (CONTENT_DIR / "required_parts.yml").read_text(encoding="utf-8")
    (rules_dir / "required_parts.yml").write_text(text.replace("month: 4", "month: 1"), encoding="utf-8")
    report = reports["610114-2023"]  # published 2024-01-20
    assert check_report(report, load_part_rules(rules_dir)).deadline_status == LATE


def test_bad_rules_say_where(tmp_path: Path) -> None:
    text = (CONTENT_DIR / "required_parts.yml").read_text(encoding="utf-8")
    (tmp_path / "required_parts.yml").write_text(text.replace("'差距'", "'差距('"), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.strip() == "- key: shortcomings")
    with pytest.raises(ReportsiteError) as error:
        load_part_rules(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'required_parts.yml'}:{line}: pattern '差距(' of part "
                                       "shortcomings is not a valid regular expression")


def test_compliance_page_and_badges(built_site: Path, checks) -> None:
    page = (built_site / "compliance" / "index.html").read_text(encoding="utf-8")
    for slug, check in checks.items():
        row = page[page.index(f'<tr id="r-{slug}">'):]
        row = row[:row.index("</tr>")]
        for finding in check.findings:
            if finding.status == MISSING:
                assert "✗ 缺" in row
            else:  # a link to the section that covers the part (the build fails on a broken anchor)
                assert f'href="../reports/{slug}/#{finding.anchor}"' in row
        report_page = (built_site / "reports" / slug / "index.html").read_text(encoding="utf-8")
        assert f'href="../../compliance/#r-{slug}"' in report_page
        assert f"报告结构 {check.found}/4" in report_page
    assert page.count('class="deadline deadline-on_time"') == 3
    assert page.count('class="deadline deadline-unknown"') == 2
    assert "style=" not in page
