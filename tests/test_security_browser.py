"""The XSS corpus never executes in a real browser: alert is hooked and DOM mutations are watched."""

from __future__ import annotations

import shutil

import pytest

from reportsite.pipeline import BuildOptions, build

from .conftest import CONTENT_DIR, ROOT, serve_directory

pytestmark = pytest.mark.browser

HOOK = """
window.__fired = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (...args) => { window.__fired.push(name + ":" + args.join(",")); };
}
new MutationObserver((records) => {
  for (const r of records) for (const node of r.addedNodes) {
    if (node.nodeType !== 1) continue;
    const ownScript = node.tagName === "SCRIPT" && node.src && new URL(node.src).origin === location.origin;
    if ((node.tagName === "SCRIPT" && !ownScript) || node.tagName === "IFRAME") {
      window.__fired.push("added " + node.tagName + " " + (node.src || node.textContent.slice(0, 40)));
    }
  }
}).observe(document, {childList: true, subtree: true});
"""

XSS = [
    "<script>alert('script')</script>",
    "<img src=x onerror=alert('img')>",
    "<svg onload=alert('svg')></svg>",
    '<a href="javascript:alert(\'js\')">点我</a>',
    "<iframe src=\"javascript:alert('iframe')\"></iframe>",
    '<div onmouseover="alert(\'hover\')">悬停</div>',
    "[链接](javascript:alert('md'))",
    "<style>body{display:none}</style>",
]


@pytest.fixture(scope="module")
def xss_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("xss")
    content = root / "content"
    shutil.copytree(CONTENT_DIR, content)
    report = content / "reports" / "130502-2023.md"
    text = report.read_text(encoding="utf-8")
    report.write_text(text + "\n" + "\n\n".join(f"测试{i}：{x}" for i, x in enumerate(XSS)) + "\n", encoding="utf-8")
    out = root / "site"
    build(BuildOptions(content, out, templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    server, url = serve_directory(out)
    yield url
    server.shutdown()


def test_xss_corpus_never_executes(browser, xss_site):
    context = browser.new_context()
    context.add_init_script(HOOK)
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(xss_site + "reports/130502-2023/", wait_until="networkidle")
    page.mouse.move(300, 300)
    for link in page.locator(".report-body a").all():
        link.hover()
    fired = page.evaluate("window.__fired")
    assert fired == [] and dialogs == []
    assert page.locator(".report-body script, .report-body iframe, .report-body svg, .report-body style").count() == 0
    assert page.evaluate("getComputedStyle(document.body).display") != "none"
    hrefs = page.eval_on_selector_all(".report-body a", "els => els.map(e => e.getAttribute('href'))")
    assert not any(h and h.lower().startswith("javascript:") for h in hrefs)
    context.close()
