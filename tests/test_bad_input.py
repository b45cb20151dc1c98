"""The bad-input corpus in tests/data/bad-input: each file gets correct output or one clear line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CONTENT_DIR, ROOT

BAD = ROOT / "tests" / "data" / "bad-input"
LINE = re.compile(r"^(?:warning: )?(?P<path>.+?):(?P<line>\d+): (?P<what>[^;]+); (?P<fix>.+)$")

RAW_EXPECTED = {  # file -> None (imports) or the message it must get
    "empty.txt": "the file is empty",
    "binary.txt": "this is a binary file",
    "undecodable.txt": "bytes are neither UTF-8, UTF-16 nor GB18030",
    "only-chrome.txt": "only web-page chrome, no report text",
    "gb18030.txt": None,
    "utf16.txt": None,
    "utf8-bom.txt": None,
    "no-headings.txt": None,
    "control-char.txt": None,
    "报告 文件 名.txt": None,
    "raw-html.txt": None,
    "long-heading.txt": None,
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_corpus_is_complete():
    assert sorted(p.name for p in (BAD / "raw").iterdir()) == sorted(RAW_EXPECTED)


@pytest.mark.parametrize("name", sorted(RAW_EXPECTED))
def test_each_raw_input(tmp_path, name):
    result = _cli("import", str(BAD / "raw" / name), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "Traceback" not in result.stderr
    expected = RAW_EXPECTED[name]
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    if expected is None:
        assert result.returncode == 0, result.stderr
        (written,) = (tmp_path / "out").iterdir()
        text = written.read_text(encoding="utf-8")
        assert "610114" in written.name or "no-headings" in name
        assert "\x07" not in text and "\x1b" not in text and "<script" not in text
    else:
        assert result.returncode == 1
        assert len(errors) == 1, result.stderr
        m = LINE.match(errors[0])
        assert m and m["path"].endswith(name) and expected in m["what"], errors[0]


def test_encodings_of_one_report_give_the_same_markdown(tmp_path):
    bodies = set()
    for name in ("gb18030.txt", "utf16.txt", "utf8-bom.txt", "报告 文件 名.txt"):
        out = tmp_path / name
        assert _cli("import", str(BAD / "raw" / name), "--out", str(out), cwd=tmp_path).returncode == 0
        bodies.add(next(out.iterdir()).read_text(encoding="utf-8").split("---\n", 2)[2])
    assert len(bodies) == 1


def test_twenty_megabyte_text_imports(tmp_path):
    sample = (ROOT / "tests" / "data" / "raw-reports" / "000_587ecf3fbd3c4a2b.txt").read_bytes()
    big = tmp_path / "big.txt"
    big.write_bytes(sample * (20_000_000 // len(sample)))
    result = _cli("import", str(big), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "130502-2023.md").stat().st_size > 19_000_000


CONTENT_EXPECTED = {  # file -> the message it must get (others build)
    "wrong-type.md": "`year` is '今年', not a whole number",
    "missing-field.md": "`title` is missing",
    "alias-bomb.md": "YAML aliases (*name) are not allowed",
    "tabs.md": "front matter is not valid YAML",
    "dup-slug-b.md": "slug 'same-slug' is already used by",
    "slug-traversal.md": "`slug` '../../outside' is not lower-case",
    "slug-absolute.md": "`slug` '/etc/passwd' is not lower-case",
}


@pytest.fixture()
def bad_content(tmp_path):
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    for path in (BAD / "content" / "reports").iterdir():
        shutil.copy(path, content / "reports" / path.name)
    return content


def test_bad_content_one_line_each_and_the_rest_still_builds(tmp_path, bad_content):
    result = _cli("build", "--content", str(bad_content), "--out", str(tmp_path / "site"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line and not line.startswith("warning: ")]
    assert len(lines) == len(CONTENT_EXPECTED), result.stderr
    control_file = bad_content / "reports" / "control-char.md"
    assert f"warning: {control_file}:1: 2 control character(s)" in result.stderr
    for name, message in CONTENT_EXPECTED.items():
        line = next(line for line in lines if f"/{name}:" in line)
        m = LINE.match(line)
        assert m and message in m["what"] and m["fix"], line
    built = {p.name for p in (tmp_path / "site" / "reports").iterdir()}
    assert {"130502-2023", "610114-2023", "same-slug", "130502-2017", "130502-2016", "130502-2015",
            "130502-2014"} <= built
    assert not (tmp_path / "outside").exists() and not (tmp_path / "site" / "etc").exists()
    script_page = (tmp_path / "site" / "reports" / "130502-2016" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in script_page and "onerror" not in script_page and "javascript:" not in script_page
    assert "onclick" not in script_page
    control = (tmp_path / "site" / "reports" / "130502-2015" / "index.html").read_text(encoding="utf-8")
    assert "\x07" not in control and "\x1b" not in control
    long_heading = (tmp_path / "site" / "reports" / "130502-2017" / "index.html").read_text(encoding="utf-8")
    assert '<h2 id="s1" class="sec-h">' in long_heading


def test_strict_fails_and_writes_nothing(tmp_path, bad_content):
    result = _cli("build", "--strict", "--content", str(bad_content), "--out", str(tmp_path / "site"), cwd=tmp_path)
    assert result.returncode == 2
    assert not (tmp_path / "site").exists()


def test_many_warnings_are_counted_not_repeated_and_check_lists_them_all(tmp_path, content_copy):
    report = (content_copy / "reports" / "130502-2023.md").read_text(encoding="utf-8")
    for n in range(25):  # 25 more texts of 襄都区 2023: each is a duplicate-edition warning
        (content_copy / "reports" / f"copy-{n}.md").write_text(report.replace("---\n", f"---\nslug: copy-{n}\n", 1),
                                                               encoding="utf-8")
    built = _cli("build", "--content", str(content_copy), "--out", str(tmp_path / "site"), cwd=tmp_path)
    warnings = [line for line in built.stderr.splitlines() if line.startswith("warning: ")]
    assert built.returncode == 0 and len(warnings) == 21, built.stderr
    assert warnings[-1].startswith("warning: 5 more warning(s) not shown")
    checked = _cli("check", "--content", str(content_copy), cwd=tmp_path)
    assert len([line for line in checked.stderr.splitlines() if "is also reported by" in line]) == 25
