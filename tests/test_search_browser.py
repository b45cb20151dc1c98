"""The search page and arrival highlighting in headless Chromium, on the five real samples."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from reportsite import search
from reportsite.markup import escape_text
from reportsite.model import load_content
from reportsite.pipeline import BuildOptions, build
from tests.conftest import CONTENT_DIR, ROOT, serve_directory

pytestmark = pytest.mark.browser
XSS = "<img src=x onerror=alert(1)>"


def sections_containing(word: str, content_dir: Path = CONTENT_DIR) -> set[tuple[str, str]]:
    """(report slug, section id) of every section whose heading or own text contains the word."""
    found = set()
    for report in load_content(content_dir).reports:
        for s in report.sections:
            if search.normalise(word) in search.normalise(s.title + "\n" + s.text):
                found.add((report.slug, s.id))
    return found


@pytest.fixture(scope="module")
def site(built_site: Path):
    server, url = serve_directory(built_site)
    yield url
    server.shutdown()


@pytest.fixture()
def page(browser):
    page = browser.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.dialogs, page.errors = dialogs, errors
    yield page
    page.close()
    assert not errors, errors


def search_for(page, base: str, query: str, everything: bool = True, **filters: str) -> list[tuple[str, str]]:
    params = "&".join(f"{k}={quote(v)}" for k, v in {"q": query, **filters}.items())
    page.goto(f"{base}search/?{params}")
    return wait_results(page, query, everything)


def wait_results(page, query: str, everything: bool = True) -> list[tuple[str, str]]:
    """The results' (report slug, section id), after pressing 显示更多结果 until all are shown."""
    escaped = query.replace("\\", "\\\\").replace('"', '\\"')
    page.wait_for_selector(f'body[data-search-answered="{escaped}"]', state="attached", timeout=15000)
    while everything and page.is_visible("#search-more"):
        page.evaluate("() => { delete document.body.dataset.searchAnswered; }")
        page.click("#search-more")
        page.wait_for_selector(f'body[data-search-answered="{escaped}"]', state="attached", timeout=15000)
    out = []
    for href in page.eval_on_selector_all(".search-result-link", "links => links.map(a => a.href)"):
        parts = urlsplit(href)
        out.append((parts.path.rstrip("/").split("/")[-1], parts.fragment))
    return out


def test_xingzheng_fuyi_returns_sections_of_all_five_reports(page, site):
    first_page = search_for(page, site, "行政复议", everything=False)
    assert len(first_page) == 5 and page.is_visible("#search-more")
    results = wait_results(page, "行政复议")
    expected = sections_containing("行政复议")
    assert {slug for slug, _ in results} == {slug for slug, _ in expected} and len({s for s, _ in expected}) == 5
    assert set(results) == expected  # every section that says it, nothing else (they fit on one page here)
    snippet_marks = page.eval_on_selector_all(".search-snippet mark", "ms => ms.map(m => m.textContent)")
    assert snippet_marks and set(snippet_marks) == {"行政复议"}


def test_first_results_of_a_word_come_with_its_word_list(browser, site):
    """The word lists carry snippet rows of their best sections: the first page of a one-word query
    needs no section text file, and its snippets still show the word highlighted in the section's text."""
    context = browser.new_context()  # an empty cache
    page = context.new_page()
    fetched: list[str] = []
    page.on("requestfinished", lambda r: fetched.append(urlsplit(r.url).path))
    try:
        assert len(search_for(page, site, "法律明白人", everything=False)) == 3
        index_files = [p for p in fetched if "/search/idx/" in p]
        assert index_files and not [p for p in index_files if "/search/idx/d/" in p], index_files
        snippets = page.eval_on_selector_all(".search-snippet", "ps => ps.map(p => p.textContent)")
        marks = page.eval_on_selector_all(".search-snippet mark", "ms => ms.map(m => m.textContent)")
        assert len(snippets) == 3 and all("法律明白人" in s for s in snippets) and set(marks) == {"法律明白人"}
    finally:
        context.close()


def test_falv_mingbairen_returns_exactly_the_sections_that_mention_it(page, site):
    results = search_for(page, site, "法律明白人")
    expected = sections_containing("法律明白人")
    assert {slug for slug, _ in expected} == {"130502-2023", "610114-2023", "371329-2024"}
    assert set(results) == expected and len(results) == len(expected)
    where = page.eval_on_selector_all(".search-result-where", "ws => ws.map(w => w.textContent)")
    assert any("襄都区" in w for w in where) and any("阎良区" in w for w in where) and any("临沭县" in w for w in where)


def test_part_words_and_mixed_queries(page, site):
    assert {slug for slug, _ in search_for(page, site, "城事通")} == {"370214-2024"}
    assert set(search_for(page, site, "网办率")) == sections_containing("网办率")
    hotline = search_for(page, site, "12345热线")
    assert ("370214-2024", "preamble") in hotline
    assert set(search_for(page, site, "１２３４５热线")) == set(hotline)  # full width is the same query
    assert set(search_for(page, site, "行政復議")) == sections_containing("行政复议")  # Traditional characters
    assert set(search_for(page, site, "复议")) >= sections_containing("行政复议")
    fangguanfu = search_for(page, site, "“放管服”")
    assert set(fangguanfu) == sections_containing("放管服")


def test_quoted_phrase_matches_only_where_the_words_stand_together(page, site):
    together = sections_containing("行政复议案件")
    apart = {key for key in sections_containing("行政复议") & sections_containing("案件")} - together
    assert together and apart  # the samples have both cases
    loose = set(search_for(page, site, "行政复议 案件"))
    assert loose == together | apart
    phrase = set(search_for(page, site, '"行政复议 案件"'))
    assert phrase == together
    assert "连在一起" not in page.inner_text("#search-status")


def test_clicking_a_result_lands_on_the_section_with_the_words_highlighted(page, site):
    results = search_for(page, site, "法律明白人")
    first = page.locator(".search-result-link").first
    slug, anchor = results[0]
    first.click()
    page.wait_for_selector("body[data-search-highlighted]", state="attached", timeout=10000)
    assert urlsplit(page.url).fragment == anchor and f"/reports/{slug}/" in page.url
    section = page.locator(f"section.sec:has(> #{anchor})")
    marks = section.locator("mark.search-hit").all_text_contents()
    assert marks and set(marks) == {"法律明白人"}
    assert page.locator("mark.search-hit").count() == len(marks)  # only in the section we arrived at


def test_filters_narrow_results_and_live_in_the_url(page, site):
    everything = search_for(page, site, "行政复议")
    only_2024 = search_for(page, site, "行政复议", year="2024")
    assert only_2024 and set(only_2024) < set(everything)
    assert {slug for slug, _ in only_2024} == {"370214-2024", "371329-2024"}
    shandong_topic = search_for(page, site, "行政复议", province="山东省", topic="fuyi-yingsu")
    assert shandong_topic and set(shandong_topic) <= set(only_2024)
    # changing a filter on the page updates the results and the shareable URL
    page.goto(f"{site}search/?q={quote('行政复议')}")
    wait_results(page, "行政复议")
    page.evaluate("() => { delete document.body.dataset.searchAnswered; }")
    page.select_option("select[name=level]", "city")
    wait_results(page, "行政复议")
    assert "level=city" in page.url and "q=" in page.url
    city = {urlsplit(h).path.rstrip("/").split("/")[-1]
            for h in page.eval_on_selector_all(".search-result-link", "ls => ls.map(a => a.href)")}
    assert city == {"210700-2020"}


def test_results_update_as_you_type_and_keyboard_moves_through_them(page, site):
    page.goto(f"{site}search/")
    assert page.is_visible("#search-empty")  # a helpful empty state before typing
    box = page.locator("#q")
    box.press_sequentially("城事通", delay=30)
    wait_results(page, "城事通")
    assert page.locator(".search-result").count() == 1
    assert "q=%E5%9F%8E%E4%BA%8B%E9%80%9A" in page.url
    box.fill("")
    box.press_sequentially("法律明白人", delay=20)
    wait_results(page, "法律明白人")
    box.press("ArrowDown")
    links = page.locator(".search-result-link")
    assert links.nth(0).evaluate("a => a === document.activeElement")
    page.keyboard.press("ArrowDown")
    assert links.nth(1).evaluate("a => a === document.activeElement")
    target = links.nth(1).get_attribute("href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{urlsplit(target).path}**", timeout=10000)


def test_no_results_explains_what_to_try(page, site):
    search_for(page, site, "量子纠缠")
    assert page.locator(".search-result").count() == 0
    assert "没有找到" in page.inner_text("#search-status")
    assert page.is_visible("#search-empty")
    search_for(page, site, "constructor __proto__")  # words that are names of JS object members
    assert page.locator(".search-result").count() == 0 and "没有找到" in page.inner_text("#search-status")


@pytest.fixture(scope="module")
def xss_site(tmp_path_factory):
    content = tmp_path_factory.mktemp("xss") / "content"
    shutil.copytree(CONTENT_DIR, content)
    target = content / "reports" / "130502-2023.md"
    text = target.read_text(encoding="utf-8")
    marker = "持续实施“法律明白人”培养工程"
    assert marker in text
    text = text.replace(marker, "注入测试" + escape_text(XSS) + "结束。" + marker, 1)
    target.write_text(text, encoding="utf-8")
    out = tmp_path_factory.mktemp("xss-site") / "site"
    build(BuildOptions(content, out, templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    server, url = serve_directory(out)
    yield url
    server.shutdown()


def test_report_text_that_looks_like_html_stays_text(page, xss_site):
    results = search_for(page, xss_site, "注入测试")
    assert results and results[0][0] == "130502-2023"
    snippet = page.locator(".search-snippet").first
    assert XSS in snippet.text_content()
    assert page.locator("#search-results img").count() == 0
    page.locator(".search-result-link").first.click()
    page.wait_for_selector("body[data-search-highlighted]", state="attached", timeout=10000)
    assert page.locator(".report-body img").count() == 0
    assert XSS in page.locator("mark.search-hit").first.evaluate("m => m.parentElement.textContent")
    page.wait_for_timeout(300)
    assert page.dialogs == []
