"""Derived view: the prebuilt, sharded, section-level Chinese search index (served under search/idx/).

How a query finds a section, and why the browser agrees with the build:
- Text is normalised the same way on both sides (NFKC, lower case, everything that is not a Han character
  or an ASCII letter/digit is a separator) and cut into runs of Han characters and runs of letters/digits.
- The vocabulary is jieba's search-mode words of 3+ characters (行政复议, 法律明白人's 明白人, 城事通), the
  `vocab_max` found in most sections. The index holds three kinds of terms: every letter/digit run whole
  (12345, 2023); every pair of adjacent Han characters, also across a little punctuation (行政, 政复,
  复议; “八五”普法 gives 五普) - a substring index, so 复议 finds 行政复议 and 网办率 finds its text
  whatever jieba made of it; and every vocabulary word wherever it stands in a run (人民调解 also inside
  人民调解员, where jieba cut otherwise).
- The manifest carries the vocabulary. The browser cuts a Han run of a query by forward maximum matching
  over it and covers the rest with character pairs - so every term it asks for is, by construction, a
  term the build wrote (tests/test_search.py runs the worker's code to check). It also asks for the pair
  where two pieces meet (法律|明白人 -> 律明), so a word is found as written, not scattered.
- Ranking is BM25 with the heading counted `heading_weight` times; the per-section part of BM25 is
  precomputed and stored as a small integer next to each posting, so the browser needs no lengths.
  Nearness of the query words (words typed together, quoted phrases) is checked on the text of the
  sections shown, which also decides which quoted-phrase candidates are real.

Files: search/idx/manifest.json (settings, vocabulary, facets, Traditional->Simplified character map),
search/idx/t/bN.json (one common term), search/idx/t/N.json (rare terms, by FNV-1a hash of the term),
search/idx/d/N.json (whole reports in order: report, and per section its id, heading path and text).
At most `max_files` files whatever the corpus size; a query reads the manifest, one file per term and
the text files of the sections it shows.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .datafile import read_yaml
from .errors import fail
from .model import LEVEL_LABELS, Report
from .render import OutputFile, SiteData, jurisdiction_label, report_path

INDEX_DIR = "search/idx/"
FORMAT_VERSION = 1
FIRST_RESULTS = 5  # results the search page shows first (PAGE in theme/search-worker.js)
IMPACT_SCALE = 32  # stored per-posting BM25 part is an integer 1..IMPACT_SCALE (5 bits is plenty)
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_RUN = re.compile(f"[{_HAN}]+|[0-9a-z]+")
_HAN_RUN = re.compile(f"^[{_HAN}]+$")
MAX_GAP = 3  # punctuation characters allowed between two characters of one query word (search-worker.js)


@dataclass(frozen=True)
class SearchSettings:
    heading_weight: int = 4
    k1: float = 1.2
    b: float = 0.75
    stop_ratio: float = 0.6
    stop_words: tuple[str, ...] = ()
    vocab_max: int = 40000
    max_files: int = 2000
    posting_shard_kb: int = 48
    doc_shard_kb: int = 64
    probes: dict[str, tuple[str, ...]] = field(default_factory=dict)


def load_search_settings(content_dir: Path) -> SearchSettings:
    path = content_dir / "search.yml"
    if not path.exists():
        return SearchSettings(probes={"行政复议案件": ("行政复议", "复议")})
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise fail(str(path), 1, "search settings must be a mapping", "write `field: value` lines")
    known = set(SearchSettings.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(str(path), 1, f"unknown search setting(s): {', '.join(unknown)}",
                   f"use only {', '.join(sorted(known))}")
    try:
        probes = {str(k): tuple(str(w) for w in v) for k, v in (raw.get("probes") or {}).items()}
        defaults = SearchSettings()
        settings = SearchSettings(
            heading_weight=int(raw.get("heading_weight", defaults.heading_weight)),
            k1=float(raw.get("k1", defaults.k1)), b=float(raw.get("b", defaults.b)),
            stop_ratio=float(raw.get("stop_ratio", defaults.stop_ratio)),
            stop_words=tuple(normalise(str(w)) for w in raw.get("stop_words") or ()),
            vocab_max=int(raw.get("vocab_max", defaults.vocab_max)),
            max_files=int(raw.get("max_files", defaults.max_files)),
            posting_shard_kb=int(raw.get("posting_shard_kb", defaults.posting_shard_kb)),
            doc_shard_kb=int(raw.get("doc_shard_kb", defaults.doc_shard_kb)), probes=probes)
    except (TypeError, ValueError, AttributeError) as exc:
        raise fail(str(path), 1, f"a search setting has the wrong type ({exc})",
                   "numbers for weights and sizes, lists of words for stop_words and probes") from None
    if settings.max_files < 4 or settings.heading_weight < 1 or not 0 < settings.stop_ratio <= 1:
        raise fail(str(path), 1, "max_files must be >= 4, heading_weight >= 1 and stop_ratio in (0, 1]",
                   "correct the value")
    return settings


# ------------------------------------------------------------------------------------------------------
# Text: the same normalisation and cutting as theme/search-worker.js


def normalise(text: str) -> str:
    """NFKC (full width -> half width), lower case; the browser does exactly this to a query."""
    return unicodedata.normalize("NFKC", text).lower()


def runs(text: str) -> list[tuple[str, int]]:
    """(run, offset) for each Han run and each ASCII letter/digit run of normalised text."""
    return [(m.group(), m.start()) for m in _RUN.finditer(normalise(text))]


def is_han(run: str) -> bool:
    return bool(_HAN_RUN.match(run))


def bigrams(run: str) -> Iterator[str]:
    return (run[i:i + 2] for i in range(len(run) - 1))


def joinable(gap: str) -> bool:
    """Two Han runs apart only by a little punctuation (no space) read as one (“八五”普法, 双随机、一公开):
    the pair across the gap is indexed, and the browser allows the same gap inside a query word."""
    return len(gap) <= MAX_GAP and not any(ch.isalnum() or ch.isspace() for ch in gap)


def fnv1a(term: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes; theme/search-worker.js computes the same to find a term's shard."""
    h = 0x811C9DC5
    for byte in term.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _fast_cutter():
    """rjieba (jieba's algorithm and dictionary in Rust, ~20x faster) when installed, else None.
    tests/test_search.py and bench/search_bench.py check that it cuts exactly as jieba does."""
    try:
        import rjieba
    except ImportError:
        return None
    return rjieba.cut_for_search


class Segmenter:
    """jieba search mode, checked once before use so that a broken setup fails the build loudly.
    Runs repeat a lot across reports (set phrases, headings), so each distinct run is cut once."""

    def __init__(self, probes: dict[str, tuple[str, ...]], fast: bool = True):
        import jieba

        jieba.setLogLevel(60)
        try:
            jieba.initialize()
        except Exception as exc:  # a missing or unreadable dictionary
            raise fail("content/search.yml", 1, f"the Chinese segmenter (jieba) did not load: {exc}",
                       "reinstall jieba (`pip install jieba`) and check its dictionary") from None
        self._cut = jieba.cut_for_search
        self._cache: dict[str, list[str]] = {}
        for text, expected in probes.items():
            got = set(self.words(text))
            missing = [w for w in expected if w not in got]
            if missing:
                raise fail("content/search.yml", 1,
                           f"the segmenter cut {text!r} into {sorted(got)}, without {', '.join(missing)}",
                           "jieba's dictionary is missing or replaced; reinstall jieba or correct `probes`")
        fast_cut = _fast_cutter() if fast else None
        if fast_cut and all(list(fast_cut(t)) == list(self._cut(t)) for t in probes):
            self._cut = fast_cut
        self._cache.clear()

    def words(self, han_run: str) -> list[str]:
        words = self._cache.get(han_run)
        if words is None:
            words = self._cache[han_run] = [w for w in self._cut(han_run) if w.strip()]
        return words


@dataclass(frozen=True)
class SectionText:
    """A section cut for indexing: its letter/digit runs and Han runs, heading and body apart."""

    heading_runs: tuple[str, ...]
    body_runs: tuple[str, ...]
    heading_joins: tuple[str, ...]  # pairs across a little punctuation (joinable)
    body_joins: tuple[str, ...]
    length: int  # characters of all runs, the heading counted heading_weight times


def cut_text(text: str) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """(runs, joins, characters) of one text."""
    norm = normalise(text)
    found: list[str] = []
    joins: list[str] = []
    previous: tuple[str, int] | None = None  # last Han run and where it ended
    for m in _RUN.finditer(norm):
        run = m.group()
        found.append(run)
        if not is_han(run):
            previous = None
            continue
        if previous and joinable(norm[previous[1]:m.start()]):
            joins.append(previous[0][-1] + run[0])  # “八五”普法 is found by 八五普法
        previous = (run, m.end())
    return tuple(found), tuple(joins), sum(len(r) for r in found)


def section_text(title: str, body: str, heading_weight: int) -> SectionText:
    heading_runs, heading_joins, heading_size = cut_text(title)
    body_runs, body_joins, body_size = cut_text(body)
    return SectionText(heading_runs, body_runs, heading_joins, body_joins, heading_size * heading_weight + body_size)


def vocabulary(texts: list[SectionText], segmenter: Segmenter, settings: SearchSettings) -> set[str]:
    """jieba search-mode words of 3+ Han characters, the `vocab_max` found in most sections."""
    df: Counter[str] = Counter()
    for t in texts:
        words: set[str] = set()
        for run in (*t.heading_runs, *t.body_runs):
            if is_han(run):
                cut = segmenter.words(run)
                if not cut and len(run) > 1:
                    raise fail("content/search.yml", 1, f"the segmenter returned nothing for {run[:20]!r}",
                               "jieba is misconfigured; reinstall it")
                words.update(w for w in cut if len(w) >= 3 and is_han(w))
        df.update(words)
    ranked = sorted((w for w in df if w not in settings.stop_words), key=lambda w: (-df[w], w))
    return set(ranked[: settings.vocab_max])


class TermCounter:
    """Index terms of runs: a letter/digit run whole; of a Han run every character pair and every
    vocabulary word it contains (wherever it stands, not only where jieba cut it out: so a query word
    that the browser cuts from the vocabulary finds every section that has it)."""

    def __init__(self, vocab: set[str]):
        self.vocab = vocab
        self.starts = {w[:3] for w in vocab}
        self.longest = max((len(w) for w in vocab), default=3)
        self._cache: dict[str, Counter[str]] = {}

    def of_run(self, run: str) -> Counter[str]:
        found = self._cache.get(run)
        if found is None:
            found = Counter()
            if not is_han(run):
                found[run] += 1
            else:
                found.update(bigrams(run))
                for i in range(len(run) - 2):
                    if run[i:i + 3] in self.starts:
                        found.update(run[i:i + n] for n in range(3, min(self.longest, len(run) - i) + 1)
                                     if run[i:i + n] in self.vocab)
            self._cache[run] = found
        return found

    def of(self, runs: tuple[str, ...], joins: tuple[str, ...]) -> Counter[str]:
        terms: Counter[str] = Counter(joins)
        for run in runs:
            terms.update(self.of_run(run))
        return terms


# ------------------------------------------------------------------------------------------------------
# Index


@dataclass(frozen=True)
class IndexedSection:
    number: int  # global, in report order
    report: int
    anchor: str
    title: str
    path: str  # heading path, " › "-joined
    text: str


def _heading_path(report: Report, section_id: str) -> str:
    section = report.section(section_id)
    if section is None:
        return ""
    return " › ".join(s.title.rstrip("。") for s in report.heading_path(section))


def section_list(data: SiteData) -> list[IndexedSection]:
    out: list[IndexedSection] = []
    for r_index, report in enumerate(data.reports):
        for section in report.sections:
            out.append(IndexedSection(len(out), r_index, section.id, section.title.rstrip("。"),
                                      _heading_path(report, section.id), section.text))
    return out


def _facet_ranges(numbers: Iterable[int]) -> list[int]:
    """Sorted section numbers -> flat [start, length, start, length ...] (reports are contiguous runs)."""
    flat: list[int] = []
    for n in numbers:
        if flat and flat[-2] + flat[-1] == n:
            flat[-1] += 1
        else:
            flat += [n, 1]
    return flat


def _encode_postings(postings: list[tuple[int, int]]) -> list[list[int]]:
    deltas, impacts, last = [], [], 0
    for number, impact in postings:
        deltas.append(number - last)
        impacts.append(impact)
        last = number
    return [deltas, impacts]


def traditional_map(charset: set[str]) -> str:
    """'繁简繁简…' pairs from OpenCC's character table, only for characters that the index can use:
    the Simplified one occurs in the index and the Traditional one does not (so 覆 stays 覆)."""
    import opencc

    table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    if not table.exists():
        raise fail(str(table), 1, "OpenCC's character table is missing",
                   "reinstall opencc-python-reimplemented")
    pairs = []
    for line in table.read_text(encoding="utf-8").splitlines():
        trad, _, simp = line.partition("\t")
        first = simp.split(" ")[0] if simp else ""
        if len(trad) == 1 and len(first) == 1 and first in charset and trad not in charset:
            pairs.append(trad + first)
    return "".join(sorted(pairs))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _report_row(report: Report) -> list[object]:
    j = report.jurisdiction
    return [report_path(report), jurisdiction_label(report), report.year, j.province or "", j.city or "",
            j.level]


def _facet_values(data: SiteData, sections: list[IndexedSection]) -> dict[str, list[int]]:
    """facet key (@y:2023, @p:河北省, @c:邢台市, @l:district, @t:topic-slug) -> section numbers."""
    values: dict[str, list[int]] = {}
    for s in sections:
        report = data.reports[s.report]
        j = report.jurisdiction
        keys = [f"@y:{report.year}", f"@l:{j.level}"]
        keys += [f"@p:{j.province}"] if j.province else []
        keys += [f"@c:{j.city}"] if j.city else []
        keys += [f"@t:{m.topic}" for m in data.topics.get(report.slug, {}).get(s.anchor, ())]
        for key in keys:
            values.setdefault(key, []).append(s.number)
    return values


def build_search_files(data: SiteData, settings: SearchSettings) -> list[OutputFile]:
    sections = section_list(data)
    segmenter = Segmenter(settings.probes)  # fails loudly when jieba is missing or broken
    texts = [section_text(s.title, s.text, settings.heading_weight) for s in sections]
    vocab = vocabulary(texts, segmenter, settings)
    counter = TermCounter(vocab)
    terms = [(counter.of(t.heading_runs, t.heading_joins), counter.of(t.body_runs, t.body_joins), t.length)
             for t in texts]
    n = max(len(sections), 1)
    avgdl = sum(length for _, _, length in terms) / n or 1.0

    df: Counter[str] = Counter()
    for heading, body, _ in terms:
        df.update(heading.keys() | body.keys())
    stop = {term for term, count in df.items() if count / n > settings.stop_ratio} | set(settings.stop_words)
    vocab -= stop
    indexed = {term for term in df if term not in stop}

    postings: dict[str, list[tuple[int, int]]] = {}
    k1, b, hw = settings.k1, settings.b, settings.heading_weight
    for number, (heading, body, length) in enumerate(terms):
        norm = k1 * (1 - b + b * length / avgdl)
        for term in heading.keys() | body.keys():
            if term not in indexed:
                continue
            tf = body[term] + hw * heading[term]
            part = tf / (tf + norm)  # BM25's tf part, divided by (k1 + 1): in (0, 1)
            postings.setdefault(term, []).append((number, max(1, round(part * IMPACT_SCALE))))
    facets = _facet_values(data, sections)

    entries: dict[str, list[object]] = {}
    for term in sorted(postings):
        idf = math.log(1 + (n - len(postings[term]) + 0.5) / (len(postings[term]) + 0.5))
        entries[term] = [round(idf * 1000), *_encode_postings(postings[term])]
    for key, numbers in sorted(facets.items()):
        entries[key] = [0, _facet_ranges(numbers)]
    own, shared, doc_target = _plan_files(entries, sections, settings)
    files = [OutputFile(f"{INDEX_DIR}t/b{i}.json", _json({term: entries[term]})) for i, term in enumerate(own)]
    shards: list[dict[str, object]] = [{} for _ in range(shared)]
    for term, entry in entries.items():
        if term not in own:
            shards[fnv1a(term) % shared][term] = entry
    files += [OutputFile(f"{INDEX_DIR}t/{i}.json", _json(shard)) for i, shard in enumerate(shards)]

    doc_files, doc_starts = _doc_shards(data, sections, doc_target)
    charset = {ch for term in df for ch in term if is_han(ch)}
    manifest = {
        "version": FORMAT_VERSION, "sections": len(sections), "reports": len(data.reports),
        "termShards": shared, "ownFiles": {term: i for i, term in enumerate(own)}, "docStarts": doc_starts,
        "impactScale": IMPACT_SCALE,
        "vocab": sorted(vocab), "stop": sorted(stop), "t2s": traditional_map(charset),
        "facets": _facet_counts(data, facets),
    }
    return [OutputFile(INDEX_DIR + "manifest.json", _json(manifest)), *files, *doc_files]


def _plan_files(entries: dict[str, list[object]], sections: list[IndexedSection],
                settings: SearchSettings) -> tuple[list[str], int, int]:
    """Split the file budget (max_files - 1 for the manifest) between term lists and section texts.

    A query downloads whole files: its terms' lists, then the texts of the FIRST_RESULTS sections it
    shows. So a common term (行政复议) gets a file of its own - fetching it brings nothing else - rare
    terms share files chosen by hash, and when the budget binds, shared and text files are sized so that
    a two-word query reads about as many bytes of each. Returns (terms with their own file, number of
    shared files, target bytes of a text file)."""
    budget = settings.max_files - 1
    target, doc_min = settings.posting_shard_kb * 1024, settings.doc_shard_kb * 1024
    sizes = {term: len(_json(entry)) for term, entry in entries.items()}
    big = sorted((t for t, size in sizes.items() if size >= target), key=lambda t: (-sizes[t], t))
    own = big[: budget // 8]
    rest = sum(sizes.values()) - sum(sizes[t] for t in own)
    doc_bytes = sum(len(s.text.encode()) + len(s.path.encode()) + len(s.title.encode()) + 24 for s in sections)
    shared, docs = math.ceil(rest / target) or 1, math.ceil(doc_bytes / doc_min) or 1
    free = budget - len(own)
    if shared + docs > free:
        ratio = math.sqrt(2 * rest / (FIRST_RESULTS * doc_bytes))
        shared = max(1, min(shared, round(free * ratio / (1 + ratio))))
        docs = free - shared
    return own, shared, max(doc_min, math.ceil(doc_bytes / docs))


def _doc_shards(data: SiteData, sections: list[IndexedSection], target: int) -> tuple[list[OutputFile], list[int]]:
    """Whole reports per file, in order, until a file reaches `target` bytes."""
    files: list[OutputFile] = []
    starts: list[int] = []
    reports: list[list[object]] = []
    rows: list[list[object]] = []
    size = 0
    current_report = -1

    def flush() -> None:
        nonlocal reports, rows, size, current_report
        if rows:
            files.append(OutputFile(f"{INDEX_DIR}d/{len(files)}.json", _json({"r": reports, "s": rows})))
        reports, rows, size, current_report = [], [], 0, -1

    for s in sections:
        if s.report != current_report:
            if size >= target:
                flush()
            if not rows:
                starts.append(s.number)
            reports.append(_report_row(data.reports[s.report]))
            current_report = s.report
        rows.append([len(reports) - 1, s.anchor, s.path, s.title, s.text])
        size += len(s.text.encode()) + len(s.path.encode()) + len(s.title.encode()) + 24
    flush()
    return files, starts


def _facet_counts(data: SiteData, facets: dict[str, list[int]]) -> dict[str, list[list[object]]]:
    """Facet values with labels and section counts, for the filter menus."""
    topic_names = {t.slug: t.name for t in data.topic_rules.topics}
    labels = {"y": lambda v: f"{v}年度", "l": lambda v: LEVEL_LABELS.get(v, v), "p": str, "c": str,
              "t": lambda v: topic_names.get(v, v)}
    out: dict[str, list[list[object]]] = {k: [] for k in labels}
    for key, numbers in sorted(facets.items()):
        kind, value = key[1], key[3:]
        out[kind].append([value, labels[kind](value), len(numbers)])
    return out


def search_files(data: SiteData, content_dir: Path) -> list[OutputFile]:
    return build_search_files(data, load_search_settings(content_dir))
