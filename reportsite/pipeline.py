"""The build, step by step: load content -> derive views -> render -> check links -> write atomically."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .analysis_pages import render_analysis_pages, with_analysis
from .cache import (
    BuildCache,
    MemoRenderer,
    inputs_digest,
    previous_build,
    remember_build,
    remove_leftovers,
    write_site_keeping_unchanged,
)
from .config import SiteConfig, load_config
from .errors import Problem, ReportsiteError
from .links import check_links
from .model import Content, load_content
from .pages import render_index_pages
from .render import OutputFile, PageRenderer, SiteData, make_environment, render_reports
from .search import build_search_files, load_search_settings
from .topics import TopicRules, assign_topics, load_topics
from .writer import check_output_dir, write_site

PROJECT_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# Whole-site work that the live preview may finish just after reloading the page (cache.py `defer`).
DEFERRABLE = frozenset({build_search_files})


def project_path(name: str) -> Path:
    """templates/ or theme/ of the current folder when it has one, else of the reportsite checkout."""
    local = Path(name)
    return local if local.is_dir() else PROJECT_DIR / name


@dataclass(frozen=True)
class BuildOptions:
    content_dir: Path
    out_dir: Path
    base_url: str | None = None
    strict: bool = False
    templates_dir: Path = field(default_factory=lambda: project_path("templates"))
    theme_dir: Path = field(default_factory=lambda: project_path("theme"))
    cache: BuildCache | None = None  # incremental: redo only what changed since the last build (cache.py)


@dataclass(frozen=True)
class BuildResult:
    reports: int
    files: int
    problems: tuple[Problem, ...]
    seconds: float
    written: int | None = None  # files written anew; the others were kept from the previous site (with a cache)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _call(cache: BuildCache | None, function: Callable[..., T], *args: Any) -> T:
    """function(*args), remembered by the build cache when there is one (a pure function of its args)."""
    return cache.call(function, *args) if cache else function(*args)


def derive(content: Content, topic_rules: TopicRules, config: SiteConfig, cache: BuildCache | None = None) -> SiteData:
    topics = {r.slug: _call(cache, assign_topics, r, topic_rules) for r in content.reports}
    return SiteData(config=config, reports=content.reports, topic_rules=topic_rules, topics=topics)


def theme_files(theme_dir: Path) -> Iterator[OutputFile]:
    for path in sorted(theme_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield OutputFile("assets/" + path.relative_to(theme_dir).as_posix(), path.read_bytes())


def render_all(data: SiteData, options: BuildOptions) -> list[OutputFile]:
    env = make_environment(options.templates_dir)
    renderer = MemoRenderer(env, data, options.cache) if options.cache else PageRenderer(env, data)
    files = [*render_reports(renderer, data), *render_index_pages(renderer, data), *theme_files(options.theme_dir),
             *_call(options.cache, build_search_files, data, load_search_settings(options.content_dir)),
             *render_analysis_pages(renderer, data)]
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise ReportsiteError(Problem(f.path, 0, "two pages would be written to the same path",
                                          "give the reports distinct slugs"))
        seen.add(f.path)
    return files


def render_site(options: BuildOptions) -> tuple[Content, list[OutputFile]]:
    """Every step but writing: `build` writes the files, `serve` keeps them in memory."""
    cache = options.cache
    config = load_config(options.content_dir, options.base_url)
    if cache:
        cache.new_build()
    content = cache.load_content(options.content_dir) if cache else load_content(options.content_dir)
    problems = list(content.problems)
    if options.strict and problems:
        raise ReportsiteError(problems)
    data = derive(content, load_topics(options.content_dir), config, cache)
    data = with_analysis(data, options.content_dir, options.templates_dir)
    files = render_all(data, options)
    if cache:
        broken = cache.check_links(files)
    else:
        existing = {f.path for f in files}
        broken = check_links(((f.path, f.data) for f in files if f.path.endswith(".html")), existing)
    if broken:
        raise ReportsiteError(broken)
    if cache:
        cache.end_build(files)
    return content, files


def build(options: BuildOptions) -> BuildResult:
    started = time.perf_counter()
    check_output_dir(options.out_dir, [options.templates_dir, options.theme_dir, Path.cwd()], options.content_dir)
    cache = options.cache
    if cache:  # nothing changed since the last build into out_dir: nothing to do
        settings = (str(options.content_dir.resolve()), str(options.templates_dir.resolve()),
                    str(options.theme_dir.resolve()), options.base_url, options.strict)
        inputs = inputs_digest(cache.version, settings, [options.content_dir, options.templates_dir, options.theme_dir])
        done = previous_build(cache, inputs, options.out_dir)
        if done is not None:
            remove_leftovers(options.out_dir)  # of a killed build
            cache.new_build()
            return BuildResult(*done, seconds=time.perf_counter() - started, written=0)
    content, files = render_site(options)
    written = None
    if cache:
        written = write_site_keeping_unchanged(options.out_dir, files).written
        count = len(files)
        remember_build(cache, inputs, options.out_dir, (len(content.reports), count, content.problems))
    else:
        count = write_site(options.out_dir, ((f.path, f.data) for f in files))
    return BuildResult(len(content.reports), count, content.problems, time.perf_counter() - started, written)
