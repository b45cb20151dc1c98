"""Process pools for the build's parallel steps (parsing reports, rendering pages, indexing text).

Workers are forked, so they share what the parent has loaded (the division table, the site data, the
segmenter) and receive only small tasks. A process with other threads (the live preview's server)
never forks: a child would inherit locks those threads hold.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

PARALLEL_MIN = 200  # tasks (files, pages): below this a pool costs more than it saves
T = TypeVar("T")
R = TypeVar("R")


def pool_size(tasks: int, minimum: int = PARALLEL_MIN) -> int:
    """Worker processes worth forking for `tasks` tasks: 1 means do it here."""
    if tasks < minimum or threading.active_count() > 1:
        return 1
    return min(os.cpu_count() or 1, 8)


def map_in_pool(function: Callable[[T], R], tasks: Iterable[T], workers: int,
                initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> Iterator[R]:
    """function over tasks, in order, in `workers` forked processes (initializer runs in each first)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        yield from pool.map(function, tasks)
