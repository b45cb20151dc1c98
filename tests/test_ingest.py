"""Import of the five real raw reports: metadata, headings, lossless body, idempotency, encodings."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reportsite.errors import ReportsiteError
from reportsite.ingest import import_file, import_text, output_name, render_content_file
from reportsite.markup import strip_markup
from reportsite.textio import blank_control_characters, decode_report

from .conftest import CONTENT_DIR, ROOT

EXPECTED = {
    "000": dict(name="襄都区", city="邢台市", province="河北省", level="district", adcode="130502", year=2023,
                published=date(2024, 2, 28), issuer="政府办公室",
                title="邢台市襄都区2023年度法治政府建设情况报告",
                headings=["一、加强政治引领,忠诚履职尽责", "二、转变政府职能,优化营商环境",
                          "三、落实法制审核,民主科学决策", "四、加强执法监督,公正文明执法",
                          "五、推进行政解纷,维护社会稳定", "六、优化法律服务,夯实法治基础", "七、2024年工作要点"]),
    "001": dict(name="城阳区", city="青岛市", province="山东省", level="district", adcode="370214", year=2024,
                published=None, issuer=None, title="青岛市城阳区2024年度法治政府建设情况报告",
                headings=["一、2024年推进法治政府建设的主要举措和成效",
                          "二、2024年推进法治政府建设存在的不足和原因",
                          "三、2024年党政主要负责人履行推进法治建设第一责任人职责,加强法治政府建设的情况",
                          "四、2025年推进法治政府建设的主要安排"]),
    "002": dict(name="阎良区", city="西安市", province="陕西省", level="district", adcode="610114", year=2023,
                published=date(2024, 1, 20), issuer="西安市阎良区人民政府",
                title="西安市阎良区2023年度法治政府建设情况报告",
                headings=["一、2023年度推进法治政府建设的主要举措和成效",
                          "二、2023年度推进法治政府建设存在的不足和原因",
                          "三、2024年度推进法治政府建设的主要安排"]),
    "003": dict(name="临沭县", city="临沂市", province="山东省", level="county", adcode="371329", year=2024,
                published=None, issuer=None, title="临沭县2024年度法治政府建设报告",
                headings=["一、2024年度推进法治政府建设的主要举措和成效",
                          "二、党政主要负责人履行推进法治建设第一责任人职责,加强法治政府建设的有关情况",
                          "三、2024年度推进法治政府建设存在的不足和原因", "四、2025年推进法治政府建设的主要安排"]),
    "004": dict(name="锦州市", city="锦州市", province="辽宁省", level="city", adcode="210700", year=2020,
                published=date(2021, 2, 23), issuer="中共锦州市委 锦州市人民政府",
                title="中共锦州市委 锦州市人民政府关于2020年法治政府建设情况的报告",
                headings=["一、法治政府建设措施及成效", "二、我市法治政府建设存在的主要问题",
                          "三、2021年法治政府建设主要工作安排"]),
}


@pytest.fixture(scope="module")
def imported(sample_paths):
    return {key: import_file(path) for key, path in sample_paths.items()}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_metadata_of_each_sample(imported, key):
    fm = imported[key].front_matter
    want = EXPECTED[key]
    j = fm["jurisdiction"]
    assert (j["name"], j["city"], j["province"], j["level"], j["adcode"]) == (
        want["name"], want["city"], want["province"], want["level"], want["adcode"])
    assert fm["year"] == want["year"]
    assert fm["published"] == want["published"]
    assert fm["issuer"] == want["issuer"]
    assert fm["title"] == want["title"]
    assert fm["source"] == f"{key}_" + fm["source"].split("_", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{64}", fm["sha256"])
    assert not imported[key].warnings


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_top_level_headings_exact(imported, key):
    headings = [line[3:] for line in imported[key].body.splitlines() if line.startswith("## ")]
    assert headings == EXPECTED[key]["headings"]


def test_spam_site_name_is_neither_title_nor_issuer(imported):
    fm = imported["004"].front_matter
    assert "顶盛体育" not in fm["title"] and "顶盛体育" not in (fm["issuer"] or "")
    assert "顶盛体育" not in imported["004"].body
    rules = {r["text"]: r["rule"] for r in fm["removed"]}
    assert rules["顶盛体育"] == "header"
    assert rules["市司法局转发省厅《关于进一步压实防控..."] == "prev-next-title"


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_lossless_body_plus_removed_equals_raw(imported, sample_paths, key):
    raw, _ = decode_report(sample_paths[key].read_bytes(), str(sample_paths[key]))
    lines = raw.split("\n")
    removed = imported[key].front_matter["removed"]
    for item in removed:
        assert lines[item["line"] - 1].strip() == item["text"]
    removed_lines = {item["line"] for item in removed}
    kept = "".join(line for n, line in enumerate(lines, 1) if n not in removed_lines)
    assert _squash(strip_markup(imported[key].body)) == _squash(kept)


def test_headings_and_lead_ins_marked_up(imported):
    body = imported["002"].body
    assert "### (一)坚持党的领导,组织保障坚强有力。" in body
    assert "**一是强化责任体系。**区委、区政府主要领导" in body
    closing = body.rstrip().splitlines()[-3:]
    assert closing == ["西安市阎良区人民政府  ", "2024年1月20日", "{: .closing }"]


def test_committed_content_is_a_fresh_import(imported):
    for report in imported.values():
        committed = CONTENT_DIR / "reports" / output_name(report)
        assert committed.read_text(encoding="utf-8") == render_content_file(report)


def test_same_report_in_other_encodings_imports_identically(sample_paths, tmp_path):
    source = sample_paths["002"]
    text = source.read_text(encoding="utf-8")
    variants = {
        "gb18030.txt": text.encode("gb18030"),
        "bom.txt": b"\xef\xbb\xbf" + text.encode("utf-8"),
        "utf16.txt": text.encode("utf-16"),
        "crlf.txt": text.replace("\n", "\r\n").encode("gb18030"),
    }
    reference = import_file(source)
    for name, data in variants.items():
        path = tmp_path / name
        path.write_bytes(data)
        report = import_file(path)
        assert report.body == reference.body, name
        strip = lambda fm: {k: v for k, v in fm.items() if k not in ("sha256", "source")}  # noqa: E731
        assert strip(report.front_matter) == strip(reference.front_matter), name


def test_full_width_numbering_is_recognised():
    text = ("某某区2023年度法治政府建设情况报告\n2023年,城阳区深入推进法治政府建设。\n"
            "一、主要举措\n（一）健全制度。一是完善规则。全年办理事项１２件。\n（２）细化分工\n")
    report = import_text(text, "fw.txt", "0" * 64)
    assert "### （一）健全制度。" in report.body
    assert "#### （２）细化分工" in report.body


def _report(body_place: str, context: str = "") -> str:
    return (f"{context}2023年,{body_place}坚持依法行政,推进法治政府建设。{body_place}全年办理行政复议案件12件。\n"
            "一、主要举措和成效\n(一)加强领导。一是健全机制。\n")


def test_ambiguous_name_left_unresolved_with_warning():
    report = import_text(_report("朝阳区"), "a.txt", "0" * 64)
    j = report.front_matter["jurisdiction"]
    assert j["adcode"] is None and j["name"] == "朝阳区"
    assert report.warnings and "朝阳区 is ambiguous" in report.warnings[0]


@pytest.mark.parametrize(("context", "adcode", "city"), [("在北京市委领导下,", "110105", "北京市"),
                                                         ("在长春市委领导下,", "220104", "长春市")])
def test_ambiguous_name_decided_by_context(context, adcode, city):
    report = import_text(_report("朝阳区", context), "a.txt", "0" * 64)
    j = report.front_matter["jurisdiction"]
    assert (j["adcode"], j["city"]) == (adcode, city)
    assert not report.warnings


def test_department_report(sample_paths):
    body = sample_paths["001"].read_text(encoding="utf-8")
    text = "城阳区司法局2024年度法治政府建设工作报告\n" + body + "\n青岛市城阳区司法局\n2025年1月15日\n"
    report = import_text(text, "dept.txt", "0" * 64)
    fm = report.front_matter
    assert fm["jurisdiction"]["level"] == "department"
    assert fm["jurisdiction"]["name"] == "城阳区" and fm["jurisdiction"]["city"] == "青岛市"
    assert fm["issuer"] == "青岛市城阳区司法局"
    assert fm["published"] == date(2025, 1, 15)
    assert output_name(report) == "370214-sifaju-2024.md"


def _run_import(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), "import", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_bad_inputs_get_one_line_each_and_others_still_import(tmp_path, sample_paths):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "empty.txt").write_bytes(b"")
    (raw / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (raw / "undecodable.txt").write_bytes("法治政府".encode() + b"\xff\xfe\xfa\x80\x81" * 10 + b"\x00\x01")
    (raw / "novel.txt").write_text("从前有座山，山里有座庙，庙里有个老和尚在讲故事。" * 5, encoding="utf-8")
    (raw / "good.txt").write_bytes(sample_paths["000"].read_bytes())
    result = _run_import([str(raw), "--out", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line]
    assert len(errors) == 4, result.stderr
    for name in ("empty.txt", "binary.txt", "undecodable.txt", "novel.txt"):
        line = next(e for e in errors if name in e)
        assert re.match(rf".*{name}:\d+: .+; .+", line) and "Traceback" not in line
    assert (tmp_path / "out" / "130502-2023.md").exists()


def test_import_twice_is_byte_identical_and_never_overwrites_edits(tmp_path, sample_paths):
    out = tmp_path / "out"
    assert _run_import([str(sample_paths["003"]), "--out", str(out)], tmp_path).returncode == 0
    target = out / "371329-2024.md"
    first = target.read_bytes()
    assert _run_import([str(sample_paths["003"]), "--out", str(out)], tmp_path).returncode == 0
    assert target.read_bytes() == first
    target.write_text(first.decode() + "\n编辑者补充的一段。\n", encoding="utf-8")
    again = _run_import([str(sample_paths["003"]), "--out", str(out)], tmp_path)
    assert again.returncode == 1 and "--force" in again.stderr
    assert "编辑者补充的一段" in target.read_text(encoding="utf-8")
    assert _run_import([str(sample_paths["003"]), "--out", str(out), "--force"], tmp_path).returncode == 0
    assert target.read_bytes() == first


def test_front_matter_round_trips_through_yaml(imported):
    for report in imported.values():
        text = render_content_file(report)
        front = text.split("---\n")[1]
        assert yaml.safe_load(front) == report.front_matter


REPORTISH = st.sampled_from(list("一二三四五六七八九十()（）、。,法治政府区县市年度报告12 \n\t0是#*_<>[]`{}&;"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=REPORTISH | st.characters(), max_size=400))
def test_any_text_imports_or_raises_project_error(text):
    try:
        report = import_text(text, "h.txt", "0" * 64)
    except ReportsiteError as exc:
        assert all(str(p).startswith("h.txt:") for p in exc.problems)
        return
    removed = {item["line"] for item in report.front_matter["removed"]}
    text, _ = blank_control_characters(text)
    kept = "".join(line for n, line in enumerate(text.split("\n"), 1) if n not in removed)
    assert _squash(strip_markup(report.body)) == _squash(kept)


@pytest.mark.parametrize(("title", "name", "level"), [
    ("青岛市城阳区棘洪滩街道办事处关于2024年法治政府建设情况的报告", "棘洪滩街道", "street"),
    ("城阳区惜福镇2024年度法治政府建设工作报告", "惜福镇", "town"),
    ("青岛高新技术产业开发区2024年度法治政府建设情况报告", "青岛高新技术产业开发区", "other"),
    ("城阳区人民政府2024年度法治政府建设情况报告", "城阳区", "district"),
])
def test_towns_streets_and_zones_below_a_district(sample_paths, title, name, level):
    body = sample_paths["001"].read_text(encoding="utf-8")
    j = import_text(title + "\n" + body, "t.txt", "0" * 64).front_matter["jurisdiction"]
    assert (j["name"], j["level"], j["city"], j["province"]) == (name, level, "青岛市", "山东省")


def test_two_different_texts_for_one_year_both_import_with_distinct_slugs(tmp_path, sample_paths):
    raw = tmp_path / "raw"
    raw.mkdir()
    text = sample_paths["002"].read_text(encoding="utf-8")
    (raw / "a.txt").write_text(text, encoding="utf-8")
    revised = text.replace("现将有关情况报告如下。", "现将有关情况报告如下(修订稿)。")
    (raw / "b.txt").write_text(revised, encoding="utf-8")
    out = tmp_path / "out"
    assert _run_import([str(raw), "--out", str(out)], tmp_path).returncode == 0
    names = sorted((p.name for p in out.iterdir()), key=len)
    assert names[0] == "610114-2023.md" and re.fullmatch(r"610114-2023-[0-9a-f]{6}\.md", names[1])
    assert f"slug: {names[1][:-3]}" in (out / names[1]).read_text(encoding="utf-8")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _run_import([str(raw), "--out", str(out)], tmp_path).returncode == 0  # idempotent
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"


@pytest.mark.skipif(not MAKE_CORPUS.exists(), reason="../shared/bench/make_corpus.py is not beside the checkout")
def test_synthetic_corpus_metadata_matches_its_ground_truth(tmp_path):
    """300 generated reports (random places all over China, 2019-2025) against the generator's manifest."""
    import csv

    subprocess.run([sys.executable, str(MAKE_CORPUS), "--seeds", str(ROOT / "tests" / "data" / "raw-reports"),
                    "--out", str(tmp_path), "--n", "300", "--manifest", str(tmp_path / "truth.tsv")],
                   check=True, capture_output=True, timeout=120)
    rows = list(csv.DictReader((tmp_path / "truth.tsv").open(encoding="utf-8"), delimiter="\t"))
    wrong: dict[str, list[str]] = {"jurisdiction": [], "city": [], "province": [], "year": [], "published": []}
    for row in rows:
        path = tmp_path / row["file"]
        fm = import_file(path).front_matter
        j = fm["jurisdiction"]
        for key, got in (("jurisdiction", j["name"]), ("city", j["city"]), ("province", j["province"]),
                         ("year", str(fm["year"]))):
            if got != row[key]:
                wrong[key].append(f"{row['file']}: {got} != {row[key]}")
        y, m, d = (int(x) for x in row["date"].split("-"))
        text = path.read_text(encoding="utf-8")
        if (row["date"] in text or f"{y}年{m}月{d}日" in text) and str(fm["published"]) != row["date"]:
            wrong["published"].append(row["file"])
    assert len(rows) == 300
    assert not wrong["jurisdiction"] and not wrong["year"] and not wrong["published"], wrong
    assert len(wrong["city"]) <= 3 and len(wrong["province"]) <= 3, wrong  # 江北区 is in 重庆 and in 宁波


def test_tie_between_a_county_and_its_city_goes_to_the_county():
    text = ("菏泽市曹县2022年法治政府建设年度报告\n2022年,曹县深入推进依法行政。菏泽市委部署的各项法治任务全部完成。\n"
            "一、主要举措和成效\n(一)加强领导。一是健全机制。\n")
    j = import_text(text, "t.txt", "0" * 64).front_matter["jurisdiction"]
    assert (j["name"], j["adcode"], j["city"]) == ("曹县", "371721", "菏泽市")


def test_unresolved_jurisdiction_pins_its_slug(tmp_path):
    raw = tmp_path / "a.txt"
    raw.write_text(_report("朝阳区"), encoding="utf-8")
    out = tmp_path / "out"
    assert _run_import([str(raw), "--out", str(out)], tmp_path).returncode == 0
    (written,) = out.iterdir()
    assert written.name == "chao-yang-qu-2023.md"
    assert "\nslug: chao-yang-qu-2023\n" in written.read_text(encoding="utf-8")
