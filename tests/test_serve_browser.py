"""serve in a real browser: an edit appears without a manual reload; a broken report shows the error
page and recovers; a stylesheet edit restyles the page without reloading it; nothing trips the CSP."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from reportsite.pipeline import BuildOptions

from .conftest import ROOT
from .test_serve import REPORT, bump_mtime, replace_in, start_serve

pytestmark = pytest.mark.browser


@pytest.fixture()
def served(tmp_path: Path):
    for name in ("content", "templates", "theme"):
        shutil.copytree(ROOT / name, tmp_path / name)
    options = BuildOptions(tmp_path / "content", tmp_path / "site", templates_dir=tmp_path / "templates",
                           theme_dir=tmp_path / "theme")
    lines: list[str] = []
    process, url = start_serve(options, collect=lines)
    yield options, url, lines
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=20)
    except Exception:
        process.kill()
        raise


def idle(lines: list[str], quiet: float = 0.5) -> bool:
    """The server has done all it was asked ("up to date") and said nothing since for `quiet` s."""
    count = len(lines)
    if not count or not lines[-1].startswith("up to date"):
        return False
    time.sleep(quiet)
    return len(lines) == count


def wait_until(page, condition, timeout: float = 15.0) -> None:  # noqa: ANN001 - playwright Page
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def test_edit_appears_error_page_shows_and_recovers(browser, served) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    options, url, lines = served
    context = browser.new_context()
    page = context.new_page()
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    page.goto(url + "reports/130502-2023/")
    wait_until(page, lambda: any('"info"' in f for f in sent))  # livereload client connected
    expect(page.locator("h1").first).to_contain_text("襄都区")

    # 1. an edit appears in the open page, without a manual reload
    sentence = "这是浏览器测试加入的新句子"
    replace_in(options.content_dir / REPORT, "## 一、加强政治引领", f"{sentence}。\n\n## 一、加强政治引领")
    expect(page.get_by_text(sentence)).to_be_visible(timeout=15000)

    # 2. broken front matter: the error page names path:line and the message
    good = (options.content_dir / REPORT).read_text(encoding="utf-8")
    replace_in(options.content_dir / REPORT, "year: 2023", "year: [2023")
    error = page.locator("ul.problems li").first
    expect(error).to_contain_text(f"{options.content_dir / REPORT}:", timeout=15000)
    expect(error).to_contain_text("front matter is not valid YAML")

    # 3. fixing the file brings the page back, without restarting the server
    (options.content_dir / REPORT).write_text(good, encoding="utf-8")
    bump_mtime(options.content_dir / REPORT)
    expect(page.get_by_text(sentence)).to_be_visible(timeout=15000)
    expect(page.locator("ul.problems")).to_have_count(0)

    # 4. a stylesheet edit restyles the page in place (no reload: the page's JS state survives)
    wait_until(page, lambda: idle(lines), timeout=60)  # no reload of the earlier edits is still to come
    wait_until(page, lambda: sum('"info"' in f for f in sent) >= 3)  # reconnected after the reloads
    page.evaluate("window.__beforeCssEdit = 42")
    with (options.theme_dir / "site.css").open("a", encoding="utf-8") as f:
        f.write("\nh1 { letter-spacing: 7px; }\n")
    bump_mtime(options.theme_dir / "site.css")
    expect(page.locator("h1").first).to_have_css("letter-spacing", "7px", timeout=15000)
    assert page.evaluate("window.__beforeCssEdit") == 42
    assert csp_errors == []
    context.close()

