"""The build, step by step: load content -> derive views -> render -> check links -> write atomically."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from itertools import islice
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import divisions as dv
from .cache import (
    BuildCache,
    DiskStore,
    Fingerprinter,
    KeptPage,
    LinksLost,
    MemoRenderer,
    PageEntry,
    PreviousSite,
    Progress,
    file_digest,
    inputs_digest,
    known_file_digests,
    pickled_problems,
    previous_build,
    remember_build,
    remove_leftovers,
    settings_digest,
    site_as_left,
    site_key,
)
from .config import SiteConfig, load_config
from .errors import Problem, ReportsiteError
from .indexpatch import IndexState, index_state, patched_plan, read_state, write_state
from .links import check_pages, pages_to_check
from .model import (
    Content,
    Earlier,
    Report,
    ReportWork,
    content_files,
    found_content_files,
    load_content,
    parse_file,
    work_args,
)
from .render import (
    KEY_LATER,
    OutputFile,
    Page,
    PageCollector,
    PageRenderer,
    PendingPage,
    SiteData,
    make_environment,
    render_reports,
)
from .renderpool import (
    Previous,
    RenderedPage,
    digest_of,
    finish_page,
    no_previous,
    render_pages,
)
from .search import (
    INDEX_DIR,
    IndexChange,
    IndexedSection,
    IndexMemo,
    IndexPlan,
    SearchInput,
    SearchPiece,
    SearchSettings,
    Segmenter,
    build_search_files,
    changed_terms,
    index_files_digest,
    input_columns,
    input_of_columns,
    load_search_settings,
    made_search_files,
    patched_input,
    piece_shape,
    plan_digest,
    plan_index,
    planned_index,
    search_input,
    search_input_of,
    search_piece,
    sections_of_reports,
    write_index,
)
from .stamps import Lookahead, input_stamps, project_path, stamps_digest
from .topics import TopicRules, assign_topics, load_topics
from .workers import (
    PARALLEL_MIN,
    Afterwards,
    ChildJob,
    child_job_possible,
    collections_paused,
    return_freed_memory,
)
from .writer import (
    check_output_dir,
    discard_staging,
    finish_patch,
    finish_staging,
    is_patch,
    link_into,
    make_folders,
    start_patch,
    start_staging,
    write_into,
)

T = TypeVar("T")
if TYPE_CHECKING:  # the views of analysis and lists: imported where used, after the spare child is forked
    from .analysis_pages import Memo
# Whole-site work that the live preview may finish just after reloading the page (cache.py `defer`).
DEFERRABLE = {build_search_files: ()}  # function -> stand-in until its first result


@dataclass(frozen=True)
class IndexChild:
    """The search index, being made by a child process; `instead` makes it here if the child could not (it
    lacked the last input it was sent changes to, see index_input)."""

    child: ChildJob
    instead: Callable[[], list[RenderedPage]] | None = None

    def running(self) -> bool:
        return self.child.running()

    def result(self) -> list[RenderedPage]:
        made = self.child.result()
        if made is None and self.instead:
            return self.instead()
        return made

    def stop(self) -> None:
        self.child.stop()

    def finish(self) -> None:
        self.child.finish()


# the search index of a big site: made by a child process, or kept from the last site (search_apart)
SearchApart = IndexChild | list[KeptPage] | None


@dataclass(frozen=True)
class BuildOptions:
    content_dir: Path
    out_dir: Path
    base_url: str | None = None
    strict: bool = False
    templates_dir: Path = field(default_factory=lambda: project_path("templates"))
    theme_dir: Path = field(default_factory=lambda: project_path("theme"))
    cache: BuildCache | None = None  # incremental: redo only what changed since the last build (cache.py)
    # the child that takes the input stamps and checks the site while the command imports (stamps.py)
    look: Lookahead | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BuildResult:
    reports: int
    files: int
    problems: tuple[Problem, ...]
    seconds: float
    written: int | None = None  # files written anew; the others were kept from the previous site (with a cache)
    steps: tuple[tuple[str, float, float], ...] = ()  # (step, seconds, peak MB), for `build --timings`

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class Steps:
    """Wall time of each step of a build, and the build process's peak memory (MB) at its end."""

    def __init__(self) -> None:
        self.seconds: list[tuple[str, float, float]] = []
        self._last = time.perf_counter()

    def done(self, step: str) -> None:
        import resource

        now = time.perf_counter()
        self.seconds.append((step, now - self._last, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
        self._last = now


def memo_of(content: Content, work: Sequence[ReportWork], cache: BuildCache | None) -> Memo:
    """A call that takes the per-report work done as the reports were loaded (`content.derived`: parsed, or
    kept by the build cache) instead of doing it again; other calls go to the build cache's `call`, if any."""
    slot = {function: (i, args) for i, (function, args) in enumerate(work)}
    other = cache.call if cache else None

    def call(function: Callable[..., T], *args: Any) -> T:
        found = slot.get(function)
        if found is not None and args:
            done = content.derived.get(getattr(args[0], "path", None))  # type: ignore[arg-type]
            if done and _same(args[1:], work_args(found[1], done)):
                return done[found[0]]
        return other(function, *args) if other else function(*args)

    return call


def _same(args: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    return len(args) == len(expected) and all(a is b for a, b in zip(args, expected, strict=True))


def derive(content: Content, topic_rules: TopicRules, config: SiteConfig, cache: BuildCache | None = None,
           call: Memo | None = None) -> SiteData:
    from .pages import topic_views

    call = call or memo_of(content, (), cache)
    topics = {r.slug: call(assign_topics, r, topic_rules) for r in content.reports}
    views = {r.slug: call(topic_views, r, topics[r.slug]) for r in content.reports}
    return SiteData(config=config, reports=content.reports, topic_rules=topic_rules, topics=topics,
                    topic_views=views)


def theme_files(theme_dir: Path) -> Iterator[OutputFile]:
    for path in sorted(theme_dir.rglob("*")):  # not hidden files, nor those in hidden folders: no input
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(theme_dir).parts):
            yield OutputFile("assets/" + path.relative_to(theme_dir).as_posix(), path.read_bytes())


def make_renderer(data: SiteData, options: BuildOptions) -> PageRenderer:
    """Collects the site's pages; with a cache, pages whose inputs did not change are kept instead."""
    env = make_environment(options.templates_dir, options.cache.templates_bytecode() if options.cache else None)
    return MemoRenderer(env, data, options.cache) if options.cache else PageCollector(env, data)


def render_all(data: SiteData, options: BuildOptions, renderer: PageRenderer,
               apart: SearchApart = None) -> list[Page | KeptPage]:
    """Every file of the site: finished files, pages to render and pages kept from the last build. The
    search index is made here unless it is made or kept apart (see search_apart)."""
    from .analysis_pages import render_analysis_pages
    from .pages import render_index_pages

    if apart is None:
        view, settings = search_view(data), load_search_settings(options.content_dir)
        cache = options.cache
        keep = functools.partial(kept_search_bytes, previous=cache.previous_site(INDEX_DIR)) if cache else None
        search: list[OutputFile] | list[KeptPage] = (
            cache.call(build_search_files, view, settings, helper=IndexMemo(cache.store, cache.version, keep))
            if cache else build_search_files(view, settings))
    else:
        search = apart if isinstance(apart, list) else []  # a child writes it
    items = [*render_reports(renderer, data), *render_index_pages(renderer, data), *theme_files(options.theme_dir),
             *search, *render_analysis_pages(renderer, data)]
    seen: set[str] = set()
    for f in items:
        if f.path.startswith("/") or ".." in f.path.split("/"):  # written by workers straight into staging
            raise ReportsiteError(Problem(f.path, 0, "output path escapes the site folder", "check slugs and paths"))
        if f.path in seen:
            raise ReportsiteError(Problem(f.path, 0, "two pages would be written to the same path",
                                          "give the reports distinct slugs"))
        seen.add(f.path)
    return items


@dataclass
class Made:
    files: list[RenderedPage]  # every file of the site, in order
    written: int = 0  # files whose bytes were written anew (the others were taken over unchanged)


def produce(items: list[Page | KeptPage], renderer: PageRenderer, cache: BuildCache | None,
            staging: Path | None, beside: IndexChild | None = None) -> Made:
    """Render the pending pages (in a pool when there are many; here while the job `beside` runs), take
    over the kept ones, and write everything into `staging` (`build`), or keep the bytes in memory (`serve`,
    staging None)."""
    # The few big index pages first: started last, one of them would keep a worker busy after the rest.
    pending = sorted((i for i in items if isinstance(i, PendingPage)), key=lambda p: p.template == "report.html")
    if staging is not None and not is_patch(staging):
        make_folders(staging, (item.path for item in items))
    progress = cache.progress if cache else Progress()
    progress.start("生成页面", len(pending))
    previous = cache.unchanged_file if cache and staging else no_previous
    busy = beside.running if beside else lambda: False
    rendered = {r.path: r for r in render_pages(renderer, pending, staging, progress.advance, previous, busy)}
    progress.done()
    made = Made([])
    for item in items:
        if isinstance(item, PendingPage):
            made.files.append(rendered[item.path])
            made.written += rendered[item.path].written
            continue
        entry = (item.entry if isinstance(item, KeptPage)
                 else cache.reusable(item.path, digest=digest_of(item.data)) if cache else None)
        if entry is not None:
            kept = take_over(item.path, entry, cache, staging)
            # a file made again with the same bytes: kept, under its new key
            made.files.append(kept if isinstance(item, KeptPage) else kept._replace(key=item.key))
        else:
            assert isinstance(item, OutputFile)
            made.files.append(finish_page(item, staging))
            made.written += 1
    if cache:
        cache.stats.rendered += [p.path for p in pending if rendered[p.path].key is not None]
        cache.stats.uncached += sum(1 for p in pending if p.key == KEY_LATER and rendered[p.path].key is None)
    return made


def take_over(path: str, entry: PageEntry, cache: BuildCache | None, staging: Path | None) -> RenderedPage:
    """A file the last build made, unchanged: hard-linked from the previous site (keeping its inode and
    timestamp, costing no write), or copied where links are not possible."""
    if staging is not None:
        if entry.data is not None:
            write_into(staging, path, entry.data)
        else:
            assert cache is not None and cache.site is not None
            old = os.path.join(cache.site, path)
            if not link_into(staging, path, old):
                shutil.copy2(old, staging / path)
    return RenderedPage(path, entry.digest, entry.links, entry.data, written=False, key=entry.key)


def search_apart(data: SiteData, options: BuildOptions, staging: Path, spare: ChildJob | None) -> SearchApart:
    """On a big site, the search index apart from the pages: made into `staging` by a child process while
    the pages are rendered, its one-process steps then overlapping the rendering (by `spare`, forked before
    the site was loaded, when there is one: see spare_child); or, when the cache has the index of these
    inputs and the last site still holds its files, those files, kept. None: it is made with the pages (a
    small site, one core, a process with threads)."""
    if len(data.reports) < PARALLEL_MIN or not child_job_possible():
        return None
    settings = load_search_settings(options.content_dir)
    cache = options.cache
    data = search_view(data)
    # the cache keeps the (path, digest) of each file the index was written to, not their bytes
    key, written = cache.stored(made_search_files, data, settings) if cache else (None, None)
    if cache and written:
        kept = [KeptPage(path, entry) for path, digest in written
                if (entry := cache.reusable(path, digest=digest)) is not None]
        if len(kept) == len(written):
            return kept
    previous = cache.previous_site(INDEX_DIR) if cache else None
    memo = IndexMemo(cache.disk, cache.version, functools.partial(kept_search_file, staging=staging, previous=previous),
                     functools.partial(kept_search_bytes, previous=previous),
                     {path: (entry.key, entry.digest) for path, entry in previous.pages.items()}
                     ) if cache and cache.disk and previous else None
    job = (settings, staging, previous.unchanged_file if previous else no_previous, cache.disk if cache else None,
           key, memo)
    if spare and cache and cache.disk:
        disk, store = cache.disk, _input_store_key(options.out_dir)

        def instead() -> list[RenderedPage]:  # the kept input is unreadable: made again by the next build
            disk.remove(INPUT, store)
            return write_search_files(search_input(data), *job)

        given = index_input(data, cache, disk, store)
        return IndexChild(spare.start(write_search_files_given, given, *job, store, cache.version), instead)
    source = search_input(data)
    return IndexChild(spare.start(write_search_files, source, *job) if spare
                      else ChildJob(write_search_files, source, *job))


def spare_child(options: BuildOptions, edited: Sequence[str] | None = None,
                told: Connection | None = None) -> ChildJob | None:
    """A child process forked before the site is loaded, for the search index of a big site (search_apart):
    its input is then sent to it. A child forked later would share the parent's pages of 10,000 loaded
    reports only until the parent touched them, then hold its own copy: 0.7 GB more at a rebuild's peak.
    With a build cache, the child reads the last build's index input meanwhile (speculate_index; `edited`:
    the content files edited since the last build, when the parent knows them, or sent through `told`)."""
    big = sum(1 for _ in islice(found_content_files(options.content_dir), PARALLEL_MIN)) == PARALLEL_MIN
    if not big or not child_job_possible():
        return None
    disk = options.cache.disk if options.cache else None
    return ChildJob.spare(functools.partial(speculate_index, disk, _input_store_key(options.out_dir),
                                            options.content_dir, options.cache.version, edited, told)
                          if disk else None)


def early_spare_child(options: BuildOptions) -> tuple[ChildJob, Connection] | None:
    """The spare child of a build with a cache, forked before the parent looks for the files edited since the
    last build (input_stamps, quick_candidates: 0.1-0.2 s at 10,000 reports), and the pipe to send them
    through (tell_spare). Meanwhile the child reads the last build's index input and loads rjieba."""
    if options.cache is None or options.cache.disk is None:
        return None
    told, tell = Pipe(duplex=False)
    child = spare_child(options, told=told)
    told.close()
    if child is None:
        tell.close()
        return None
    return child, tell


def drop_spare(early: tuple[ChildJob, Connection] | None) -> None:
    """The early spare child, not needed: stopped at once (it only reads)."""
    if early:
        early[1].close()
        early[0].stop(grace=0)


def tell_spare(early: tuple[ChildJob, Connection], edited: Sequence[str] | None) -> ChildJob:
    """The early spare child, sent the content files edited since the last build (None: not known)."""
    child, tell = early
    with suppress(OSError):  # the child ended: it speculates nothing
        tell.send(edited)
    tell.close()
    return child


def write_search_files(source: SearchInput, settings: SearchSettings, staging: Path, previous: Previous,
                       disk: DiskStore | None, key: bytes | None, memo: IndexMemo | None,
                       plan: IndexPlan | None = None, change: IndexChange | None = None) -> list[RenderedPage]:
    """The search index (of `plan`, when it is planned already; `change`: since the last site's, see
    write_index), written into `staging` by the workers that make its files. The cache keeps where, and
    (memo) how the index's ranges of sections were counted."""
    made = write_index(plan or plan_index(source, settings, memo),
                       functools.partial(finish_page, staging=staging, previous=previous), memo, change)
    if disk and key:
        disk.put_result(key, tuple((page.path, page.digest) for page in made))
    return made


# -- the index's input, kept for the next build -----------------------------------------------------------
# Making the index's input of 10,000 reports (search_input) and sending it to the child took the parent 2 s
# of a rebuild. The child keeps the input it was given, headed by a key per report (of its file and the
# topic rules, report_key) and its piece's shape (piece_shape), in one file; the next build's spare child
# reads it back while the parent loads the site (and plans the index when it can tell what the parent will
# send, speculate_index), and the parent, having read the head only, sends only the pieces of the reports
# whose keys changed: the child replaces their texts when their shapes did not change, else it gets the
# whole input.
INPUT = "index-input"


@dataclass(frozen=True)
class IndexInputKeys:
    keys: list[bytes]  # per report (report_key)
    shapes: list[bytes]  # per report, piece_shape
    paths: list[str]  # per report, its content file
    plan: bytes = b""  # of the index made of this input (plan_digest)...
    files: bytes = b""  # ...and of its files (index_files_digest): the site holds it while its files are these


@dataclass(frozen=True)
class LastIndexInput:
    """The input the last build kept: the whole input (INPUT, of keys `base`) and the pieces edited since
    (KeptEdits). The input with the edits (`source`) is made only when asked for: a rebuild patches the
    whole input with the edits and its own changes at once (with_changes), one copy of 86 MB, not two."""

    keys: IndexInputKeys
    original: SearchInput  # the whole input kept: the input of the kept state's plan (planned)
    base: bytes = b""  # input_id of its keys
    edits: dict[int, SearchPiece] = field(default_factory=dict)

    @functools.cached_property
    def source(self) -> SearchInput:
        return patched_input(self.original, self.edits) if self.edits else self.original

    def with_changes(self, changed: dict[int, SearchPiece]) -> SearchInput:
        """The input with the edits and these changes (report number -> its new piece, of the same shape)."""
        return patched_input(self.original, {**self.edits, **changed})

    def old_body(self, section: IndexedSection) -> str:
        """A section's text in the last input (`source`), without making it."""
        piece = self.edits.get(section.report)
        if piece is None:
            return self.original.texts.body(section.number)
        return next(text for anchor, _, _, text in piece.sections if anchor == section.anchor)


# After an edit within a few reports' sections, the child keeps the edited pieces (KeptEdits) beside the whole
# input it read, instead of pickling and writing the whole input again (128 MB at 10,000 reports: 0.5 s at
# the end of every rebuild, which the build waits for); the next build reads both.
INPUT_EDITS = "index-input-edits"
EDITS_MAX = 200  # reports whose pieces the kept edits hold, at most; then the whole input is kept again


@dataclass(frozen=True)
class KeptEdits:
    """The pieces of the reports edited since the whole input kept (of keys `base`, input_id), and the head
    of the input with them."""

    base: bytes
    head: IndexInputKeys
    pieces: dict[int, SearchPiece]


@dataclass(frozen=True)
class Speculated:
    """What the spare child read and did while the parent loaded the site (speculate_index): the last input,
    and, when it could tell, the input of this build (its keys, the input, the index planned)."""

    last: LastIndexInput | None
    keys: list[bytes] | None = None
    source: SearchInput | None = None
    settings: SearchSettings | None = None
    plan: IndexPlan | None = None
    changed: tuple[int, ...] = ()  # the reports whose texts `source` replaced
    state: Callable[[], IndexState] | None = None  # makes what the next build patches the plan from
    patched: bool = False  # `plan` is the kept state's, patched (planned)
    change: IndexChange | None = None  # since the last input's index, when `plan` is its plan (index_change)


SPECULATE_MAX = 20  # reports changed, at most, for the child to make the index before the parent says so


@dataclass(frozen=True)
class IndexInput:
    """What the spare child makes the index's input of: the whole input, or the last build's input (of keys
    `last`) and the pieces of the reports whose keys changed, which kept their shapes."""

    keys: list[bytes]
    paths: list[str]
    source: SearchInput | None = None  # every report's piece, put together...
    shapes: list[bytes] | None = None  # ...and their shapes
    last: bytes | None = None  # the digest of the last input's keys (input_id)
    changed: dict[int, SearchPiece] = field(default_factory=dict)


def _input_store_key(out_dir: Path) -> bytes:
    """The kept input's key: one per site folder."""
    return hashlib.blake2b(str(out_dir.resolve()).encode(), digest_size=16).digest()


def input_id(keys: list[bytes]) -> bytes:
    return hashlib.blake2b(b"".join(keys), digest_size=16).digest()


def report_key(file: bytes, topic_rules: bytes) -> bytes:
    """A report's key in the kept input: what its piece is made of (its file, the code, the topic rules)."""
    return hashlib.blake2b(file + topic_rules, digest_size=16).digest()


def topic_rules_digest(rules: TopicRules) -> bytes:
    return Fingerprinter().of(assign_topics, rules)


def speculate_index(disk: DiskStore, store: bytes, content_dir: Path, version: bytes,
                    edited: Sequence[str] | None = None, told: Connection | None = None) -> Speculated:
    """In the spare child, while the parent loads the site: the last build's input (last_index_input), and
    when the content files are those it was made of but a few edited within their sections (as the parent
    will find them: the same keys and shapes, see index_input), this build's input and its index planned.
    The parent's keys decide whether the plan is used (write_search_files_given). `edited`: the content
    files the parent found edited since the last build (quick_candidates), the others taken to be as the
    last input has them, without walking the content folder (10,000 files: 0.3 s); a wrong guess costs only
    the plan. `told`: the pipe `edited` comes through, when the child was forked before the parent knew them
    (early_spare_child): the child loads what it needs meanwhile. (Planning nothing until the parent sends
    the edited reports' pieces with the job, the child would load no division table nor parse a report;
    but the patch then waits for the parent: an edit at 10,000 reports took 0.15 s longer.)"""
    last = last_index_input(disk, store, version)
    segmenter = None  # one for the plan and the change: each run of the edited sections is cut once
    try:
        loaded = load_topics(content_dir), load_search_settings(content_dir), dv.load_divisions()
        if told is not None and last is not None:
            segmenter = Segmenter(loaded[1].probes, few=True)  # the word table mapped, or rjieba loaded (0.13 s)
    except (OSError, ReportsiteError):
        loaded = None  # the parent finds it and says so
    if told is not None:
        try:
            edited = told.recv()
        except (EOFError, OSError):  # the parent needs no index
            return Speculated(last)
        finally:
            told.close()
    at = {path: i for i, path in enumerate(last.keys.paths)} if last else {}
    files = content_files(content_dir) if edited is None else [Path(path) for path in edited]
    if last is None or loaded is None or (edited is None and len(files) != len(at)) or not all(
            str(path) in at for path in files):
        return Speculated(last)
    rules, settings, table = loaded
    try:
        rules_digest = topic_rules_digest(rules)
        keys, changed = list(last.keys.keys), []
        known = known_file_digests(disk, version, content_dir) if edited is None else {}
        for path in files:
            i, digest = at[str(path)], _untouched_digest(path, known)
            data = path.read_bytes() if digest is None else None
            key = report_key(file_digest(version, str(path), data) if data is not None else digest, rules_digest)
            if key != keys[i]:
                keys[i] = key
                changed.append((i, path, data if data is not None else path.read_bytes()))
        if not changed or len(changed) > SPECULATE_MAX:  # none: the parent keeps the last index, mostly
            return Speculated(last)
        pieces = {}
        for i, path, data in changed:
            report = parse_file(str(path), data, table).report
            if report is None:
                return Speculated(last)
            pieces[i] = search_piece(report, assign_topics(report, rules))
            if piece_shape(pieces[i]) != last.keys.shapes[i]:
                return Speculated(last)
    except (OSError, ReportsiteError):
        return Speculated(last)  # the parent finds it and says so
    source = last.with_changes(pieces)
    memo = IndexMemo(disk, version)
    plan, state, patched = planned(disk, store, last, source, settings, memo, tuple(pieces), segmenter)
    # worked out before the parent asks (0.05 s), as write_search_files_given would, when the plan is the last's
    same_plan = last.keys.plan == plan_digest(plan, memo.salt(settings))
    change = index_change(plan, last, tuple(pieces), segmenter) if same_plan else None
    return Speculated(last, keys, source, settings, plan, tuple(pieces), state, patched, change)


# -- the index's plan, kept for the next build: a plan patched after an edit within sections (indexpatch) ------
STATE = "index-state"


def planned(disk: DiskStore, store: bytes, last: LastIndexInput | None, source: SearchInput,
            settings: SearchSettings, memo: IndexMemo, changed: tuple[int, ...],
            segmenter: Segmenter | None = None) -> tuple[IndexPlan, Callable[[], IndexState], bool]:
    """The index planned, a function that makes its state for the next build, and whether the plan is the
    kept state's patched: the state is of the whole input kept (`last.original`), and `source` is that input
    with the texts of the reports edited since (`last.edits`, and now `changed`) replaced; the plan is
    patched when the state can tell it (indexpatch.patched_plan), else planned afresh (plan_index). The
    state is kept only with a whole input (_keep_input): after an edit the child keeps the edits alone,
    not 180 MB of state again (0.8 s at the end of each rebuild at 10,000 reports)."""
    salt = memo.salt(settings)
    state = kept_state(disk, store, last) if last is not None and changed else None
    if state is not None:
        assert last is not None
        since = tuple(sorted({*last.edits, *changed}))
        patched = patched_plan(state, last.original, source, settings, salt, since, memo.store, segmenter)
        if patched is not None:
            return (*patched, True)
    del state  # read for one patch, and changed by it
    plan, basis = planned_index(source, settings, memo)
    return plan, functools.partial(index_state, plan, basis, salt), False


def kept_state(disk: DiskStore, store: bytes, last: LastIndexInput) -> IndexState | None:
    """The state kept with the plan of the whole input kept, when it was kept with that input."""
    found = read_state(_state_path(disk, store))
    return found[1] if found is not None and found[0] == last.base else None


def _state_path(disk: DiskStore, store: bytes) -> Path:
    """Where the state of a site folder's index is kept (write_state), beside its kept input."""
    return disk.directory / STATE / f"{store.hex()}.state"


def _untouched_digest(path: Path, known: dict[str, tuple[tuple[int, int, int], bytes]]) -> bytes | None:
    """A content file's digest as the last build found it, when its stamp says it is untouched since."""
    last = known.get(str(path))
    st = path.stat()
    return last[1] if last is not None and last[0] == (st.st_mtime_ns, st.st_size, st.st_ino) else None


def last_index_input(disk: DiskStore, store: bytes, version: bytes) -> LastIndexInput | None:
    """The index input the last build (of this code version) into a site folder kept (None: none, or
    unreadable); read by the spare child while the parent loads the site."""
    found = disk.get_headed(INPUT, store)
    head = _input_head(found[0] if found else None, version)
    if found is None or head is None:
        return None
    try:
        source = input_of_columns(found[1], found[2])
    except (TypeError, ValueError):
        return None
    base = input_id(head.keys)
    edits = _kept_edits(disk, store, version, base)
    return LastIndexInput(head, source, base) if edits is None else LastIndexInput(edits.head, source, base,
                                                                                  edits.pieces)


def kept_input_head(disk: DiskStore, store: bytes, version: bytes) -> IndexInputKeys | None:
    """The head of the kept input (with its edits), which the parent reads."""
    head = _input_head(disk.get_head(INPUT, store), version)
    edits = _kept_edits(disk, store, version, input_id(head.keys)) if head else None
    return edits.head if edits else head


def _kept_edits(disk: DiskStore, store: bytes, version: bytes, base: bytes) -> KeptEdits | None:
    found = disk.get(INPUT_EDITS, store)
    if (isinstance(found, tuple) and len(found) == 2 and found[0] == version and isinstance(found[1], KeptEdits)
            and found[1].base == base):
        return found[1]
    return None


def _input_head(head: Any, version: bytes) -> IndexInputKeys | None:
    """The keys at the head of the kept input, when this code version wrote them (each version overwrites
    the one file of a site folder; another's might hold other fields)."""
    if isinstance(head, tuple) and len(head) == 2 and head[0] == version and isinstance(head[1], IndexInputKeys):
        return head[1]
    return None


def index_input(data: SiteData, cache: BuildCache, disk: DiskStore, store: bytes) -> IndexInput:
    """What the parent sends the spare child: the pieces of the reports whose keys changed since the input
    the child read (last_index_input), when their shapes did not change; else the whole input (search_input_of)."""
    rules = topic_rules_digest(data.topic_rules)
    keys = [report_key(cache.files[r.path].digest, rules) for r in data.reports]
    paths = [r.path for r in data.reports]
    last = kept_input_head(disk, store, cache.version)
    if last is not None and len(last.keys) == len(keys):
        changed = {i: search_piece(data.reports[i], data.topics.get(data.reports[i].slug, {}))
                   for i, (key, was) in enumerate(zip(keys, last.keys, strict=True)) if key != was}
        if all(piece_shape(piece) == last.shapes[i] for i, piece in changed.items()):
            return IndexInput(keys, paths, last=input_id(last.keys), changed=changed)
    shapes: list[bytes] = []
    source = search_input_of((search_piece(r, data.topics.get(r.slug, {})) for r in data.reports), shapes)
    return IndexInput(keys, paths, source, shapes)


def write_search_files_given(take: Callable[[], Speculated | None], given: IndexInput, settings: SearchSettings,
                             staging: Path, previous: Previous, disk: DiskStore, key: bytes | None,
                             memo: IndexMemo | None, store: bytes, version: bytes) -> list[RenderedPage] | None:
    """write_search_files in the spare child, of the input `given` (index_input) and what the child did
    meanwhile (`take`, speculate_index): its plan when it made the input the parent sends; None when the
    parent sent changes to an input the child has not (the parent then makes the index)."""
    done = take() or Speculated(None)
    last = done.last
    base, edits = (last.base, last.edits) if last else (b"", {})
    changed: tuple[int, ...] | None = None  # the reports whose texts were replaced in the last input
    state: Callable[[], IndexState] | None = None
    patched = False  # the plan is the kept state's, patched: that state stays the next build's
    worked_out: IndexChange | None = None  # the change, worked out by speculate_index
    if done.plan is not None and done.keys == given.keys and done.settings == settings:
        assert done.source is not None and last is not None
        plan, source, shapes, changed = done.plan, done.source, last.keys.shapes, done.changed
        state, patched, worked_out = done.state, done.patched, done.change
    elif given.source is not None and given.shapes is not None:
        plan, source, shapes = None, given.source, given.shapes
    elif last is None or input_id(last.keys.keys) != given.last:
        return None
    else:
        plan, source, shapes = None, last.with_changes(given.changed), last.keys.shapes
        changed = tuple(given.changed)
    del done
    if plan is None:
        plan, state, patched = planned(disk, store, last, source, settings, memo or IndexMemo(disk, version),
                                       changed or ())
    if changed is None or memo is None or last is None or (
            last.keys.files != index_files_digest((path, entry[1]) for path, entry in memo.last.items())):
        last = None  # the site holds another index than the last input's: its texts are of no use (130 MB)
    digest = plan_digest(plan, memo.salt(settings) if memo else b"")
    # a new plan (the vocabulary changed, say) may move any term: then nothing is known to be as it was
    change = (worked_out or index_change(plan, last, changed)) if (
        last is not None and changed and last.keys.plan == digest) else None
    del last  # the last input's texts, replaced
    made = write_search_files(source, settings, staging, previous, disk, key, memo, plan, change)
    plan = None  # its postings: 300 MB at 10,000 reports
    return_freed_memory()
    if given.source is None and not given.changed:
        return made
    # kept for the next build, once the workers are gone (pickling the input takes 150 MB more for a moment),
    # after the parent has the files: it finishes the build meanwhile (0.3 s at 10,000 reports)
    files = index_files_digest((page.path, page.digest) for page in made)
    keys = IndexInputKeys(given.keys, shapes, given.paths, digest, files)
    edits = {**edits, **given.changed}
    if given.source is None and base and patched and len(edits) <= EDITS_MAX:
        return Afterwards(made, functools.partial(_keep_edits, disk, store, version, KeptEdits(base, keys, edits)),
                          held=(source, state))
    return Afterwards(made, functools.partial(_keep_input, disk, store, version, keys, source, state))


def _keep_input(disk: DiskStore, store: bytes, version: bytes, keys: IndexInputKeys, source: SearchInput,
                state: Callable[[], IndexState] | None = None) -> None:
    disk.remove(INPUT_EDITS, store)  # first: edits of an earlier input of the same keys would apply to this one
    try:
        disk.put_headed(INPUT, store, (version, keys), *input_columns(source))
        if state is not None:
            write_state(_state_path(disk, store), input_id(keys.keys), state())
    except OSError:  # the next build sends the whole input
        disk.remove(INPUT, store)
        _state_path(disk, store).unlink(missing_ok=True)


def _keep_edits(disk: DiskStore, store: bytes, version: bytes, edits: KeptEdits) -> None:
    try:
        disk.put(INPUT_EDITS, store, (version, edits))
    except OSError:  # the next build's child reads the whole input without them, the parent sends them again
        disk.remove(INPUT_EDITS, store)


def index_change(plan: IndexPlan, last: LastIndexInput, changed: tuple[int, ...],
                 segmenter: Segmenter | None = None) -> IndexChange:
    """What the texts of the `changed` reports changed since the index of the last input (search.IndexChange);
    `segmenter`: the plan's, which has cut the edited sections' runs."""
    reports = set(changed)
    new = plan.source.texts
    sections = plan.source.sections
    old = {k: body for k in sections_of_reports(sections, reports)
           if (body := last.old_body(sections[k])) != new.body(k)}
    return IndexChange(last.keys.plan, frozenset(old), changed_terms(plan, old, segmenter))


def kept_search_file(path: str, key: bytes, staging: Path, previous: PreviousSite) -> RenderedPage | None:
    """The last site's search file at `path`, linked into `staging`, when it was made of inputs of `key`."""
    found = previous.kept_file(path, key)
    if found is None or not link_into(staging, path, found[0]):
        return None
    return RenderedPage(path, found[1], None, None, written=False, key=key)


def kept_search_bytes(path: str, key: bytes, previous: PreviousSite) -> OutputFile | None:
    """The last site's search file at `path`, when it was made of inputs of `key`: its bytes (kept in
    memory by the live preview, else read from the last site)."""
    entry = previous.pages.get(path)
    if entry is None or entry.key != key:
        return None
    if entry.data is not None:
        return OutputFile(path, entry.data, key)
    found = previous.kept_file(path, key)
    try:
        return OutputFile(path, Path(found[0]).read_bytes(), key) if found else None
    except OSError:
        return None


def check_changes(changed: list[RenderedPage], removed: list[str], cache: BuildCache) -> None:
    """check_made of the site the last build left, the pages `changed` put in it and those `removed` taken out,
    worked out of those alone while the site keeps its paths (a quick rebuild: 13,000 pages listed took 0.03 s
    at 10,000 reports). Unless every page is to be checked (see pages_to_check), only the changed ones are."""
    only = None
    last = cache.pages
    if cache.checked_by == cache.version and not removed and all(m.path in last for m in changed):
        with suppress(LinksLost):  # what the last build found on a changed page is lost: every page is checked
            only = pages_to_check({m.path: m.links for m in changed if m.links is not None},
                                  {m.path: m.digest for m in changed},
                                  {m.path: (last[m.path].digest, last[m.path].links) for m in changed})
    if only is None:
        new = {m.path: m for m in changed}
        gone = set(removed)
        check_made(Made([new.pop(path) if path in new else take_over(path, entry, None, None)
                         for path, entry in last.items() if path not in gone] + list(new.values())), cache)
        return
    parsed = {path: entry.links for path, entry in last.items() if entry.links is not None}
    for m in changed:
        if m.links is None:
            parsed.pop(m.path, None)
        else:
            parsed[m.path] = m.links
    _raise_broken(lambda: check_pages(parsed, set(last), only))


def check_made(made: Made, cache: BuildCache | None) -> None:
    """Every link resolves; with a cache whose last build passed this check, only the changed pages' links
    are checked, unless files were added or removed or ids lost (links.pages_to_check)."""
    digests = {f.path: f.digest for f in made.files}
    parsed = {f.path: f.links for f in made.files if f.links is not None}
    checked = cache.checked_pages() if cache else None
    try:
        only = pages_to_check(parsed, digests, checked)
    except LinksLost:  # what the last build found on a changed page is lost: every page is checked
        only = None
    _raise_broken(lambda: check_pages(parsed, set(digests), only))


def _raise_broken(check: Callable[[], list[Problem]]) -> None:
    """The problems of a link check, raised."""
    try:
        broken = check()
    except LinksLost as lost:
        raise ReportsiteError(Problem(str(lost), 0, "the build cache lost this page's links and the page is gone",
                                      "build again with --no-cache")) from None
    if broken:
        raise ReportsiteError(broken)


def prepare(options: BuildOptions) -> tuple[Content, SiteData]:
    """Load the content and derive the views."""
    content, data, analyse = load_derived(options)
    return content, analyse(data)


def load_derived(options: BuildOptions, only: Sequence[Path] | None = None,
                 known: dict[str, tuple[tuple[int, int, int], bytes]] | None = None
                 ) -> tuple[Content, SiteData, Callable[[SiteData], SiteData]]:
    """The content and its views but the key figures and structure checks, and the function that adds
    those (a build starts the search index, which needs none of them, before it). With `only` (and a
    cache): of those content files alone (quick_build), `known` their digests as the last build found them."""
    from .analysis_pages import with_analysis
    from .compliance import load_part_rules
    from .figures import analyse_report, load_indicators
    from .pages import topic_views

    cache = options.cache
    config = load_config(options.content_dir, options.base_url)
    if cache:
        cache.new_build()
    topic_rules = load_topics(options.content_dir)
    rules, part_rules = load_indicators(options.content_dir), load_part_rules(options.content_dir)
    # done as reports are parsed (SHOWN_ELSEWHERE: the results that pages other than a report's own show)
    work = ((assign_topics, (topic_rules,)), (analyse_report, (rules, part_rules)), (topic_views, (Earlier(0),)))
    # 10,000 reports unpickled (from the workers or the cache) and their derived values registered: without
    # this, 3.5 s of garbage collections that find nothing
    with collections_paused():
        content = (cache.load_content(options.content_dir, work, only, known) if cache
                   else load_content(options.content_dir, work))
        if options.strict and content.problems:
            raise ReportsiteError(list(content.problems))
        call = memo_of(content, work, cache)
        data = derive(content, topic_rules, config, cache, call)

    def analyse(data: SiteData) -> SiteData:
        with collections_paused():
            return with_analysis(data, rules, part_rules, call)

    return content, data, analyse


def search_view(data: SiteData) -> SiteData:
    """What the search index reads of the site data, its reports and their topics: the same inputs, so
    the same cache key, whether the index is made before the key figures (build) or with the pages."""
    return SiteData(config=data.config, reports=data.reports, topic_rules=data.topic_rules, topics=data.topics)


def render_site(options: BuildOptions) -> tuple[Content, list[OutputFile]]:
    """Every step but writing, the site kept in memory (`serve`)."""
    content, _, files = render_site_data(options)
    return content, files


def render_site_data(options: BuildOptions) -> tuple[Content, SiteData, list[OutputFile]]:
    content, data = prepare(options)
    renderer = make_renderer(data, options)
    with collections_paused():
        items = render_all(data, options, renderer)
    made = produce(items, renderer, options.cache, None)
    check_made(made, options.cache)
    if options.cache:
        options.cache.end_build(made.files, None)
    return content, data, [OutputFile(f.path, f.data or b"") for f in made.files]


def render_edited_reports(last: SiteData, options: BuildOptions, paths: list[Path]) -> list[OutputFile] | None:
    """The pages of edited report files only, rendered against the last build's site data: the live
    preview shows them at once and rebuilds the rest just after (as Hugo's fast render mode does).
    None when the edit needs a full build first (a new or broken file, a changed slug)."""
    from .analysis_pages import figures_panel
    from .figures import analyse_report

    table = dv.load_divisions()
    by_path = {r.path: r for r in last.reports}
    edited: dict[str, Report] = {}
    for path in paths:
        old = by_path.get(str(path))
        try:
            parsed = parse_file(str(path), path.read_bytes(), table)
        except OSError:
            return None
        report = parsed.report
        if old is None or report is None or report.slug != old.slug or any(
                p.severity == "error" for p in parsed.problems):
            return None
        edited[report.slug] = report
    analysis = last.analysis
    topics = dict(last.topics)
    panels = dict(last.extra_report_panels)
    for slug, report in edited.items():
        topics[slug] = assign_topics(report, last.topic_rules)
        if analysis is not None:
            part = analyse_report(report, analysis.rules, analysis.part_rules)
            panels[slug] = [figures_panel(report, part.values, part.compliance), *panels.get(slug, [])[1:]]
    data = replace(last, reports=tuple(edited.get(r.slug, r) for r in last.reports), topics=topics,
                   extra_report_panels=panels)
    renderer = PageCollector(make_environment(options.templates_dir), data)
    return [renderer.render_now(page) for page in render_reports(renderer, data, only=edited.keys())
            if isinstance(page, PendingPage)]


# -- a quick rebuild, after a few reports' texts were edited ----------------------------------------------
# A full rebuild after an edit of one report's text at 10,000 reports loads and keys every report (3 s) to
# find that only the report's own page and the search index changed. Pages other than a report's own show
# of it only its face, its topic views (what the topic pages list of it) and its analysis (key figures,
# structure check): their cache keys are made of those values' digests. So when the edited reports' values
# are as the last build found them, and nothing else changed (no file added, removed or renamed, no
# template, theme file, rule or setting), a rebuild loads only the edited reports and the other reports of
# their jurisdictions (which their pages list), renders their pages (the same keys as a full build's), has
# the spare child patch the search index, and patches the site. Anything else is a full build.
LAST_INPUTS = "site-inputs"  # DiskStore kind: LastInputs, per site folder
# DiskStore kind: the stamps and problems of the files edited since LastInputs was kept, per site folder: a
# quick rebuild keeps these (0.001 s), not 10,000 files' stamps, digests and problems again (2.7 MB, 0.025 s)
LAST_EDITS = "site-inputs-edits"
QUICK_MAX = 20  # reports edited, at most, for a quick rebuild
SHOWN_ELSEWHERE = (1, 2)  # the per-report work's results shown by other pages (load_derived: analysis, views)


@dataclass(frozen=True)
class LastInputs:
    """What the last build into a site folder read and found, for a quick rebuild (quick_build)."""

    settings: bytes  # the code, the build's settings and the day (cache.settings_digest)
    stamps: dict[str, tuple[int, int]]  # every input file (cache.input_stamps)
    jurisdictions: dict[str, str]  # report file -> its jurisdiction's key, in the site's order of reports
    shown: dict[str, tuple[bytes, ...]]  # report file -> digests of what other pages show of it (shown_digests)
    problems: dict[str, tuple[Problem, ...]]  # content file -> what its parse found, in content order
    across: tuple[Problem, ...]  # what was found across files (a jurisdiction's year reported twice)
    reports: int
    generation: bytes = b""  # this keeping of the inputs, whose edits since (LAST_EDITS) apply to it
    since: dict[str, tuple[int, int]] = field(default_factory=dict)  # stamps of the files edited since kept


def build_settings(options: BuildOptions) -> tuple[Any, ...]:
    return (str(options.content_dir.resolve()), str(options.templates_dir.resolve()),
            str(options.theme_dir.resolve()), options.base_url, options.strict)


def shown_digests(entry: Any) -> tuple[bytes, ...] | None:
    """Digests of what pages other than a report's own show of it (of a cache.LoadedFile): its face and the
    per-report results SHOWN_ELSEWHERE, by their content. None: not known."""
    if entry.report is None or not entry.face_digest or len(entry.derived) <= max(SHOWN_ELSEWHERE):
        return None
    found = [entry.face_digest]
    for index in SHOWN_ELSEWHERE:
        digests = entry.derived_digests[index] if len(entry.derived_digests) > index else None
        # a result without parts (the topic views: counts and digests) by its plain value
        found.append(digests.whole if digests is not None else
                     hashlib.blake2b(repr(entry.derived[index]).encode(), digest_size=16).digest())
    return tuple(found)


def remember_inputs(options: BuildOptions, cache: BuildCache, stamps: dict[str, tuple[int, int]],
                    content: Content) -> None:
    """After a full build: what a quick rebuild compares its inputs with (LastInputs)."""
    assert cache.disk is not None
    key = site_key(options.out_dir)
    files = cache.files
    cache.disk.remove(LAST_EDITS, key)
    if sum(1 for entry in files.values() if entry.report is not None) != len(content.reports):
        cache.disk.remove(LAST_INPUTS, key)  # a slug used twice: which report is dropped depends on them all
        return
    problems = {path: entry.problems for path, entry in files.items() if entry.problems}
    found = sum(map(len, problems.values()))
    shown = {r.path: shown_digests(files[r.path]) for r in content.reports}
    cache.disk.put(LAST_INPUTS, key, LastInputs(
        settings_digest(cache.version, build_settings(options)), stamps,
        {r.path: r.jurisdiction.key for r in content.reports}, {p: d for p, d in shown.items() if d is not None},
        problems, content.problems[found:], len(content.reports), os.urandom(16)))


def edited_reports(last: LastInputs, stamps: dict[str, tuple[int, int]]) -> list[str] | None:
    """The report files edited since the last build, when that is all that changed among the input files
    and there are a few; else None."""
    if stamps.keys() != last.stamps.keys():
        return None
    edited = sorted(path for path, stamp in stamps.items() if last.stamps[path] != stamp)
    if not edited or len(edited) > QUICK_MAX or any(path not in last.shown for path in edited):
        return None
    return edited


class QuickFailed(Exception):
    """A quick rebuild found it cannot be done after all: the full build follows."""


def quick_candidates(options: BuildOptions, cache: BuildCache, stamps: dict[str, tuple[int, int]]
                     ) -> tuple[LastInputs, list[str]] | None:
    """What the last build read, and the report files edited since, when a quick rebuild may follow."""
    if cache.disk is None or options.strict:  # strict: every problem is an error, found by a full build
        return None
    key = site_key(options.out_dir)
    last = cache.disk.get(LAST_INPUTS, key)
    if not isinstance(last, LastInputs) or last.settings != settings_digest(cache.version, build_settings(options)):
        return None
    edits = cache.disk.get(LAST_EDITS, key)
    if isinstance(edits, tuple) and len(edits) == 3 and edits[0] == last.generation:
        since, problems = edits[1], edits[2]
        last = replace(last, stamps={**last.stamps, **since}, problems=problems, since=since)
    edited = edited_reports(last, stamps)
    return (last, edited) if edited is not None else None


def quick_build(options: BuildOptions, cache: BuildCache, spare: ChildJob | None,
                candidates: tuple[LastInputs, list[str]], stamps: dict[str, tuple[int, int]], inputs: bytes,
                started: float) -> BuildResult | None:
    """The rebuild after a few reports' texts were edited (quick_candidates), as described above; None
    when it cannot be done so (nothing was changed then, and the spare child is still free)."""
    disk = cache.disk
    last, edited = candidates
    if disk is None or spare is None or cache.checked_by != cache.version or not site_as_left(cache, options.out_dir,
                                                                                              options.look):
        return None
    store = _input_store_key(options.out_dir)
    head = kept_input_head(disk, store, cache.version)
    if head is None or head.paths != list(last.jurisdictions):
        return None
    steps = Steps()
    known = known_file_digests(disk, cache.version, options.content_dir)  # before the edited files are loaded
    wanted = {last.jurisdictions[path] for path in edited}
    content, data, analyse = load_derived(options, sorted((Path(path) for path, key in last.jurisdictions.items()
                                                           if key in wanted), key=str), known)
    reports = {r.path for r in content.reports}
    if any(path not in reports or shown_digests(cache.files[path]) != last.shown[path] for path in edited):
        return None
    by_file = _problems_after_edit(last, {path: cache.files[path].problems for path in edited})
    problems = [p for found in by_file.values() for p in found] + list(last.across)
    given = _edited_index_input(data, cache, head, edited, known)
    if given is None:
        return None
    steps.done("load (edited reports)")
    made = _quick_site(options, cache, spare, data, analyse, given, head, store, edited, steps, problems)
    try:
        cache.groups_made = dict(cache.groups)  # none was made again: all are kept
        cache.end_quick(made.changed, made.removed, options.out_dir.resolve(), made.shelved)
        remember_build(cache, inputs, options.out_dir, last.reports, made.files, made.problems)
        for path in edited:  # the parse of the text before the edit, which no build will read
            if path in known and known[path][1] != cache.files[path].digest:
                disk.remove("report", known[path][1])
        since = {**last.since, **{path: stamps[path] for path in edited}}
        disk.put(LAST_EDITS, site_key(options.out_dir), (last.generation, since, by_file))
        steps.done("save cache")
    finally:
        if made.job:
            made.job.finish()
    return BuildResult(last.reports, made.files, tuple(problems), time.perf_counter() - started, made.written,
                       tuple(steps.seconds))


def _problems_after_edit(last: LastInputs, edited: dict[str, tuple[Problem, ...]]
                         ) -> dict[str, tuple[Problem, ...]]:
    """Each content file's problems after the edits (the edited files' as found now), in content order: what a
    full build reports, and then those found across files (last.across: the faces are unchanged)."""
    found = {**last.problems, **edited}
    return {path: found[path] for path in sorted(found, key=Path) if found[path]}


def _edited_index_input(data: SiteData, cache: BuildCache, head: IndexInputKeys, edited: list[str],
                        known: dict[str, tuple[tuple[int, int, int], bytes]]) -> IndexInput | None:
    """index_input of a quick rebuild: the edited reports' pieces, when the kept input is of the other
    reports as they are (their keys) and the edited pieces kept their shapes; else None."""
    rules = topic_rules_digest(data.topic_rules)
    changed_paths = set(edited)
    for path, key in zip(head.paths, head.keys, strict=True):
        if path not in changed_paths and (path not in known or report_key(known[path][1], rules) != key):
            return None
    at = {path: i for i, path in enumerate(head.paths)}
    keys = list(head.keys)
    changed: dict[int, SearchPiece] = {}
    for report in data.reports:
        if report.path not in changed_paths:
            continue
        i = at[report.path]
        keys[i] = report_key(cache.files[report.path].digest, rules)
        if keys[i] == head.keys[i]:
            continue
        changed[i] = search_piece(report, data.topics.get(report.slug, {}))
        if piece_shape(changed[i]) != head.shapes[i]:
            return None
    return IndexInput(keys, list(head.paths), last=input_id(head.keys), changed=changed)


@dataclass
class QuickMade:
    changed: list[RenderedPage]  # the pages made again (written, or found as they were) and the index's files
    removed: list[str]  # the index's files the last site had and this one has not
    files: int  # files of the site
    written: int
    job: IndexChild | None = None  # the search index's child, saving the input for the next build
    shelved: frozenset[bytes] = frozenset()  # the pages whose links were shelved meanwhile (BuildCache.keep_links)
    problems: bytes = b""  # the build's problems, pickled meanwhile (pickled_problems)


def _quick_site(options: BuildOptions, cache: BuildCache, spare: ChildJob, data: SiteData,
                analyse: Callable[[SiteData], SiteData], given: IndexInput, head: IndexInputKeys, store: bytes,
                edited: list[str], steps: Steps, problems: list[Problem]) -> QuickMade:
    """The edited reports' pages rendered and the search index patched (by the spare child) into a patch
    of the site, the site's other files kept; links checked, the patch put in place. When no report's
    piece of the index changed (a file touched, say) and the site holds the index of the kept input, its
    files are kept as they are. The child is given its job first: the pages are analysed (load_derived's
    `analyse`) and rendered meanwhile; then, while it writes the index, the kept files are listed, their
    entries made (BuildCache.end_ready) and their links checked."""
    assert cache.disk is not None
    previous = cache.previous_site(INDEX_DIR)
    index_kept = not given.changed and head.files == index_files_digest(
        (path, entry.digest) for path, entry in previous.pages.items())
    staging = start_patch(options.out_dir)
    job = None
    try:
        if index_kept:
            spare.stop()
        else:
            memo = IndexMemo(cache.disk, cache.version, functools.partial(kept_search_file, staging=staging,
                                                                          previous=previous),
                             functools.partial(kept_search_bytes, previous=previous),
                             {path: (entry.key, entry.digest) for path, entry in previous.pages.items()})
            job = IndexChild(spare.start(write_search_files_given, given, load_search_settings(options.content_dir),
                                         staging, previous.unchanged_file, cache.disk, None, memo, store,
                                         cache.version))
        data = analyse(data)
        renderer = MemoRenderer(make_environment(options.templates_dir, cache.templates_bytecode()), data, cache)
        slugs = {r.slug for r in data.reports if r.path in set(edited)}
        items = list(render_reports(renderer, data, only=slugs))
        made = produce(items, renderer, cache, staging, job)
        checked = _links_resolve(made.files, cache)
        # while the child writes the index: the end's work that needs none of its files (which hold no links)
        shelved = cache.keep_links(made.files, options.out_dir.resolve()) if checked else frozenset()
        pickled = pickled_problems(problems)
        searched = job.result() if job else []
        if searched is None:  # the child could not read the kept input: the full build sends it whole
            cache.disk.remove(INPUT, store)
            raise QuickFailed
        steps.done("render + write | search index")
        changed = {f.path: f for f in [*made.files, *searched]}
        removed = [path for path in previous.pages if path not in changed] if job else []
        files = len(cache.pages) - len(removed) + sum(1 for path in changed if path not in cache.pages)
        whole = QuickMade(list(changed.values()), removed, files, made.written + sum(f.written for f in searched),
                          job, shelved, pickled)
        cache.stats.reused += files - len(items)
        if not (checked and _same_index_paths(previous, searched if job else None)):
            check_changes(whole.changed, removed, cache)
        finish_patch(staging, options.out_dir, removed)
        steps.done("link check + patch")
    except BaseException:
        if job:
            job.stop()
        discard_staging(staging)
        raise
    return whole


def _links_resolve(pages: list[RenderedPage], cache: BuildCache) -> bool:
    """Whether the links of a quick rebuild's pages resolve (check_changes), the search index's files taken to
    be the last site's: worked out while the child writes the index. False: not known."""
    try:
        check_changes(pages, [], cache)
    except ReportsiteError:  # a link to an index file the child is to make, say: checked again after
        return False
    return True


def _same_index_paths(previous: PreviousSite, searched: list[RenderedPage] | None) -> bool:
    """Whether the index files the child made (None: the last site's kept) leave the link check as it was:
    at the same paths as the last site's, and with no links on them (the JSON files)."""
    if searched is None:
        return True
    return (len(searched) == len(previous.pages) and all(f.path in previous.pages for f in searched)
            and all(f.links is None for f in searched) and all(e.links is None for e in previous.pages.values()))


def build(options: BuildOptions) -> BuildResult:
    # The parent makes millions of objects in no cycles (reports, pages, links, the cache's index); its
    # garbage collections found nothing and cost seconds at 10,000 reports. Workers collect as usual.
    with collections_paused():
        return _build(options)


def _build(options: BuildOptions) -> BuildResult:
    started = time.perf_counter()
    check_output_dir(options.out_dir, [options.templates_dir, options.theme_dir, Path.cwd()], options.content_dir)
    cache = options.cache
    candidates = None  # of a quick rebuild (quick_build)
    early = early_spare_child(options)
    try:
        if cache:  # nothing changed since the last build into out_dir: nothing to do
            roots = [options.content_dir, options.templates_dir, options.theme_dir]
            taken = options.look.input_stamps(roots) if options.look else None
            stamps = taken[0] if taken else input_stamps(roots)
            inputs = inputs_digest(cache.version, build_settings(options), taken[1] if taken else stamps_digest(stamps))
            done = previous_build(cache, inputs, options.out_dir, options.look)
            if done is not None:
                drop_spare(early)
                remove_leftovers(options.out_dir)  # of a killed build
                cache.new_build()
                return BuildResult(*done, seconds=time.perf_counter() - started, written=0)
            candidates = quick_candidates(options, cache, stamps)
    except BaseException:
        drop_spare(early)
        raise
    steps = Steps()
    edited = candidates[1] if candidates else None
    spare = tell_spare(early, edited) if early else spare_child(options, edited)
    job = None
    staging = None
    try:
        if cache:  # after the spare child is forked: it needs none of the last site's 13,000 page entries
            cache.open_site(options.out_dir)
            try:
                quick = candidates and quick_build(options, cache, spare, candidates, stamps, inputs, started)
            except QuickFailed:  # the spare child was given the index, and failed: another is forked
                quick, spare = None, spare_child(options)
            if quick is not None:
                return quick
        content, data, analyse = load_derived(options)
        staging = start_patch(options.out_dir) if cache and site_as_left(cache, options.out_dir, options.look) else (
            start_staging(options.out_dir))
        apart = search_apart(data, options, staging, spare)
        return_freed_memory()  # the search index's input, pickled and sent: 128 MB at 10,000 reports
        job = apart if isinstance(apart, IndexChild) else None
        if spare and (job is None or job.child is not spare):
            spare.stop()
        data = analyse(data)
        steps.done("load + derive")
        renderer = make_renderer(data, options)
        items = render_all(data, options, renderer, apart)
        steps.done("search index + collect pages" if apart is None else "collect pages")
        made = produce(items, renderer, cache, staging, job)
        if job:
            searched = job.result()
            made.files += searched
            made.written += sum(f.written for f in searched)
        steps.done("render + write" + (" | search index" if job else ""))
        check_made(made, options.cache)
        if is_patch(staging):
            assert cache is not None
            made_paths = {f.path for f in made.files}
            finish_patch(staging, options.out_dir, (path for path in cache.pages if path not in made_paths))
        else:
            finish_staging(staging, options.out_dir)
        steps.done("link check + swap")
    except BaseException:
        for child in (job, spare):
            if child:
                child.stop()
        if staging:
            discard_staging(staging)
        raise
    try:
        if cache:
            cache.end_build(made.files, options.out_dir.resolve())
            remember_build(cache, inputs, options.out_dir, len(content.reports), len(made.files),
                           pickled_problems(content.problems))
            if cache.disk:
                remember_inputs(options, cache, stamps, content)
            cache.prune()
            steps.done("save cache")
    finally:
        if job:
            job.finish()  # what the child keeps for the next build, saved meanwhile
    return BuildResult(len(content.reports), len(made.files), content.problems, time.perf_counter() - started,
                       made.written if cache else None, tuple(steps.seconds))
