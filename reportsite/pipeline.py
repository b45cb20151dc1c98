"""The build, step by step: load content -> derive views -> render -> check links -> write atomically."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import SiteConfig, load_config
from .errors import Problem, ReportsiteError
from .links import check_links
from .model import Content, load_content
from .pages import render_index_pages
from .render import OutputFile, PageRenderer, SiteData, make_environment, render_reports
from .topics import TopicRules, assign_topics, load_topics
from .writer import check_output_dir, write_site

PROJECT_DIR = Path(__file__).resolve().parent.parent


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


@dataclass(frozen=True)
class BuildResult:
    reports: int
    files: int
    problems: tuple[Problem, ...]
    seconds: float

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def derive(content: Content, topic_rules: TopicRules, config: SiteConfig) -> SiteData:
    topics = {r.slug: assign_topics(r, topic_rules) for r in content.reports}
    return SiteData(config=config, reports=content.reports, topic_rules=topic_rules, topics=topics)


def theme_files(theme_dir: Path) -> Iterator[OutputFile]:
    for path in sorted(theme_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield OutputFile("assets/" + path.relative_to(theme_dir).as_posix(), path.read_bytes())


def render_all(data: SiteData, options: BuildOptions) -> list[OutputFile]:
    renderer = PageRenderer(make_environment(options.templates_dir), data)
    files = [*render_reports(renderer, data), *render_index_pages(renderer, data), *theme_files(options.theme_dir)]
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise ReportsiteError(Problem(f.path, 0, "two pages would be written to the same path",
                                          "give the reports distinct slugs"))
        seen.add(f.path)
    return files


def build(options: BuildOptions) -> BuildResult:
    started = time.perf_counter()
    config = load_config(options.content_dir, options.base_url)
    check_output_dir(options.out_dir, [options.templates_dir, options.theme_dir, Path.cwd()], options.content_dir)
    content = load_content(options.content_dir)
    problems = list(content.problems)
    if options.strict and problems:
        raise ReportsiteError(problems)
    data = derive(content, load_topics(options.content_dir), config)
    files = render_all(data, options)
    existing = {f.path for f in files}
    broken = check_links(((f.path, f.data) for f in files if f.path.endswith(".html")), existing)
    if broken:
        raise ReportsiteError(broken)
    count = write_site(options.out_dir, ((f.path, f.data) for f in files))
    return BuildResult(len(content.reports), count, tuple(problems), time.perf_counter() - started)
