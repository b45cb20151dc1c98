"""The report page in real headless Chromium: section anchors, link copying, QR, reading settings, layout."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture()
def page(browser, site_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site_url.rstrip("/"))
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("requestfailed", lambda r: page.problems.append(f"failed {r.url}"))
    yield page
    context.close()


def test_opening_a_section_anchor_scrolls_and_highlights_it(page, site_url):
    page.emulate_media(reduced_motion="reduce")  # no fade-in: the highlight is there at once
    page.goto(site_url + "reports/370214-2024/#s1-2")
    section = page.locator("section:has(> #s1-2)")
    assert "is-target" in section.get_attribute("class")
    other = page.locator("section:has(> #s1-1)")
    assert section.evaluate("e => getComputedStyle(e).backgroundColor") != other.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    top = page.locator("#s1-2").evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 200
    assert not page.problems


def test_link_control_copies_the_sections_full_url(page, site_url):
    page.goto(site_url + "reports/610114-2023/")
    page.locator("#s2 .sec-link").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == "http://localhost:8000/reports/610114-2023/#s2"  # canonical URL from content/site.yml
    assert page.url.endswith("#s2")
    assert "已复制链接" in page.locator(".toast").inner_text()
    assert "is-target" in page.locator("section:has(> #s2)").get_attribute("class")


def test_qr_code_of_a_section(page, site_url):
    page.goto(site_url + "reports/610114-2023/")
    page.locator("#s3 .sec-qr").click()
    dialog = page.locator("dialog.qr-dialog")
    assert dialog.is_visible()
    assert dialog.locator(".qr-url").inner_text().endswith("/reports/610114-2023/#s3")
    assert dialog.locator("svg path").get_attribute("d").count("M") > 100
    assert not page.problems


def test_font_size_and_elder_mode_are_remembered_across_pages(page, site_url):
    page.goto(site_url)
    base = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    page.locator("[data-fontsize-set=l]").first.click()
    page.locator("[data-elder-toggle]").first.click()
    page.goto(site_url + "reports/130502-2023/")
    size = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert size > base
    assert page.evaluate("document.documentElement.classList.contains('elder')")
    assert page.locator("[data-fontsize-set=l]").first.get_attribute("aria-pressed") == "true"


@pytest.mark.parametrize("link", ["header a.brand", "nav a:text-is('首页')"])
def test_home_links_lead_to_the_home_page_from_deep_pages(page, site_url, link):
    for start in ("reports/610114-2023/", "topics/", "regions/"):
        page.goto(site_url + start)
        page.locator(link).first.click()
        page.wait_for_load_state()
        assert page.url == site_url, (start, link)


@pytest.mark.parametrize("width", [375, 1280])
def test_no_horizontal_overflow(browser, site_url, width, tmp_path):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    for path in ("", "reports/130502-2023/", "coverage/", "topics/fuyi-yingsu/", "regions/370000/"):
        page.goto(site_url + path)
        page.screenshot(path=str(tmp_path / f"{width}-{path.replace('/', '_') or 'home'}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} overflows by {overflow}px at {width}px"
    context.close()


def test_every_page_loads_without_console_errors_or_failed_requests(page, site_url, built_site):
    for path in sorted(built_site.rglob("*.html")):
        rel = path.relative_to(built_site).as_posix().removesuffix("index.html")
        page.goto(site_url + rel, wait_until="networkidle")
        assert not page.problems, f"{rel}: {page.problems}"
