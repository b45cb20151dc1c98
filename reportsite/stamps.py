"""What a build with a cache looks at first: the stamps (modification time, size) of its input files, and
whether the site folder is as the last build left it; and a child process that takes them while the
build's main process is still importing its code.

The main process of a rebuild spends its first 0.25 s importing (at 10,000 reports), on one core, and then
needs 10,000 stats of the content files and 25,000 of the site (0.25 s). The child, forked before those
imports, takes them on the other core meanwhile. This module imports only the standard library and the
writer's marker name, so that the fork comes early.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from .writer import MARKER

CACHE_FORMAT = "1"  # the build cache's layout: its folder is v<CACHE_FORMAT> (cache.BuildCache)
SITE_STATE = "site"  # DiskStore kind: a site folder's rows, link check, groups and folders, saved whole
SITE_CHANGES = "site-changes"  # ...and the changes of the quick rebuilds since (BuildCache._save_changes)

Stamps = dict[str, tuple[int, int]]
PIPE_SIZE = 1 << 20  # Linux lets anyone make a pipe this big (/proc/sys/fs/pipe-max-size)
PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_path(name: str) -> Path:
    """templates/ or theme/ of the current folder when it has one, else of the reportsite checkout."""
    local = Path(name)
    return local if local.is_dir() else PROJECT_DIR / name


def cache_store(directory: Path) -> Path:
    """The folder of a build cache's values (cache.DiskStore) in the cache folder `directory`."""
    return directory / f"v{CACHE_FORMAT}"


def framed_digest(*parts: bytes) -> bytes:
    """A digest of the parts in order, each framed by its length (so that no two lists of parts share one)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()


def store_file(directory: Path, kind: str, key: bytes) -> Path:
    """Where the build cache (cache.DiskStore in `directory`) keeps the value of `kind` under `key`."""
    name = key.hex()
    return directory / kind / name[:2] / f"{name}.pickle"


def site_key(out: Path) -> bytes:
    """The key of what the cache keeps of one site folder."""
    return framed_digest(str(out.resolve()).encode())


def file_stamps(roots: Iterable[Path], hidden: bool = True) -> Stamps:
    """path -> (mtime_ns, size) of every file under the roots (`hidden` False: but hidden ones and those in
    hidden folders, see input_stamps)."""
    found: Stamps = {}
    stack = [str(r) for r in roots if r.exists()]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if not hidden and entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file():
                    st = entry.stat()
                    found[entry.path] = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                continue
    return found


def input_stamps(roots: Iterable[Path]) -> Stamps:
    """file_stamps of a build's inputs (content, templates, theme). Hidden files and folders are none: the
    build cache's own (a build run from inside the content folder writes it there), an editor's or a version
    control's (model.found_content_files skips them too)."""
    return file_stamps(roots, hidden=False)


def stamps_digest(stamps: Stamps) -> bytes:
    """A digest of the stamps, whatever order they were taken in (cache.inputs_digest)."""
    import orjson  # in the child that takes the stamps, after the fork

    return framed_digest(orjson.dumps(sorted(stamps.items())))  # repr: 2.5x slower


def site_state_parts(get: Callable[[str, bytes], Any], key: bytes
                     ) -> tuple[dict[str, tuple[Any, ...]], Any, Any, dict[str, int], bytes, Any] | None:
    """(rows, link check's code version, groups, folders, generation, changes since or None) of a site as its
    last build left it (cache.read_site_state), its values read by `get(kind, key)`: the state saved whole,
    with the changes since put over it."""
    found = get(SITE_STATE, key)
    if not (isinstance(found, tuple) and len(found) == 5 and isinstance(found[0], dict)):
        return None
    rows, checked_by, groups, folders, generation = found
    changes = get(SITE_CHANGES, key)
    if not (isinstance(changes, tuple) and len(changes) == 5 and changes[0] == generation):
        return rows, checked_by, groups, folders, generation, None
    _, changed_rows, changed_folders, checked_by, groups = changes
    return (put_changes(rows, changed_rows), checked_by, groups, put_changes(folders, changed_folders), generation,
            (changed_rows, changed_folders))


def put_changes(whole: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`whole` (changed in place) with `changes` put over it; a None removes its key. New keys come last, in
    the order of the changes (as a quick rebuild adds files after the others)."""
    for key, value in changes.items():
        if value is None:
            whole.pop(key, None)
        else:
            whole[key] = value
    return whole


def state_identity(generation: bytes, changes: Any, rows: dict[str, Any], folders: dict[str, int]) -> tuple[Any, ...]:
    """What tells two readings of a site's state apart: its generation, and how many rows, folders and
    changes it has."""
    changed_rows, changed_folders = changes or ({}, {})
    return generation, len(rows), len(folders), len(changed_rows), len(changed_folders)


def site_untouched(site: Path, files: Iterable[tuple[str, tuple[int, ...] | None]], folders: dict[str, int]) -> bool:
    """Whether `site` is as a build left it: each of its `files` (path, stamp) and each of its `folders`
    (and its marker) as stamped then. A file added, removed or renamed anywhere changes its folder's time.
    (Instead of a walk of the site, which reads 10,000 report folders: 0.3 s at 10,000 reports, against
    0.1 s for the stats.)"""
    if MARKER not in folders:
        return False
    try:
        root = os.open(site, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:  # paths from the site's folder: the kernel walks fewer names (0.07 s against 0.1 s at 10,000 reports)
        for folder, mtime in folders.items():
            if os.stat(folder or ".", dir_fd=root).st_mtime_ns != mtime:
                return False
        for path, stamp in files:
            st = os.stat(path, dir_fd=root)
            if stamp is None or st.st_mtime_ns != stamp[0] or st.st_size != stamp[1]:
                return False
    except OSError:
        return False
    finally:
        os.close(root)
    return True


# ------------------------------------------------------------------------------------------------------
# The child that takes them early


class Lookahead:
    """The child process that takes a build's input stamps, and then checks the site against the state its
    last build left (site_untouched), while the build's main process imports its code. Each answer comes
    through a pipe; None when the child could not give it (then the main process takes them itself)."""

    def __init__(self, pid: int, fd: int, roots: list[Path]):
        self.pid, self._fd, self.roots = pid, fd, roots
        self._answers: list[Any] = []
        self._ended = False

    @classmethod
    def start(cls, roots: list[Path], store: Path, out: Path) -> Lookahead | None:
        """Fork the child (none where there is no fork): the stamps of the files under `roots`, then the
        verdict on `out` by the state kept in the cache folder `store`."""
        if not hasattr(os, "fork"):
            return None
        read, write = os.pipe()
        with suppress(ImportError, OSError, AttributeError):  # room for 10,000 files' stamps: the child never waits
            import fcntl

            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's work is checked through what it sends
            os.close(read)
            try:
                _look(write, roots, store, out)
            finally:
                os._exit(0)
        os.close(write)
        return cls(pid, read, roots)

    def input_stamps(self, roots: list[Path]) -> tuple[Stamps, bytes] | None:
        """The stamps of the files under `roots` and their digest (stamps_digest: the main process would
        take 0.015-0.04 s to make it at 10,000 reports), when the child took those of these roots."""
        found = self._answer(0) if roots == self.roots else None
        return found if isinstance(found, tuple) and len(found) == 2 and isinstance(found[0], dict) else None

    def site_untouched(self, identity: tuple[Any, ...]) -> bool | None:
        """The child's verdict on the site, when it read the state that `identity` tells (state_identity)."""
        found = self._answer(1)
        return found[1] if isinstance(found, tuple) and len(found) == 2 and found[0] == identity else None

    def _answer(self, number: int) -> Any:
        while len(self._answers) <= number and not self._ended:
            answer = _receive(self._fd)
            if answer is None:
                self._ended = True
            else:
                self._answers.append(pickle.loads(answer))
        return self._answers[number] if len(self._answers) > number else None

    def close(self) -> None:
        """Stop the child (it may still be checking the site) and collect it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _look(fd: int, roots: list[Path], store: Path, out: Path) -> None:
    stamps = input_stamps(roots)
    _send(fd, (stamps, stamps_digest(stamps)))
    state = site_state_parts(lambda kind, key: _read_value(store_file(store, kind, key)), site_key(out))
    if state is None:
        return
    rows, _, _, folders, generation, changes = state
    untouched = site_untouched(out.resolve(), ((path, row[4]) for path, row in rows.items()), folders)
    _send(fd, (state_identity(generation, changes, rows, folders), untouched))


def _read_value(path: Path) -> Any:
    try:
        return pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError, ValueError):
        return None


def _send(fd: int, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = len(data).to_bytes(8, "little") + data
    while data:
        data = data[os.write(fd, data):]


def _receive(fd: int) -> bytes | None:
    """One message of _send; None at the end of the pipe."""
    head = _read_exactly(fd, 8)
    return None if head is None else _read_exactly(fd, int.from_bytes(head, "little"))


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
