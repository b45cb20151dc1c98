"""The built site: every page parses, every internal link and anchor resolves, nothing external."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import html5lib
import pytest

from reportsite.errors import ReportsiteError
from reportsite.links import resolve
from reportsite.pipeline import BuildOptions, build

from .conftest import CONTENT_DIR, ROOT

NS = {"h": "http://www.w3.org/1999/xhtml"}


def _build(content: Path, out: Path, base_url: str | None = None):
    return build(BuildOptions(content, out, base_url, templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))


def _pages(site: Path) -> dict[str, object]:
    pages = {}
    for path in sorted(site.rglob("*.html")):
        parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
        pages[path.relative_to(site).as_posix()] = parser.parse(path.read_bytes(), transport_encoding="utf-8")
    return pages


def _links(doc) -> list[tuple[str, str]]:
    found = []
    for el in doc.iter():
        tag = el.tag.split("}")[-1]
        for attr in ("href", "src", "action"):
            if el.get(attr) is not None and not (tag == "link" and el.get("rel") in ("canonical", "alternate")):
                found.append((tag, el.get(attr)))
    return found


def _ids(doc) -> set[str]:
    return {el.get("id") for el in doc.iter() if el.get("id")}


def _check_site(site: Path) -> int:
    pages = _pages(site)
    ids = {path: _ids(doc) for path, doc in pages.items()}
    files = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    checked = 0
    for path, doc in pages.items():
        for tag, href in _links(doc):
            assert not re.match(r"^(?:[a-z]+:)?//", href), f"{path}: external {tag} {href}"
            if href.startswith(("mailto:", "data:")):
                continue
            target, anchor = resolve(path, href)
            assert target in files, f"{path}: {href} -> {target} missing"
            if anchor:
                assert anchor in ids[target], f"{path}: {href} anchor missing"
            checked += 1
    return checked


def test_every_page_parses_and_every_link_resolves(built_site):
    assert _check_site(built_site) > 500


def test_sub_path_build_links_resolve_and_canonicals_use_base(tmp_path):
    site = tmp_path / "site"
    _build(CONTENT_DIR, site, "https://example.org/fzbg/")
    _check_site(site)
    page = (site / "reports" / "130502-2023" / "index.html").read_text(encoding="utf-8")
    assert '<link rel="canonical" href="https://example.org/fzbg/reports/130502-2023/">' in page
    assert "https://example.org/fzbg/reports/130502-2023/" in (site / "sitemap.xml").read_text(encoding="utf-8")
    assert 'href="/' not in page and 'src="/' not in page  # nothing root-relative: works under any sub-path


def test_no_external_requests_in_css_and_js(built_site):
    for path in list(built_site.rglob("*.css")) + list(built_site.rglob("*.js")) + list(built_site.rglob("*.mjs")):
        text = path.read_text(encoding="utf-8")
        for url in re.findall(r"url\(([^)]+)\)|import[^'\"]*['\"]([^'\"]+)['\"]", text):
            value = next(u for u in url if u)
            assert not urlsplit(value.strip("'\"")).netloc, f"{path}: {value}"
        assert "@import" not in text and "fonts.googleapis" not in text


def test_anchors_identical_across_two_builds(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _build(CONTENT_DIR, first)
    _build(CONTENT_DIR, second)
    for page in first.rglob("reports/*/index.html"):
        other = second / page.relative_to(first)
        get_ids = lambda p: re.findall(r' id="([^"]+)"', p.read_text(encoding="utf-8"))  # noqa: E731
        assert get_ids(page) == get_ids(other) and get_ids(page)


def test_report_page_has_meta_toc_sections_and_share_controls(built_site):
    html = (built_site / "reports" / "610114-2023" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN"' in html
    assert "西安市阎良区人民政府" in html and "2024年1月20日" in html
    assert 'href="../../regions/610000/"' in html and 'href="../../regions/610100/"' in html
    assert '<h2 id="s2" class="sec-h">' in html and 'data-share-section="s2"' in html
    assert 'data-qr-section="s2"' in html and 'class="toc"' in html
    assert '<p class="closing">西安市阎良区人民政府<br>' in html
    assert "Content-Security-Policy" in html and "script-src 'self'" in html


def test_index_pages_cover_tree_years_levels_coverage_topics(built_site):
    home = (built_site / "index.html").read_text(encoding="utf-8")
    assert "收录 5 份报告" in home
    shandong = (built_site / "regions" / "370000" / "index.html").read_text(encoding="utf-8")
    assert "青岛市" in shandong and "临沂市" in shandong
    qingdao = (built_site / "regions" / "370200" / "index.html").read_text(encoding="utf-8")
    assert "城阳区" in qingdao and "2024年度" in qingdao
    coverage = (built_site / "coverage" / "index.html").read_text(encoding="utf-8")
    assert coverage.count('class="cov-yes"') == 5 + 1  # five reports + the legend
    assert "共缺 20 份" in coverage  # 5 jurisdictions x 5 years (2020-2024) - 5 reports
    assert (built_site / "years" / "2023" / "index.html").exists()
    assert (built_site / "levels" / "county" / "index.html").exists()
    for name in ("sitemap.xml", "feed.xml", "robots.txt", "404.html"):
        assert (built_site / name).exists()
    sitemap = (built_site / "sitemap.xml").read_text(encoding="utf-8")
    assert sitemap.count("<loc>") == 9 + 5 and "/reports/371329-2024/</loc>" in sitemap


def test_topic_pages_link_to_sections_and_explain(built_site):
    page = (built_site / "topics" / "fuyi-yingsu" / "index.html").read_text(encoding="utf-8")
    slugs = set(re.findall(r'href="\.\./\.\./reports/([0-9a-z-]+)/#s[0-9-]+"', page))
    assert slugs == {"130502-2023", "370214-2024", "610114-2023", "371329-2024", "210700-2020"}
    assert "为何归入本专题" in page and "行政复议" in page
    plans = (built_site / "topics" / "xia-niandu-anpai" / "index.html").read_text(encoding="utf-8")
    assert "七、2024年工作要点" in plans and "三、2021年法治政府建设主要工作安排" in plans


def test_raw_html_in_a_report_is_escaped(content_copy, tmp_path):
    path = content_copy / "reports" / "130502-2023.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + '\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n', encoding="utf-8")
    _build(content_copy, tmp_path / "site")
    html = (tmp_path / "site" / "reports" / "130502-2023" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "onerror" not in html


def test_broken_internal_anchor_fails_the_build_naming_page_and_link(content_copy, tmp_path):
    path = content_copy / "reports" / "130502-2023.md"
    path.write_text(path.read_text(encoding="utf-8") + "\n参见[第九部分](#s9)。\n", encoding="utf-8")
    with pytest.raises(ReportsiteError) as exc:
        _build(content_copy, tmp_path / "site")
    assert "reports/130502-2023/index.html" in str(exc.value) and "'#s9'" in str(exc.value)
    assert not (tmp_path / "site").exists()


def test_every_page_has_csp_and_no_inline_script_or_style(built_site):
    for path in built_site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        rel = path.relative_to(built_site)
        assert "default-src 'self'; script-src 'self'; style-src 'self'" in html, rel
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{rel}: inline script"
        assert not re.search(r"<style\b|\sstyle=", html), f"{rel}: inline style"
        assert not re.search(r"\son[a-z]+=", html), f"{rel}: inline event handler"


def test_long_topics_are_split_into_linked_pages_without_splitting_a_jurisdiction(content_copy, tmp_path):
    one_page = tmp_path / "one"
    _build(content_copy, one_page)
    with (content_copy / "site.yml").open("a", encoding="utf-8") as f:
        f.write("topic_page_size: 2\n")
    split = tmp_path / "split"
    _build(content_copy, split)  # the build's link check also proves every pager link resolves
    entry = re.compile(r'<h3><a href="[./]*(reports/[^"]+)"')
    topic = split / "topics" / "fuyi-yingsu"
    files = [topic / "index.html", *sorted((p / "index.html" for p in topic.iterdir() if p.is_dir()),
                                           key=lambda p: int(p.parent.name))]
    assert len(files) > 1
    texts = [f.read_text(encoding="utf-8") for f in files]
    whole = (one_page / "topics" / "fuyi-yingsu" / "index.html").read_text(encoding="utf-8")
    assert [e for t in texts for e in entry.findall(t)] == entry.findall(whole)  # same entries, same order
    places = [re.findall(r"<h2>([^<]+)</h2>", t) for t in texts]
    flat = [p for page in places for p in page]
    assert len(flat) == len(set(flat)), "a jurisdiction was split across pages"
    assert 'rel="next"' in texts[0] and 'rel="prev"' in texts[-1] and "第 2 / " in texts[1]
