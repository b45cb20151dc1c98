"""Process pools for the build's parallel steps (parsing reports, rendering pages, indexing text).

Workers are forked, so they share what the parent has loaded (the division table, the site data, the
segmenter) and receive only small tasks. A process with other threads (the live preview's server)
never forks: a child would inherit locks those threads hold.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import hashlib
import io
import multiprocessing
import multiprocessing.context
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

PARALLEL_MIN = 200  # tasks (files, pages): below this a pool costs more than it saves
T = TypeVar("T")
R = TypeVar("R")


def pool_size(tasks: int, minimum: int = PARALLEL_MIN) -> int:
    """Worker processes worth forking for `tasks` tasks: 1 means do it here."""
    if tasks < minimum or threading.active_count() > 1:
        return 1
    return min(os.cpu_count() or 1, 8)


@contextmanager
def fork_context() -> Iterator[multiprocessing.context.BaseContext]:
    """The multiprocessing context of forked workers; while it is open, the parent's objects are left
    out of garbage collection. A collection in a worker writes to the header of every object it visits,
    which would copy the whole heap it shares with the parent into each worker (measured: 1.6 GB less
    at 10,000 reports)."""
    gc.freeze()
    try:
        yield multiprocessing.get_context("fork")
    finally:
        gc.unfreeze()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No garbage collection meanwhile: for steps that make millions of small objects in no cycles (loading
    10,000 parsed reports, building the search index). Each full collection would walk all of them, and the
    site data too: seconds at 10,000 reports."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def return_freed_memory() -> None:
    """Give the free pages of the C heap back to the system (glibc's malloc_trim). Buffers of a few MB that
    are freed (a worker's arrays received through a pipe, a step's Counters) stay in the heap otherwise,
    counted in the process's memory until it ends: 200 MB in the search index's child at 10,000 reports.
    Elsewhere than glibc there is nothing to call, and nothing is done."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def map_in_pool(function: Callable[[T], R], tasks: Iterable[T], workers: int,
                initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (),
                here: Callable[[T], R] | None = None) -> Iterator[R]:
    """function over tasks, in order, in `workers` forked processes (initializer runs in each first).

    With `here`, this process is one of the workers: it runs here(task) on the tasks the others have not
    taken, and only workers - 1 are forked. A forked worker that reads the parent's data copies every page
    of it whose reference counts it changes (about 1 GB of pages at 10,000 reports); this process has
    its own already."""
    from concurrent.futures import ProcessPoolExecutor

    with fork_context() as context, ProcessPoolExecutor(workers - (here is not None), mp_context=context,
                                                         initializer=_start_child,
                                                         initargs=(initializer, initargs)) as pool:
        if here is None:
            yield from pool.map(function, tasks)
        else:
            yield from _shared(pool, function, here, list(tasks), workers - 1)


def _shared(pool: Any, function: Callable[[T], R], here: Callable[[T], R], tasks: list[T],
            forked: int) -> Iterator[R]:
    """The results of the tasks, in order: each task run by a pool worker or here, whichever is free first.
    Each worker has two tasks queued, so that it need not wait while this process runs one."""
    from concurrent.futures import FIRST_COMPLETED, wait

    results: dict[int, R] = {}
    queued: dict[Any, int] = {}
    taken = given = 0
    while given < len(tasks):
        while taken < len(tasks) and len(queued) < 2 * forked:
            queued[pool.submit(function, tasks[taken])] = taken
            taken += 1
        if taken < len(tasks):
            results[taken] = here(tasks[taken])
            taken += 1
        elif queued:
            wait(queued, return_when=FIRST_COMPLETED)
        for future in [f for f in queued if f.done()]:
            results[queued.pop(future)] = future.result()
        while given in results:
            yield results.pop(given)
            given += 1


def _start_child(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    gc.enable()  # a worker makes and drops objects page after page: its collections are worth their cost
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def forked_processes(target: Callable[..., None], args_list: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """One forked process per item of args_list, running target(*args, connection), while the block runs:
    yields the parent's ends of the connections (duplex pipes). Afterwards each process is joined, or
    killed if it has not ended (the block failed)."""
    links: list[tuple[Any, Any]] = []
    with fork_context() as context:
        try:
            for args in args_list:
                parent, child = context.Pipe()
                process = context.Process(target=target, args=(*args, child), daemon=True)
                process.start()
                child.close()
                links.append((process, parent))
            yield [parent for _, parent in links]
        finally:
            for process, parent in links:
                parent.close()
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()


@dataclasses.dataclass(frozen=True)
class Afterwards:
    """What a ChildJob's function may return: `value`, sent to the parent at once, and `then`, which the
    child does after sending it (saving what the next build reads) while the parent goes on; the parent
    waits for it only at its end (ChildJob.finish)."""

    value: Any
    then: Callable[[], None]
    held: Any = None  # freed after `value` is sent: a build's data takes a while to free (0.05 s at 10,000 reports)


class ChildJob:
    """function(*args) running in a forked child process, so that the parent can do other work meanwhile
    (a build renders its pages while the search index is made). `result()` waits for it.

    `ChildJob(function, *args)` forks now, and the child inherits the arguments. `ChildJob.spare()` forks
    while this process is still small, and `start(function, *args)` sends the child its job later, pickled.
    `ChildJob.spare(prepare)` runs `prepare()` in the child while it waits (reading what the job will need
    from disk while the parent loads the site), and the job is then called as function(take, *args):
    `take()` hands the prepared value over once, so that the job can drop it when done with it.
    A child forked after the parent has loaded a big site shares those pages only until the parent writes
    to them (a reference count is a write): from then on each such page is held twice."""

    def __init__(self, function: Callable[..., R] | None, *args: Any):
        with fork_context() as context:
            self._receive, send = context.Pipe(duplex=False)
            jobs, self._jobs = context.Pipe(duplex=False) if function is None else (None, None)
            # not a daemon: the child may fork workers of its own
            self._process = context.Process(target=_run_child, args=(function, args, send, jobs, self._jobs))
            self._process.start()
        send.close()
        if jobs is not None:
            jobs.close()
        self._message: Message | None = None
        self._job_file: str | None = None

    @classmethod
    def spare(cls, prepare: Callable[[], Any] | None = None) -> ChildJob:
        """A child that waits for its job (start), having called `prepare` meanwhile, if given."""
        return cls(None, prepare)

    def start(self, function: Callable[..., R], *args: Any) -> ChildJob:
        """Give a spare child its job: function and arguments are pickled. A big job goes through a file, so
        that this returns at once even while the child is still preparing (a pipe holds 64 KB: the rest of
        a sent job would wait for the child to read it)."""
        assert self._jobs is not None, "not a spare child, or started already"
        try:
            job = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
            if len(job) > _PIPE_JOB_BYTES:
                with tempfile.NamedTemporaryFile(prefix="reportsite-job-", delete=False) as f:
                    f.write(job)
                self._job_file = f.name  # the child deletes it once read; stop() if it never reads it
                self._jobs.send(("file", f.name))
            else:
                self._jobs.send(("bytes", job))
        finally:
            self._jobs.close()
            self._jobs = None
        return self

    def running(self) -> bool:
        """Whether the child is still at work. Once it is done its result is taken at once: until then the
        child would wait in `send`, holding all its memory."""
        if self._message is None and self._receive.poll():
            self._take()
        return self._message is None

    def _take(self) -> None:
        try:
            self._message = self._receive.recv()
        except EOFError:
            self._message = ("error", RuntimeError(
                f"a worker process ended without a result (exit code {self._process.exitcode})"))
        finally:
            if self._message is None or self._message[0] != AFTERWARDS:
                self.stop()

    def finish(self) -> None:
        """Wait for the child to end: for what it does after sending its result (Afterwards), whose error,
        if it failed, is raised here."""
        self._process.join()
        try:
            failed = self._receive.poll() and self._receive.recv()
        except (EOFError, OSError):
            failed = None
        self.stop()
        if failed:
            outcome(failed)

    def result(self) -> Any:
        if self._message is None:
            self._take()
        assert self._message is not None
        return outcome(self._message)

    def stop(self, grace: float = 0.1) -> None:
        """Kill the child if it is still running after `grace` seconds (the build failed meanwhile, or a spare
        child was not needed); idempotent."""
        if self._jobs is not None:  # a spare child never started: told so, it ends
            self._jobs.close()
            self._jobs = None
        if self._process.is_alive() and grace:
            self._process.join(timeout=grace)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._receive.close()
        if self._job_file:
            with suppress(OSError):
                os.unlink(self._job_file)


def _run_child(function: Callable[..., Any] | None, args: tuple[Any, ...], connection: Any, jobs: Any,
               parent_end: Any) -> None:
    gc.enable()
    if parent_end is not None:  # the parent's end, inherited: closed, so that the parent's close ends `jobs`
        parent_end.close()
    with reporting_to(connection) as send:
        if function is None:  # a spare child: its job comes later, if at all
            prepare = args[0] if args else None
            prepared = [_prepared(prepare)] if prepare else []
            sent = _job_sent(jobs)
            if sent is None:
                return
            function, args = sent
            if prepare:
                args = (prepared.pop, *args)
        result = function(*args)
        if isinstance(result, Afterwards):
            connection.send((AFTERWARDS, result.value))
            result.then()
        else:
            send(result)


def _prepared(prepare: Callable[[], Any]) -> Any:
    """prepare(), or None if it failed: it only gets ahead of the job, which then does all (an error here
    would end the child before its job came, and the parent would find a broken pipe)."""
    try:
        return prepare()
    except Exception:  # noqa: BLE001 - see above; the job's own errors are reported
        return None


_PIPE_JOB_BYTES = 32 * 1024  # a job bigger than this is sent through a file (ChildJob.start)


def _job_sent(jobs: Any) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
    try:
        how, job = jobs.recv()
    except EOFError:  # not needed after all
        return None
    finally:
        jobs.close()
    if how == "file":
        path = job
        try:
            with open(path, "rb") as f:
                job = f.read()
        finally:
            os.unlink(path)
    return pickle.loads(job)


# A child's messages to its parent: ("ok", value), (AFTERWARDS, value) or ("error", the exception it raised)
Message = tuple[str, Any]
AFTERWARDS = "ok, and more to do"  # the value of an Afterwards: the child does its `then` after sending it


@contextmanager
def reporting_to(connection: Any) -> Iterator[Callable[[Any], None]]:
    """In a child process: yields `send(value)`, for the parent's `received`; an exception in the block
    is sent instead, for the parent to raise. Closes the connection."""
    try:
        yield lambda value: connection.send(("ok", value))
    except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
        connection.send(("error", exc))
    finally:
        connection.close()


def received(connection: Any) -> Any:
    """The next value a child sent through reporting_to; its exception, raised here."""
    return outcome(connection.recv())


def outcome(message: Message) -> Any:
    status, value = message
    if status == "error":
        raise value
    return value


def child_job_possible() -> bool:
    """Whether a ChildJob can run beside the parent's own work: more than one core, and no other thread
    here (a forked child would inherit the locks those threads hold)."""
    return pool_size(PARALLEL_MIN) > 1


class SharedObjects:
    """The objects of the rules that per-report results point to (an indicator, a part of a report),
    pickled as the digest of their pickle and read back as this process's own object: a worker's results
    and the build cache's entries would otherwise each carry copies (98,000 objects, 88 MB, in a build of
    10,000 reports). A rule that changed since a value was pickled is not found: reading it fails with
    KeyError."""

    def __init__(self, roots: list[Any]):
        found = _dataclasses_in(roots)
        self._objects = found  # alive, so that their ids stay theirs
        self._token_of = {id(obj): hashlib.blake2b(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL), digest_size=16).digest()
                          for obj in found}
        self._object_of = {token: obj for obj, token in zip(found, self._token_of.values(), strict=True)}

    def pickler(self, file: Any) -> pickle.Pickler:
        return _SharedPickler(file, self._token_of)

    def unpickler(self, file: Any) -> pickle.Unpickler:
        return _SharedUnpickler(file, self._object_of)

    def dumps(self, value: Any) -> bytes:
        out = io.BytesIO()
        self.pickler(out).dump(value)
        return out.getvalue()

    def loads(self, data: bytes) -> Any:
        return self.unpickler(io.BytesIO(data)).load()

    def with_named(self, named: dict[bytes, object]) -> SharedObjects:
        """These shared objects and the `named` ones (token -> object), whose tokens both processes know (a
        report's path for the report's face): a worker's results then point to the parent's objects."""
        other = object.__new__(SharedObjects)
        other._objects = [*self._objects, *named.values()]
        other._token_of = {**self._token_of, **{id(obj): token for token, obj in named.items()}}
        other._object_of = {**self._object_of, **named}
        return other



class _SharedPickler(pickle.Pickler):
    def __init__(self, file: Any, tokens: dict[int, bytes]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._tokens = tokens

    def reducer_override(self, obj: object) -> Any:
        """Called for every object but strings, numbers and containers: costs little."""
        token = self._tokens.get(id(obj))
        return NotImplemented if token is None else (_shared_object, (token,))


def _shared_object(token: bytes) -> object:
    """Stands for a shared object in a pickle; SharedObjects.unpickler resolves it."""
    raise pickle.UnpicklingError("a shared object read without its SharedObjects")


class _SharedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, objects: dict[bytes, object]):
        super().__init__(file)
        self._objects = objects

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_shared_object":
            return self._objects.__getitem__
        return super().find_class(module, name)


def _dataclasses_in(roots: list[Any]) -> list[object]:
    """The dataclass instances in `roots` and in their fields, tuples, lists and dicts, each once."""
    found: dict[int, object] = {}
    stack = list(roots)
    while stack:
        value = stack.pop()
        if isinstance(value, (tuple, list)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type) and id(value) not in found:
            found[id(value)] = value
            stack.extend(getattr(value, f.name) for f in dataclasses.fields(value))
    return list(found.values())
