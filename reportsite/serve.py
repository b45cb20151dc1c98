"""`build.py serve`: build the site into memory, serve it with live reload, rebuild what changed on save.

The site is kept in memory (nothing is written to --out). A save under content/, templates/ or theme/
triggers a rebuild through the same pipeline as `build`, with a BuildCache so that only the pages whose
inputs changed are rendered again (cache.py); the browser is then told to reload by the `livereload`
package's protocol: a page reload, or, when only stylesheets changed, a stylesheet swap in place.

We use livereload's WebSocket handler and its client script, but not its `Server`: that injects an
inline <script>, which the site's Content-Security-Policy (`script-src 'self'`) blocks, and it ignores
changes for 3 s after each reload. Here the client is loaded as `<script src="/livereload.js">` from
this server (same origin, so the CSP allows it) and only in served pages, never in `build` output.

A bad edit never stops the server: a build error (broken YAML in site.yml/topics.yml, a template error,
a broken link) is shown instead of every page, and a report whose front matter is broken is shown as
an error page at its address, each naming `path:line` and the message; fixing the file recovers.
"""

from __future__ import annotations

import argparse
import html
import mimetypes
import os
import threading
import time
import warnings
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .cache import BuildCache
from .errors import Problem, ReportsiteError, print_problems
from .pipeline import DEFERRABLE, BuildOptions, render_edited_reports, render_site_data
from .render import SiteData, problem_of, report_path
from .stamps import input_stamps

POLL_SECONDS = 0.1  # how often the inputs are walked when the file system gives no events
EVENTS_POLL_SECONDS = 2.0  # ...and when it does: in case one is missed (a network file system, say)
EVENTS_SETTLE_SECONDS = 0.02  # the events of one save (several each) come together, then one walk
_WRITE_EVENTS = {"created", "deleted", "modified", "moved", "closed"}  # not opened or closed unwritten
RELOAD_GRACE_SECONDS = 1.0  # after showing an edited page, before rebuilding the rest (shares the GIL)
SEARCH_INDEX = "search/idx/"  # fetched by the search page on demand: no page reload when only it changes
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'")
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
         ".xml": "application/xml", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
         ".txt": "text/plain", ".woff2": "font/woff2"}


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    location: str | None = None


class Preview:
    """The site in memory, rebuilt incrementally; answers requests for it."""

    def __init__(self, options: BuildOptions):
        if options.cache is None:
            options = BuildOptions(**{**options.__dict__, "cache": BuildCache()})
        options.cache.deferrable = DEFERRABLE  # type: ignore[union-attr]
        self.options = options
        self.files: dict[str, bytes] = {}
        self.failure: list[Problem] = []  # the last build failed: shown instead of every page
        self.problems: tuple[Problem, ...] = ()  # reports left out of the last build
        self.page_of_file: dict[str, str] = {}  # content file -> its report page, as last built
        self.seconds = 0.0
        self.last_data: SiteData | None = None  # of the last full build: edited reports are shown against it
        self.stamps: dict[str, tuple[int, int]] = {}  # inputs as the last full build read them
        self.quick = False  # the last rebuild showed edited report pages only: rebuild to finish
        # Pages rendered on their own (quick) since the last full build: site path -> (content file, its
        # stamp then, bytes). A full build that read an older version of the file keeps them.
        self.overrides: dict[str, tuple[str, tuple[int, int] | None, bytes]] = {}
        self.lock = threading.Lock()  # quick renders (server thread) and full builds (builder thread)

    # -- building ----------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """The last rebuild left work for the next: the search index, or all but the edited report pages."""
        return self.quick or bool(self.options.cache and self.options.cache.pending)

    def rebuild(self, defer: bool = False) -> list[str]:
        """Build again; returns the site paths whose bytes changed (added, changed or removed), or
        ["*"] when the build failed or recovered (every page changes then). With `defer`, slow
        whole-site work may be left for the next rebuild (see `pending`): when only report files were
        edited, their pages are rendered first, on their own; else the search index is brought up to
        date after the rest of the site."""
        if defer and not self.quick:  # after a quick rebuild comes a full one
            quick = self._edited_reports_only()
            if quick is not None:
                return quick
        started = time.perf_counter()
        failed_before = bool(self.failure)
        assert self.options.cache is not None
        self.options.cache.defer = defer
        self.quick = False
        stamps = self._input_stamps()
        try:
            content, data, files = render_site_data(self.options)
        except ReportsiteError as exc:
            self.failure = list(exc.problems)
        except Exception as exc:  # a template error or a bug must not stop the preview
            self.failure = [problem_of(exc)]
        else:
            with self.lock:
                self.failure = []
                self.problems = content.problems
                self.last_data, self.stamps = data, stamps
                for report in content.reports:
                    self.page_of_file[report.path] = report_path(report) + "index.html"
                new = {f.path: f.data for f in files}
                for path, (source, stamp, page) in list(self.overrides.items()):
                    if stamps.get(source) == stamp or path not in new:
                        del self.overrides[path]  # this build read that version of the file, or a later one
                    else:
                        new[path] = page  # edited again while this build ran: the newer page stays
                changed = sorted(p for p in new.keys() | self.files.keys() if new.get(p) != self.files.get(p))
                self.files = new
        finally:
            self.seconds = time.perf_counter() - started
        if self.failure or failed_before:
            return ["*"]
        return changed

    def _input_stamps(self) -> dict[str, tuple[int, int]]:
        o = self.options
        return input_stamps([o.content_dir, o.templates_dir, o.theme_dir])

    def _edited_reports_only(self) -> list[str] | None:
        """When the only change since the last full build is the text of existing report files: render
        their pages now (a full rebuild must follow: `pending`) and return the changed paths; else None.
        Safe to call while a full build runs in another thread (`serve` does, when the editor saves
        again meanwhile)."""
        last, stamps = self.last_data, self.stamps
        if last is None or self.failure:
            return None
        started = time.perf_counter()
        now = self._input_stamps()
        edited = [path for path, stamp in now.items() if stamps.get(path) != stamp]
        if not edited or now.keys() != stamps.keys() or any(p not in self.page_of_file for p in edited):
            return None
        try:
            files = render_edited_reports(last, self.options, [Path(p) for p in edited])
        except Exception:  # noqa: BLE001 - the full rebuild will report it properly
            return None
        if files is None:
            return None
        source_of = {page: source for source, page in self.page_of_file.items()}
        with self.lock:
            changed = [f.path for f in files if self.files.get(f.path) != f.data]
            for f in files:
                source = source_of.get(f.path, "")
                self.overrides[f.path] = (source, now.get(source), f.data)
                self.files[f.path] = f.data
            self.quick = True
        self.seconds = time.perf_counter() - started
        return changed

    def show_edited_reports(self) -> list[str] | None:
        """The quick part of a rebuild on its own (see _edited_reports_only)."""
        return self._edited_reports_only()

    # -- answering ---------------------------------------------------------------------------------

    def respond(self, raw_path: str) -> Response:
        """The response for a request path as sent by the browser (percent-encoded)."""
        path = unquote(urlsplit(raw_path).path, errors="strict")
        parts = path.split("/")
        if not path.startswith("/") or "\\" in path or "\0" in path or any(p in (".", "..") for p in parts):
            return Response(400, "text/plain; charset=utf-8", b"bad path\n")
        site_path = "/".join(p for p in parts if p)
        if path.endswith("/") and site_path:
            site_path += "/"
        if site_path == "" or site_path.endswith("/"):
            site_path += "index.html"
        elif site_path not in self.files and site_path + "/index.html" in self.files:
            return Response(301, "text/plain; charset=utf-8", b"", location="/" + site_path + "/")
        is_page = site_path.endswith(".html")
        if self.failure and is_page:
            return Response(500, "text/html; charset=utf-8", error_page("构建失败", self.failure))
        if site_path in self.files:
            return Response(200, content_type(site_path), self.files[site_path])
        left_out = [p for p in self.problems if p.severity == "error" and self.page_of_file.get(p.path) == site_path]
        if left_out:
            return Response(500, "text/html; charset=utf-8", error_page("报告有误，未能生成本页", left_out))
        if is_page and self.problems:
            return Response(404, "text/html; charset=utf-8", error_page("页面不存在；以下报告有误", self.problems))
        return Response(404, "text/html; charset=utf-8", self.files.get("404.html", b"<h1>404</h1>"))


def content_type(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    kind = TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    return kind + "; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "xml")) else kind


def error_page(title: str, problems: list[Problem] | tuple[Problem, ...]) -> bytes:
    items = "".join(f"<li><code>{html.escape(p.path)}:{p.line}</code>: {html.escape(p.message)}；"
                    f"{html.escape(p.hint)}</li>\n" for p in problems)
    return (f'<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f'<title>{html.escape(title)} - 预览</title>\n<link rel="stylesheet" href="/assets/site.css">\n</head>\n'
            f'<body>\n<main class="wrap build-error">\n<h1>{html.escape(title)}</h1>\n'
            f'<p>修改下列文件并保存，页面会自动刷新。</p>\n<ul class="problems">\n{items}</ul>\n'
            "</main>\n</body>\n</html>\n").encode()


def inject_client(body: bytes, port: int) -> bytes:
    """Load livereload's client from this server (CSP `script-src 'self'` allows it; no inline script)."""
    tag = f'<script src="/livereload.js?port={port}"></script>'.encode()
    return body.replace(b"</head>", tag + b"</head>", 1)


# ------------------------------------------------------------------------------------------------------
# Watching


def reload_message_paths(changed: list[str]) -> list[str]:
    """What to tell livereload: the stylesheets (reloaded in place) when only stylesheets changed,
    else one path that makes the client reload the page."""
    if not changed:
        return []
    if all(p.endswith(".css") for p in changed):
        return changed
    return ["*" if changed == ["*"] else next((p for p in changed if not p.endswith(".css")), changed[0])]


# ------------------------------------------------------------------------------------------------------
# Server


def watch_inputs(roots: list[Path], changed: Callable[[], None]) -> Callable[[], None] | None:
    """Call `changed` (from another thread) whenever a file under the roots is written, created, deleted or
    moved, as the file system tells (inotify on Linux, by the watchdog package): an idle server then walks
    no folder (at 10,000 reports, a 40 ms walk every 0.1 s kept half a core busy). Returns the
    function that stops watching, or None when the file system gives no events here (the server polls)."""
    try:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        return None

    class Written(FileSystemEventHandler):
        def __init__(self, root: Path):
            self.root = root

        def on_any_event(self, event: FileSystemEvent) -> None:
            # our own builds read the files: no change; nor is a write to a hidden file or folder (the build
            # cache's, when the server runs in the content folder), which is no input (cache.input_stamps);
            # a folder's "modified" comes with an event of the file added or removed in it
            paths = [str(event.src_path), str(getattr(event, "dest_path", "") or event.src_path)]  # moved: both
            if (event.event_type in _WRITE_EVENTS and not (event.is_directory and event.event_type == "modified")
                    and not all(_hidden(self.root, path) for path in paths)):
                changed()

    # watchdog warns when a folder made at once with its subfolders (the build cache's, in the content
    # folder) gets a watch twice; nothing is lost by it
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    observer = Observer()
    try:
        for root in roots:
            if root.is_dir():
                observer.schedule(Written(root), str(root), recursive=True)
        observer.start()
    except OSError:  # no more inotify watches, say
        return None

    def stop() -> None:
        observer.stop()
        observer.join(timeout=2)

    return stop


def _hidden(root: Path, path: str) -> bool:
    try:
        return any(part.startswith(".") for part in Path(path).relative_to(root).parts)
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    from livereload.handlers import LiveReloadHandler, LiveReloadJSHandler
    from livereload.watcher import Watcher
    from tornado import httpserver, ioloop, netutil, web

    from .cli import CACHE_DIR
    from .pipeline import project_path

    cache_dir = None if args.no_cache else Path(CACHE_DIR)
    options = BuildOptions(Path(args.content), Path(args.out), args.base_url, args.strict,
                           templates_dir=project_path("templates"), theme_dir=project_path("theme"),
                           cache=BuildCache(cache_dir))
    preview = Preview(options)
    started = time.perf_counter()
    preview.rebuild(defer=True)  # the pages first: the search index is built once the server is up
    report_build(preview, "built", len(preview.files))
    sockets = netutil.bind_sockets(args.port, args.host)
    port = sockets[0].getsockname()[1]

    class SiteHandler(web.RequestHandler):
        def get(self) -> None:
            self._answer(head=False)

        def head(self) -> None:
            self._answer(head=True)

        def _answer(self, head: bool) -> None:
            try:
                response = preview.respond(self.request.path)
            except UnicodeDecodeError:
                response = Response(400, "text/plain; charset=utf-8", b"bad path\n")
            self.set_status(response.status)
            self.set_header("Content-Type", response.content_type)
            self.set_header("Cache-Control", "no-store")
            if response.location:
                self.set_header("Location", response.location)
            body = response.body
            if response.content_type.startswith("text/html"):
                body = inject_client(body, port)
            if not head:
                self.write(body)

    LiveReloadHandler.watcher = Watcher()  # only read for its log line
    LiveReloadHandler.live_css = True
    app = web.Application([(r"/livereload", LiveReloadHandler), (r"/livereload\.js", LiveReloadJSHandler),
                           (r".*", SiteHandler)])
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{port}/"
    print(f"serving {url} (started in {time.perf_counter() - started:.2f} s; Ctrl-C to stop)", flush=True)

    roots = [options.content_dir, options.templates_dir, options.theme_dir]
    state = {"snapshot": input_stamps(roots), "busy": False, "again": False, "due": False}
    loop = ioloop.IOLoop.current()
    builder = ThreadPoolExecutor(1, thread_name_prefix="rebuild")  # requests are answered meanwhile

    def notify(changed: list[str]) -> None:
        for path in reload_message_paths(changed):
            LiveReloadHandler.reload_waiters(path)

    def rebuild() -> None:
        try:
            changed = preview.rebuild(defer=True)
            report_build(preview, "rebuilt edited report pages" if preview.quick else "rebuilt", len(changed))
            loop.add_callback(notify, changed)
            if preview.quick:  # let the browser reload first: this thread's work would slow the server's
                time.sleep(RELOAD_GRACE_SECONDS)
            while preview.pending:  # the rest of the site, then the search index, after the page reloaded
                quick = preview.quick
                changed = preview.rebuild(defer=quick)
                report_build(preview, "rebuilt" if quick else "search index updated", len(changed), problems=quick)
                if any(not p.startswith(SEARCH_INDEX) for p in changed):
                    loop.add_callback(notify, changed)
        finally:
            loop.add_callback(finished)

    def complete() -> None:  # what the first build left: the search index
        try:
            changed = preview.rebuild()
            report_build(preview, "search index built", len(changed), problems=False)
        finally:
            loop.add_callback(finished)

    def finished() -> None:  # on the server's thread, as poll(): no race on `state`
        state["busy"] = False
        if state["again"]:  # saved again while that build ran
            start_rebuild()
        else:
            print("up to date", flush=True)

    def start_rebuild() -> None:
        state["busy"], state["again"] = True, False
        builder.submit(rebuild)

    def poll() -> None:
        now = input_stamps(roots)
        if now == state["snapshot"]:
            return
        state["snapshot"] = now
        if not state["busy"]:
            start_rebuild()
            return
        state["again"] = True  # a full build follows the running one; the edited pages are shown now
        changed = preview.show_edited_reports()
        if changed is not None:
            print(f"rebuilt edited report pages in {preview.seconds:.2f} s: {len(changed)} files changed", flush=True)
            notify(changed)

    def settled() -> None:
        state["due"] = False
        poll()

    def soon() -> None:  # on the server's thread: one walk for the events of one save
        if not state["due"]:
            state["due"] = True
            loop.call_later(EVENTS_SETTLE_SECONDS, settled)

    stop_watching = watch_inputs(roots, lambda: loop.add_callback(soon))
    watcher = ioloop.PeriodicCallback(poll, (EVENTS_POLL_SECONDS if stop_watching else POLL_SECONDS) * 1000)
    watcher.start()
    if preview.pending:
        state["busy"] = True
        builder.submit(complete)
    if args.open:
        webbrowser.open(url)
    try:
        loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        if stop_watching:
            stop_watching()
        watcher.stop()
        server.stop()
        builder.shutdown(wait=False, cancel_futures=True)
        print("stopped", flush=True)
    return 0


def report_build(preview: Preview, verb: str, count: int, problems: bool = True) -> None:
    if problems:
        print_problems(preview.failure or preview.problems)
    if preview.failure:
        print(f"build failed in {preview.seconds:.2f} s; showing the error in the browser", flush=True)
    else:
        what = "files" if verb == "built" else "files changed"
        print(f"{verb} in {preview.seconds:.2f} s: {count} {what}", flush=True)
