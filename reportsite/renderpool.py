"""Render the collected pages, in a pool of worker processes when there are many (a cold build).

Workers are forked after the content is loaded and the views derived, so they share the site data
with the parent and receive nothing but page numbers. A worker renders a page, parses its ids and
links for the link check, and either writes it straight into the build's staging folder (`build`:
the parent never holds the site in memory) or sends the bytes back (`serve` keeps the site in memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from .errors import ReportsiteError
from .links import Links, parse_page
from .render import KEY_LATER, OutputFile, PageRenderer, PendingPage, problem_of
from .workers import map_in_pool, pool_size
from .writer import link_into, write_into

CHUNK = 16  # pages per task: big enough to amortise a task, small enough to balance the workers


class RenderedPage(NamedTuple):
    """A rendered page as the rest of the build needs it; `data` is None when it is already on disk. (A named
    tuple: a rebuild after an edit makes one for each of the site's 13,000 files, a frozen dataclass in twice
    the time.)"""

    path: str
    digest: bytes  # blake2b-128 of the bytes: decides whether the file changed
    links: Links | None  # PageLinks, or a kept page's (cache.StoredLinks)
    data: bytes | None
    written: bool = True  # False: the previous site's file had these bytes and was linked instead
    key: bytes | None = None  # the build cache's digest of the page's inputs (None: not cached)


# (site path, digest of new bytes) -> the previous site's file when it holds exactly those bytes
Previous = Callable[[str, bytes], str | None]


def no_previous(path: str, digest: bytes) -> str | None:
    return None


def digest_of(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def finish_page(page: OutputFile, staging: Path | None, previous: Previous = no_previous) -> RenderedPage:
    """Parse a rendered page's links, and put it into `staging` when given: hard-linked from the
    previous site when its bytes are unchanged (keeping inode and timestamp), else written."""
    links = parse_page(page.data) if page.path.endswith(".html") else None
    digest = digest_of(page.data)
    if staging is None:
        return RenderedPage(page.path, digest, links, page.data, key=page.key)
    old = previous(page.path, digest)
    if old is not None and link_into(staging, page.path, old):
        return RenderedPage(page.path, digest, links, None, written=False, key=page.key)
    write_into(staging, page.path, page.data)
    return RenderedPage(page.path, digest, links, None, key=page.key)


def _render_one(renderer: PageRenderer, pending: PendingPage, staging: Path | None,
                previous: Previous) -> RenderedPage:
    try:
        key = renderer.key_of(pending) if pending.key == KEY_LATER else pending.key
        return finish_page(renderer.render_now(pending), staging, previous)._replace(key=key)
    except ReportsiteError:
        raise
    except Exception as exc:  # a template error: located here, where the traceback still names the template
        raise ReportsiteError(problem_of(exc)) from None


# What a forked worker renders: set by the pool's initializer, in the worker only.
_job: tuple[PageRenderer, Sequence[PendingPage], Path | None, Previous] | None = None


def _start_worker(renderer: PageRenderer, pages: Sequence[PendingPage], staging: Path | None,
                  previous: Previous) -> None:
    global _job
    _job = (renderer, pages, staging, previous)


def _render_range(bounds: tuple[int, int]) -> list[RenderedPage]:
    assert _job is not None
    renderer, pages, staging, previous = _job
    return [_render_one(renderer, pages[i], staging, previous) for i in range(*bounds)]


def render_pages(renderer: PageRenderer, pages: Sequence[PendingPage], staging: Path | None,
                 advance: Callable[[int], None] = lambda n: None, previous: Previous = no_previous,
                 busy: Callable[[], bool] = lambda: False) -> Iterator[RenderedPage]:
    """Render `pages` (in order), in worker processes when there are many and more than one core.

    While `busy()` (another job, the search index, keeps the other cores at work) they are rendered here:
    a pool would only share those cores, and each worker would copy the parent's pages it reads - about
    1 GB a worker at 10,000 reports, on top of the other job's memory."""
    workers = pool_size(len(pages))
    if workers > 1:
        done = 0
        while done < len(pages) and busy():
            for pending in pages[done:done + CHUNK]:
                yield _render_one(renderer, pending, staging, previous)
            advance(min(CHUNK, len(pages) - done))
            done += CHUNK
        pages = pages[done:]
        workers = pool_size(len(pages))
    if workers < 2:
        for pending in pages:
            yield _render_one(renderer, pending, staging, previous)
            advance(1)
        return
    if staging is not None:  # make the folders once, here, rather than racing for them in the workers
        for folder in sorted({str(Path(p.path).parent) for p in pages}):
            (staging / folder).mkdir(parents=True, exist_ok=True)
    bounds = [(i, min(i + CHUNK, len(pages))) for i in range(0, len(pages), CHUNK)]

    def render_here(bounds: tuple[int, int]) -> list[RenderedPage]:
        return [_render_one(renderer, pages[i], staging, previous) for i in range(*bounds)]

    # this process renders too: one worker fewer to copy its pages
    for chunk in map_in_pool(_render_range, bounds, workers, _start_worker, (renderer, pages, staging, previous),
                             here=render_here):
        yield from chunk
        advance(len(chunk))
