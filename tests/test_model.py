"""Content model: loading content/, section ids, validation with path:line, duplicates, slugs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reportsite.model import content_files, load_content, load_report, parse_sections
from reportsite.textio import _CONTROLS

from .conftest import CONTENT_DIR, ROOT


@pytest.fixture(scope="module")
def content():
    return load_content(CONTENT_DIR)


def test_committed_content_loads_without_problems(content):
    assert not content.problems
    assert sorted(r.slug for r in content.reports) == ["130502-2023", "210700-2020", "370214-2024",
                                                      "371329-2024", "610114-2023"]


def test_section_ids_follow_the_reports_numbering(content):
    report = next(r for r in content.reports if r.slug == "370214-2024")
    ids = [(s.id, s.title[:6]) for s in report.sections]
    assert ids[0] == ("preamble", "")
    assert ("s1", "一、2024") in ids and ("s1-1", "(一)提升政") in ids and ("s4", "四、2025") in ids
    assert len({s.id for s in report.sections}) == len(report.sections)
    assert all(s.id.isascii() and "_" not in s.id for s in report.sections)
    sub = report.section("s1-2")
    assert sub.parent == "s1" and [s.id for s in report.heading_path(sub)] == ["s1", "s1-2"]


def test_ids_do_not_change_when_heading_text_is_edited():
    body = "## 一、旧的标题\n\n正文。\n\n### (一)小节\n\n内容。\n"
    edited = body.replace("旧的标题", "新的标题文字")
    assert [s.id for s in parse_sections(body, 1)[0]] == [s.id for s in parse_sections(edited, 1)[0]] == ["s1", "s1-1"]


def test_unnumbered_and_explicit_ids():
    sections, problems = parse_sections("## 工作总结\n\n甲。\n\n## 结语 {#jieyu}\n\n乙。\n", 5)
    assert [s.id for s in sections] == ["h-gong-zuo-zong-jie", "jieyu"]
    assert sections[1].title == "结语" and sections[0].line == 5 and not problems


FRONT = """---
title: 测试报告
jurisdiction:
  name: 襄都区
  level: district
year: 2023
---

## 一、标题

正文。
"""


def _problems(text: str) -> list[str]:
    report, problems = load_report(Path("content/reports/x.md"), text)
    assert report is None
    return [str(p) for p in problems]


def test_hand_written_jurisdiction_is_resolved_with_the_table():
    report, problems = load_report(Path("x.md"), FRONT)
    assert not problems
    assert (report.jurisdiction.adcode, report.jurisdiction.city, report.slug) == ("130502", "邢台市", "130502-2023")


@pytest.mark.parametrize(("edit", "expected"), [
    (("year: 2023", "year: '二〇二三'"), "x.md:6: `year` is '二〇二三', not a whole number"),
    (("year: 2023", "year: 1899"), "x.md:6: `year` 1899 is out of range"),
    (("  level: district", "  level: galaxy"), "x.md:3: `jurisdiction.level` is 'galaxy'"),
    (("title: 测试报告\n", ""), "x.md:2: `title` is missing"),
    (("year: 2023", "year: 2023\nslug: ../../etc"), "x.md:7: `slug` '../../etc' is not lower-case"),
    (("year: 2023", "year: 2023\nslug: /abs/path"), "x.md:7: `slug` '/abs/path' is not lower-case"),
    (("year: 2023", "year: 2023\npublished: 2024-13-45"), "x.md:7: a value cannot be read (month must be in 1..12)"),
    (("year: 2023", "year: 2023\npublished: soon"), "x.md:7: date 'soon' is not YYYY-MM-DD"),
    (("  name: 襄都区", "\tname: 襄都区"), "x.md:4: front matter is not valid YAML"),
    (("year: 2023", "a: &a [x, x]\nb: &b [*a, *a]\nyear: 2023"), "YAML aliases (*name) are not allowed"),
    (("---\ntitle", "title"), "x.md:1: no front matter"),
])
def test_bad_front_matter_gives_path_line_message_and_hint(edit, expected):
    problems = _problems(FRONT.replace(*edit, 1))
    assert len(problems) == 1
    assert expected in problems[0] and "; " in problems[0]


def test_duplicate_slug_and_edition_are_reported(content_copy):
    reports = content_copy / "reports"
    original = (reports / "130502-2023.md").read_text(encoding="utf-8")
    (reports / "copy.md").write_text(original, encoding="utf-8")
    (reports / "copy2.md").write_text(original.replace("year: 2023", "year: 2023\nslug: other-slug"), encoding="utf-8")
    loaded = load_content(content_copy)
    messages = [str(p) for p in loaded.problems]
    assert any("copy.md:1: slug '130502-2023' is already used" in m for m in messages)
    assert any("copy2.md:1: 襄都区 2023 is also reported by" in m for m in messages)
    assert [p.severity for p in loaded.problems if "also reported" in str(p)] == ["warning"]
    assert len(loaded.reports) == 6  # a second text for the same year is kept, with a warning


def test_aliases_keep_old_anchors_valid(content_copy):
    path = content_copy / "reports" / "130502-2023.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("year: 2023", "year: 2023\naliases:\n  s9: s7\n", 1), encoding="utf-8")
    report = next(r for r in load_content(content_copy).reports if r.slug == "130502-2023")
    assert report.aliases == {"s9": "s7"}
    path.write_text(text.replace("year: 2023", "year: 2023\naliases:\n  s9: s99\n", 1), encoding="utf-8")
    assert any("no section has the id #s99" in str(p) for p in load_content(content_copy).problems)


def test_check_command_exit_codes(content_copy):
    ok = subprocess.run([sys.executable, str(ROOT / "build.py"), "check", "--content", str(content_copy)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "checked 5 report(s)" in ok.stdout
    bad = content_copy / "reports" / "130502-2023.md"
    bad.write_text(bad.read_text(encoding="utf-8").replace("year: 2023", "year: soon"), encoding="utf-8")
    result = subprocess.run([sys.executable, str(ROOT / "build.py"), "check", "--content", str(content_copy)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{bad}:9: `year` is 'soon', not a whole number; " in result.stderr


def test_repeated_numbering_gets_distinct_ids_that_never_clash():
    body = "## 一、甲\n\n### (一)乙\n\n### (二)丙\n\n## 一、丁\n\n### (一)戊\n\n## 附件\n\n### (一)己\n"
    ids = [s.id for s in parse_sections(body, 1)[0]]
    assert ids == ["s1", "s1-1", "s1-2", "s1-x2", "s1-x2-1", "h-fu-jian", "h-fu-jian-1"]


YAMLISH = st.sampled_from(list("---\n :-[]{}&*!|>'\"#%@`,?年title year jurisdiction name level 2023 \t\\"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=YAMLISH | st.characters(), max_size=300))
@example("\ud800")  # a lone surrogate once crashed libyaml
def test_any_front_matter_loads_or_gives_located_problems(text):
    report, problems = load_report(Path("p.md"), "---\n" + text + "\n---\n\n## 一、标题\n\n正文。\n")
    assert report is not None or problems
    for problem in problems:
        assert problem.path == "p.md" and problem.line >= 1 and problem.message and problem.hint


@pytest.mark.parametrize("code", sorted(_CONTROLS))
def test_every_control_character_is_blanked_and_counted(code):
    # load_report looks for control characters before blanking them: the look must see each one.
    path = CONTENT_DIR / "reports" / "130502-2023.md"
    text = path.read_text(encoding="utf-8")
    at = text.index("\n## ") + 1  # in the body, just before the first heading's line
    with_control = text[:at] + "甲" + chr(code) + "乙\n\n" + text[at:]
    with_space = text[:at] + "甲 乙\n\n" + text[at:]
    report, warnings = load_report(path, with_control)
    assert report == load_report(path, with_space)[0]
    assert [w.message for w in warnings] == ["1 control character(s) replaced by spaces"]
    assert load_report(path, text)[1] == []


def test_content_files_are_the_visible_markdown_files_in_the_order_of_their_paths(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    for name in ["a/1.md", "a-b/2.md", "a.b/3.md", ".hidden/4.md", ".5.md", "6.md", "7.MD", "a/.8.md",
                 "x.md/9.md", "b/c/10.md", "notes.txt"]:
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_text("x", encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "11.md").write_text("x", encoding="utf-8")
    (reports / "linked").symlink_to(tmp_path / "elsewhere")  # a folder linked to: not entered, as by rglob
    (reports / "link.md").symlink_to(reports / "6.md")
    (reports / "broken.md").symlink_to(reports / "missing.md")
    # the definition: Path.rglob, without hidden files and folders, sorted as Paths
    expected = sorted(p for p in reports.rglob("*.md")
                      if p.is_file() and not any(part.startswith(".") for part in p.relative_to(reports).parts))
    assert content_files(tmp_path) == expected
    assert [p.relative_to(reports).as_posix() for p in expected] == [
        "6.md", "a/1.md", "a-b/2.md", "a.b/3.md", "b/c/10.md", "link.md", "x.md/9.md"]
