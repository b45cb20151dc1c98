"""serve: incremental rebuilds equal full rebuilds, bad edits show an error page, only the site is served."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reportsite.cache import BuildCache
from reportsite.pipeline import BuildOptions, render_site
from reportsite.serve import Preview, inject_client, reload_message_paths, watch_inputs

from .conftest import ROOT

REPORT = "reports/130502-2023.md"  # 邢台市襄都区 2023
OTHER_PAGE = "reports/610114-2023/index.html"  # another jurisdiction's report



def full_build(options: BuildOptions) -> dict[str, bytes]:
    """The reference: the whole pipeline without any cache."""
    _, files = render_site(BuildOptions(**{**options.__dict__, "cache": None}))
    return {f.path: f.data for f in files}


def replace_in(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    bump_mtime(path)


def bump_mtime(path: Path) -> None:
    """Filesystems with coarse timestamps: make sure the edit is seen as one."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def edit_report(o: BuildOptions) -> None:
    replace_in(o.content_dir / REPORT, "## 一、加强政治引领", "新增的一句话：本段为测试编辑。\n\n## 一、加强政治引领")


def add_report(o: BuildOptions) -> None:
    text = (o.content_dir / REPORT).read_text(encoding="utf-8")
    text = text.replace("year: 2023", "year: 2022").replace("2023年度", "2022年度")
    (o.content_dir / "reports" / "130502-2022.md").write_text(text, encoding="utf-8")


def delete_report(o: BuildOptions) -> None:
    (o.content_dir / REPORT).unlink()


def rename_heading(o: BuildOptions) -> None:
    replace_in(o.content_dir / REPORT, "## 二、转变政府职能,优化营商环境", "## 二、深化放管服改革,优化营商环境")


def edit_template(o: BuildOptions) -> None:
    replace_in(o.templates_dir / "list.html", "{% block main %}", '{% block main %}\n<p class="note">模板修改</p>')


def edit_topics(o: BuildOptions) -> None:
    replace_in(o.content_dir / "topics.yml", "keywords: [营商环境,", "keywords: [营商环境, 法律明白人, 信用,")


def edit_stylesheet(o: BuildOptions) -> None:
    with (o.theme_dir / "site.css").open("a", encoding="utf-8") as f:
        f.write("\n.test-edit { color: red; }\n")
    bump_mtime(o.theme_dir / "site.css")


EDITS: dict[str, Callable[[BuildOptions], None]] = {
    "edit a report": edit_report, "add a report": add_report, "delete a report": delete_report,
    "rename a heading": rename_heading, "edit a template": edit_template, "edit topics": edit_topics,
    "edit the stylesheet": edit_stylesheet,
}


@pytest.mark.parametrize("name", EDITS)
def test_incremental_rebuild_equals_full_rebuild(project: BuildOptions, name: str) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    assert not preview.failure and preview.files == full_build(project)
    before = dict(preview.files)

    EDITS[name](project)
    changed = preview.rebuild()

    assert not preview.failure, preview.failure
    expected = full_build(project)
    assert preview.files.keys() == expected.keys()
    assert [p for p in expected if preview.files[p] != expected[p]] == []
    assert changed == sorted(p for p in before.keys() | expected.keys() if before.get(p) != expected.get(p))
    assert changed, "the edit changed nothing"
    stats = preview.options.cache.stats  # type: ignore[union-attr]
    assert stats.reused > 0, "nothing was reused: the rebuild was not incremental"


def test_deferred_search_index_catches_up_on_the_next_rebuild(project: BuildOptions) -> None:
    preview = Preview(project)
    preview.rebuild()
    before = dict(preview.files)
    edit_report(project)
    changed = preview.rebuild(defer=True)  # the page first ...
    assert preview.pending and "reports/130502-2023/index.html" in changed
    assert not any(p.startswith("search/idx/") for p in changed)
    assert all(preview.files[p] == before[p] for p in before if p.startswith("search/idx/"))
    changed = preview.rebuild()  # ... then the search index
    assert not preview.pending and changed and all(p.startswith("search/idx/") for p in changed)
    assert preview.files == full_build(project)


def test_the_preview_starts_before_its_search_index_and_completes_it(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild(defer=True)  # what `serve` does first: every page, no search index yet
    assert preview.pending and not any(p.startswith("search/idx/") for p in preview.files)
    assert "reports/130502-2023/index.html" in preview.files
    changed = preview.rebuild()  # ... and just after
    assert not preview.pending and changed and all(p.startswith("search/idx/") for p in changed)
    assert preview.files == full_build(project)


def test_an_edited_report_page_is_shown_first_and_the_rest_follows(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    before = dict(preview.files)
    edit_report(project)
    changed = preview.rebuild(defer=True)  # only the edited report's page, rendered against the last build
    assert preview.quick and preview.pending and changed == ["reports/130502-2023/index.html"]
    assert "本段为测试编辑" in preview.files[changed[0]].decode()
    assert all(preview.files[p] == before[p] for p in before if p != changed[0])
    while preview.pending:  # what `serve` does next: the rest of the site, then the search index
        preview.rebuild(defer=preview.quick)
    expected = full_build(project)
    assert preview.files == expected
    assert "本段为测试编辑" in expected["reports/130502-2023/index.html"].decode()


def test_an_edit_that_moves_a_report_is_built_in_full_at_once(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    replace_in(project.content_dir / REPORT, "year: 2023", "year: 2022")  # a new slug: lists change too
    preview.rebuild(defer=True)
    assert not preview.quick and not preview.failure
    while preview.pending:
        preview.rebuild(defer=preview.quick)
    assert preview.files == full_build(project)


def test_edited_report_renders_only_pages_that_depend_on_it(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    edit_report(project)
    preview.rebuild()
    rendered = set(preview.options.cache.stats.rendered)  # type: ignore[union-attr]
    assert "reports/130502-2023/index.html" in rendered
    assert OTHER_PAGE not in rendered  # another jurisdiction's report does not list this one
    assert "about/index.html" not in rendered and "years/2020/index.html" not in rendered
    other_reports = {p for p in preview.files if p.startswith("reports/")} - {"reports/130502-2023/index.html"}
    assert not rendered & other_reports


def test_template_edit_rerenders_only_pages_using_it(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    edit_template(project)
    changed = preview.rebuild()
    rendered = set(preview.options.cache.stats.rendered)  # type: ignore[union-attr]
    assert rendered and all(p.startswith(("years/2", "levels/")) for p in rendered), rendered
    assert "years/2023/index.html" in changed and OTHER_PAGE not in changed


def test_stylesheet_change_reloads_only_the_stylesheet(project: BuildOptions) -> None:
    preview = Preview(BuildOptions(**{**project.__dict__, "cache": BuildCache()}))
    preview.rebuild()
    edit_stylesheet(project)
    changed = preview.rebuild()
    assert changed == ["assets/site.css"]
    assert reload_message_paths(changed) == ["assets/site.css"]  # livereload swaps the stylesheet in place
    assert reload_message_paths(["assets/site.css", "index.html"]) == ["index.html"]  # whole page


def test_broken_front_matter_shows_error_page_and_recovers(project: BuildOptions) -> None:
    preview = Preview(project)
    preview.rebuild()
    page = "/reports/130502-2023/"
    assert preview.respond(page).status == 200
    good = (project.content_dir / REPORT).read_text(encoding="utf-8")
    replace_in(project.content_dir / REPORT, "year: 2023", "year: [2023")
    assert preview.rebuild()  # the report's page went away
    response = preview.respond(page)
    assert response.status == 500
    body = response.body.decode()
    where = re.escape(str(project.content_dir / REPORT))
    assert re.search(rf"{where}:\d+</code>: front matter is not valid YAML", body)
    assert preview.respond("/").status == 200  # the rest of the site is still served
    (project.content_dir / REPORT).write_text(good, encoding="utf-8")
    bump_mtime(project.content_dir / REPORT)
    preview.rebuild()
    assert preview.respond(page).status == 200 and preview.files == full_build(project)


def test_template_error_names_template_line_and_recovers(project: BuildOptions) -> None:
    preview = Preview(project)
    preview.rebuild()
    template = project.templates_dir / "list.html"
    good = template.read_text(encoding="utf-8")
    replace_in(template, "{% block main %}", "{% block main %}\n{% if %}")
    assert preview.rebuild() == ["*"]
    response = preview.respond("/years/2023/")
    assert response.status == 500
    line = good.splitlines().index("{% block main %}") + 2
    assert f"list.html:{line}</code>: template error" in response.body.decode()
    replace_in(template, "{% if %}", "{{ no_such_value.attribute }}")
    preview.rebuild()
    assert "list.html:" in preview.respond("/").body.decode()  # a render-time error is located too
    template.write_text(good, encoding="utf-8")
    bump_mtime(template)
    assert preview.rebuild() == ["*"]
    assert preview.respond("/years/2023/").status == 200 and not preview.failure


def test_broken_site_settings_show_error_page(project: BuildOptions) -> None:
    preview = Preview(project)
    preview.rebuild()
    replace_in(project.content_dir / "site.yml", "title: 法治政府建设年度报告", "title: [法治政府建设年度报告")
    preview.rebuild()
    body = preview.respond("/").body.decode()
    assert f"{project.content_dir / 'site.yml'}:" in body and "not valid YAML" in body


def test_requests_outside_the_site_are_refused(project: BuildOptions) -> None:
    preview = Preview(project)
    preview.rebuild()
    for path in ("/../pyproject.toml", "/assets/../../content/site.yml", "/%2e%2e/%2e%2e/etc/passwd",
                 "/%2E%2E%2fetc%2fpasswd", "/..%5c..%5cetc%5cpasswd", "//etc/passwd", "/etc/passwd",
                 str(ROOT / "pyproject.toml"), "/%00", "/assets/%2e%2e/index.html"):
        response = preview.respond(path)
        assert response.status in (400, 404), path
        assert b"root:" not in response.body and b"[project]" not in response.body
    assert preview.respond("/assets/site.css").status == 200
    assert preview.respond("/reports/130502-2023").location == "/reports/130502-2023/"


def test_livereload_client_is_only_in_served_pages(built_site: Path) -> None:
    assert all(b"livereload" not in p.read_bytes() for p in built_site.rglob("*.html"))
    page = (built_site / "index.html").read_bytes()
    served = inject_client(page, 8123)
    assert served.count(b'<script src="/livereload.js?port=8123"></script></head>') == 1
    assert b"script-src 'self'" in served  # the client is same-origin: allowed by the page's CSP


# ------------------------------------------------------------------------------------------------------
# The command


def _collect_lines(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    with contextlib.suppress(ValueError):  # the test closed the pipe while stopping the server
        for line in process.stdout:
            lines.append(line)


def start_serve(options: BuildOptions, *extra: str,
                collect: list[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`build.py serve` on a free port in a subprocess; returns (process, base URL). With `collect`,
    the server's later output lines are appended to it as they come (so its pipe never fills)."""
    command = [sys.executable, str(ROOT / "build.py"), "serve", "--port", "0", "--content", str(options.content_dir),
               "--no-cache", *extra]
    process = subprocess.Popen(command, cwd=options.templates_dir.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        if match:
            if collect is not None:
                threading.Thread(target=_collect_lines, args=(process, collect), daemon=True).start()
            return process, match.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError("serve did not print its URL")


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as given (no client-side normalising of ../)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_the_preview_learns_of_saves_from_the_file_system_not_of_reads(tmp_path: Path) -> None:
    """The server walks its inputs when the file system says one was written (inotify), not every 0.1 s:
    reading a file, as every build does, says nothing, nor does writing a hidden file or in a hidden folder
    (an editor's swap file, the build cache's); writing, adding, renaming onto or deleting an input does."""
    report = tmp_path / "content" / "reports" / "a.md"
    report.parent.mkdir(parents=True)
    report.write_text("---\n", encoding="utf-8")
    told = threading.Event()
    stop = watch_inputs([tmp_path / "content", tmp_path / "no-such-folder"], told.set)
    assert stop is not None

    def settled() -> None:  # the last change's events all in
        while told.wait(0.3):
            told.clear()

    try:
        report.read_text(encoding="utf-8")
        cache = tmp_path / "content" / ".reportsite-cache"  # the build cache, run in the content folder
        cache.mkdir()
        (cache / "x.pickle").write_bytes(b"x")
        swap = report.parent / ".a.md.swp"  # an editor that saves by renaming a hidden file onto the report
        swap.write_text("---\ntitle: y\n", encoding="utf-8")
        assert not told.wait(0.5)
        for change in (lambda: report.write_text("---\ntitle: x\n", encoding="utf-8"),
                       lambda: (report.parent / "b.md").write_text("", encoding="utf-8"),
                       lambda: swap.replace(report),
                       lambda: report.unlink()):
            settled()
            change()
            assert told.wait(5)
    finally:
        stop()


def test_serve_command_binds_loopback_refuses_traversal_and_stops_on_ctrl_c(project: BuildOptions) -> None:
    process, url = start_serve(project)
    try:
        status, body = raw_get(url, "/")
        assert status == 200 and b'<script src="/livereload.js?port=' in body
        status, body = raw_get(url, "/livereload.js")
        assert status == 200 and b"LiveReload" in body
        for path in ("/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd",
                     "/assets/..%2f..%2f..%2fpyproject.toml"):
            status, body = raw_get(url, path)
            assert status in (400, 404) and b"root:" not in body and b"[project]" not in body, path
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output
