"""Derived view: the prebuilt, sharded, section-level Chinese search index (served under search/idx/).

How a query finds a section, and why the browser agrees with the build:
- Text is normalised the same way on both sides (NFKC, lower case, everything that is not a Han character
  or an ASCII letter/digit is a separator) and cut into runs of Han characters and runs of letters/digits.
- The vocabulary is jieba's search-mode words of 3+ characters (行政复议, 法律明白人's 明白人, 城事通), the
  `vocab_max` found in most sections, and phrases: 2-4 of jieba's words in a row (重大行政决策, 包容审慎监管,
  法律明白人), the `phrase_max` found in most sections among those that stand as a unit (see
  choose_vocabulary). The index holds three kinds of terms: every letter/digit run whole
  (12345, 2023); every pair of adjacent Han characters, also across a little punctuation (行政, 政复,
  复议; “八五”普法 gives 五普) - a substring index, so 复议 finds 行政复议 and 网办率 finds its text
  whatever jieba made of it; and every vocabulary word wherever it stands in a run (人民调解 also inside
  人民调解员, where jieba cut otherwise) or across a little punctuation inside a clause (“双随机、一公开”).
  A phrase makes a query typed as it one word list instead of one per character pair and junction.
- The manifest carries the vocabulary. The browser cuts a Han run of a query by forward maximum matching
  over it and covers the rest with character pairs - so every term it asks for is, by construction, a
  term the build wrote (tests/test_search.py runs the worker's code to check). It also asks for the pair
  where two pieces meet (明白人|法律 -> 人法), so a word is found as written, not scattered. A quoted phrase
  is cut as one run ("行政复议 案件" -> the phrase 行政复议案件).
- Ranking is BM25 with the heading counted `heading_weight` times. The per-section part of BM25 (an
  impact, 1..IMPACT_SCALE) is looked up in a table by the term's count in the section and the section's
  length class (its length relative to the average, in steps of 9 %): the term files carry the counts,
  the manifest the classes and the table. So an edit that changes a section's length changes only the
  files of the terms whose counts changed, not those of all the section's terms.
  Nearness of the query words (words typed together, quoted phrases) is checked on the text of the
  sections shown, which also decides which quoted-phrase candidates are real.

Files (format 4):
- search/idx/manifest.json: what a query needs before it knows its terms - vocabulary, stop terms, the
  Traditional->Simplified character map, where terms and sections live, each section's length class
  (one character of DIGITS) and the impact table (per count 1..TF_MAX, the impact - 1 of each class).
  Nothing else. (The classes in a file of their own cost every first query a request: at 1,000 reports
  30 of the 35 queries of bench/search_bench.py took at most 5 requests, against 31 with them here.)
- search/idx/t/bN.json (one common term) and t/N.json (rarer terms, by FNV-1a hash of the term): per
  term [idf x 1000, section numbers as varint deltas, counts (a character each, count - 1)], as text in
  64 characters (JSON, so that a static host gzips them; gzipped they are as small as binary); facet
  keys (@y:2023 ...) -> section numbers; and "snippet rows": for a term with a file of its own its
  `snippet_rows` best sections (a vocabulary word or a term of SHARED_ROWS_MIN_SECTIONS+ sections sharing a
  file: its FIRST_RESULTS best), each with report, heading path and a window of text around the term, in
  the order a one-word query ranks them. A query's first results are usually among its words' rows, so it
  shows them with snippets from the files it read to rank, without another request.
- search/idx/d/N.json: `docSections` sections per file, in order (report row, and per section its id,
  heading path, title and whole text): read for results that no snippet row covers, further pages of
  results and quoted phrases a window cannot confirm. Sections are numbered in the order of their
  headings (search_input_of), so a query's first results - mostly sections under one heading in many
  reports - share a text file or two; this order also makes the files gzip much smaller.
  Facet keys map to section numbers as varint deltas (the same text as postings, without counts).
At most `max_files` files whatever the corpus size.

Speed: texts are cut and counted in forked worker processes (jieba initialised once, in the parent), by
ranges of sections that start where a section's name says (_content_ranges); each distinct run is cut into
terms once and the postings are counted, merged and encoded with numpy; term and text files are written by
forked workers too. The output is the same bytes whatever the number of workers and ranges. With a memo
(IndexMemo, in the build cache) a rebuild counts again only the ranges whose texts changed, and takes over
the last site's files whose inputs did not change.
Memory: the second pass (postings) runs in workers forked afresh, from the ranges as the first pass cut
them (_Units), so that the first pass's heap is not carried into it; neither pass keeps what it asks only
once (texts, jieba's words, a run's terms).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gzip
import hashlib
import math
import pickle
import re
import shutil
import sys
import tempfile
import unicodedata
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson

from . import wordtable
from .datafile import read_yaml
from .errors import fail
from .imports import installed_versions, lazy_import
from .model import Report
from .render import OutputFile, SiteData, jurisdiction_label, report_path
from .workers import collections_paused, forked_processes, pool_size, received, reporting_to, return_freed_memory

np = lazy_import("numpy")  # a quick rebuild's main process never loads it

INDEX_DIR = "search/idx/"
FORMAT_VERSION = 4
FIRST_RESULTS = 5  # results the search page shows first (PAGE in theme/search-worker.js)
IMPACT_SCALE = 32  # BM25's per-posting part is an integer 1..IMPACT_SCALE (5 bits is plenty)
TF_MAX = 64  # a term's count in a section is taken up to this (one character of DIGITS in a term file)
# A section's length is taken as its class: the average length times 2 ** ((class - LENGTH_MIDDLE) / LENGTH_STEPS),
# the nearest, within 1/16 to 16 times the average (steps of 9 %; BM25's impacts, in 32 steps, barely notice).
LENGTH_CLASSES = 64
LENGTH_MIDDLE = 32
LENGTH_STEPS = 8
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_RUN = re.compile(f"[{_HAN}]+|[0-9a-z]+")
_HAN_RUN = re.compile(f"^[{_HAN}]+$")
_PIECES = re.compile(f"([{_HAN}]+|[0-9a-z]+)")  # split: gap, run, gap, run, ..., gap (a gap may be empty)
_HAN_FIRST = "\u3400"  # a run that starts at or above this is a Han run (the others are [0-9a-z])
MAX_GAP = 3  # punctuation characters allowed between two characters of one query word (search-worker.js)
_CLAUSE_ENDS = ",.;:!?。"  # after NFKC: a gap with one of these joins two runs, but chains no words across
CHAIN_MARK = "|"  # in the joins of a text, a chain of runs is written with this between them
SNIPPET_WIDTH = 90  # the worker's snippet(): hits within this many characters, 20 before, 110 shown
SNIPPET_LEAD = 20
PARALLEL_MIN_SECTIONS = 4000  # below this the index is built in this process (forking costs more)
T = TypeVar("T")


@dataclass(frozen=True)
class SearchSettings:
    heading_weight: int = 4
    k1: float = 1.2
    b: float = 0.75
    stop_ratio: float = 0.6
    stop_words: tuple[str, ...] = ()
    vocab_max: int = 40000
    phrase_max: int = 3000
    phrase_min_share: float = 0.002
    max_files: int = 2000
    posting_shard_kb: int = 48
    doc_shard_kb: int = 64
    snippet_rows: int = 20
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
            phrase_max=int(raw.get("phrase_max", defaults.phrase_max)),
            phrase_min_share=float(raw.get("phrase_min_share", defaults.phrase_min_share)),
            max_files=int(raw.get("max_files", defaults.max_files)),
            posting_shard_kb=int(raw.get("posting_shard_kb", defaults.posting_shard_kb)),
            doc_shard_kb=int(raw.get("doc_shard_kb", defaults.doc_shard_kb)),
            snippet_rows=int(raw.get("snippet_rows", defaults.snippet_rows)), probes=probes)
    except (TypeError, ValueError, AttributeError) as exc:
        raise fail(str(path), 1, f"a search setting has the wrong type ({exc})",
                   "numbers for weights and sizes, lists of words for stop_words and probes") from None
    if settings.max_files < 4 or settings.heading_weight < 1 or not 0 < settings.stop_ratio <= 1:
        raise fail(str(path), 1, "max_files must be >= 4, heading_weight >= 1 and stop_ratio in (0, 1]",
                   "correct the value")
    if settings.snippet_rows < FIRST_RESULTS:
        raise fail(str(path), 1, f"snippet_rows must be at least {FIRST_RESULTS} (the results shown first)",
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


@functools.cache
def cutter_versions() -> tuple[str, str] | None:
    """(jieba's version, rjieba's): what decides whether they cut alike. None without rjieba."""
    found = installed_versions(("jieba", "rjieba"))
    jieba, rjieba = found["jieba"], found["rjieba"]
    return (jieba, rjieba) if jieba is not None and rjieba is not None else None


def _make_word_table(fast_cut: Callable[[str], list[str]], probes: dict[str, tuple[str, ...]]) -> None:
    """The dictionary's table (wordtable), when it is missing and it cuts the probes as rjieba does: once per
    installed jieba and rjieba (0.5 s), by a segmenter that has loaded rjieba whole."""
    versions = cutter_versions()
    folder = wordtable.table_folder(versions) if versions else None
    if versions is None or folder is None or folder.is_dir() or not wordtable.write_table(folder):
        return
    few_cut = wordtable.few_runs_cutter(versions)
    if few_cut is None or any(few_cut(t) != list(fast_cut(t)) for t in probes):
        shutil.rmtree(folder, ignore_errors=True)


def agreement_mark(probes: dict[str, tuple[str, ...]]) -> Path | None:
    """A file that says rjieba cut the probes exactly as jieba, for the installed versions of both. Beside
    jieba's own cache (jieba.cache in the temporary folder): a build then need not load jieba (0.6 s) only
    to compare them again."""
    versions = cutter_versions()
    if versions is None:
        return None
    digest = hashlib.blake2b(repr((versions, sorted(probes.items()))).encode(), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"reportsite-rjieba-agrees-{digest}"


class Segmenter:
    """jieba search mode, checked once before use so that a broken setup fails the build loudly.
    Runs repeat a lot across reports (set phrases, headings), so each distinct run is cut once.
    rjieba cuts instead when it cuts the probes as jieba does (remembered: agreement_mark); and a segmenter
    for `few` runs (a patch after an edit) loads only their words of the dictionary, when its table is
    there (wordtable: made by a segmenter that loaded rjieba whole)."""

    def __init__(self, probes: dict[str, tuple[str, ...]], fast: bool = True, few: bool = False):
        mark = agreement_mark(probes) if fast else None
        agreed = mark is not None and mark.exists()
        few_cut = wordtable.few_runs_cutter(cutter_versions()) if agreed and few else None
        fast_cut = _fast_cutter() if mark is not None and few_cut is None else None
        self._cache: dict[str, list[str]] = {}
        self.fast = few_cut is not None or (fast_cut is not None and agreed)
        self._cut = few_cut or (fast_cut if fast_cut and self.fast else self._jieba_cut())
        self._check(probes)
        if fast_cut and not self.fast and all(list(fast_cut(t)) == list(self._cut(t)) for t in probes):
            self._cut, self.fast = fast_cut, True
            with contextlib.suppress(OSError):  # a read-only temporary folder: compared again next time
                if mark:
                    mark.touch()
        if fast_cut and self.fast:
            _make_word_table(fast_cut, probes)
        self._cache.clear()

    @staticmethod
    def _jieba_cut() -> Callable[[str], Iterator[str]]:
        import jieba

        jieba.setLogLevel(60)
        try:
            jieba.initialize()
        except Exception as exc:  # a missing or unreadable dictionary
            raise fail("content/search.yml", 1, f"the Chinese segmenter (jieba) did not load: {exc}",
                       "reinstall jieba (`pip install jieba`) and check its dictionary") from None
        return jieba.cut_for_search

    def _check(self, probes: dict[str, tuple[str, ...]]) -> None:
        for text, expected in probes.items():
            got = set(self.words(text))
            missing = [w for w in expected if w not in got]
            if missing:
                raise fail("content/search.yml", 1,
                           f"the segmenter cut {text!r} into {sorted(got)}, without {', '.join(missing)}",
                           "jieba's dictionary is missing or replaced; reinstall jieba or correct `probes`")

    def words(self, han_run: str, remember: bool = True) -> list[str]:
        """The run's words; remembered for the next call unless told not to (by a caller that keeps what it
        needs of them itself)."""
        words = self._cache.get(han_run)
        if words is None:
            words = self._cut(han_run)
            # the words of a run of letters and digits alone (as every run of cut_text is) hold no space:
            # rjieba's list is kept as it is (sifting the index's million runs took 2 % of a build)
            if not (type(words) is list and han_run.isalnum() and "" not in words):
                words = [w for w in words if w.strip()]
            if remember:
                self._cache[han_run] = words
        return words


@dataclass(frozen=True)
class SectionText:
    """A section cut for indexing: its letter/digit runs and Han runs, heading and body apart."""

    heading_runs: tuple[str, ...]
    body_runs: tuple[str, ...]
    heading_joins: tuple[str, ...]  # pairs across a little punctuation (joinable)
    body_joins: tuple[str, ...]
    length: int  # characters of all runs, the heading counted heading_weight times


_JOINED, _CHAINED = 1, 2


@functools.cache
def _gap_kind(gap: str) -> int:
    """How two Han runs apart by `gap` go together: 0 not at all; _JOINED, the pair of characters across
    the gap is a term (joinable); _CHAINED, also a vocabulary word may stand across it (the gap ends no
    clause: 双随机、一公开, “八五”普法; not 监管，深化)."""
    if not joinable(gap):
        return 0
    return _JOINED if any(ch in _CLAUSE_ENDS for ch in gap) else _CHAINED


def cut_text(text: str) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """(runs, joins, characters) of one text. A join is the pair of Han characters on either side of a
    gap of 1..MAX_GAP characters that are neither letters, digits nor spaces (see joinable), or a chain
    of runs so joined (八五|普法), whose vocabulary words across a gap are terms too (TermCounter.chain_terms).
    One split gives the runs and the gaps between them: a pattern per kind of join took half as long again,
    and this is where the index's first pass spends most of its time."""
    pieces = _PIECES.split(normalise(text))
    runs = pieces[1::2]
    joins: list[str] = []  # “八五”普法 is found by 八五普法
    chains: list[str] = []
    start = 0  # of the chain that runs[k] ends
    # each run with the gap after it and the next run (the last run has none: zip stops there)
    for k, (left, gap, right) in enumerate(zip(runs, pieces[2::2], runs[1:], strict=False)):
        kind = (_gap_kind(gap) if len(gap) <= MAX_GAP and left[0] >= _HAN_FIRST and right[0] >= _HAN_FIRST
                else 0)
        if kind:
            joins.append(left[-1] + right[0])
        if kind != _CHAINED:
            if k > start:
                chains.append(CHAIN_MARK.join(runs[start:k + 1]))
            start = k + 1
    if len(runs) - 1 > start:
        chains.append(CHAIN_MARK.join(runs[start:]))
    return tuple(runs), tuple(joins + chains), sum(map(len, runs))


def section_text(title: str, body: str, heading_weight: int) -> SectionText:
    heading_runs, heading_joins, heading_size = cut_text(title)
    body_runs, body_joins, body_size = cut_text(body)
    return SectionText(heading_runs, body_runs, heading_joins, body_joins, heading_size * heading_weight + body_size)


PHRASE_TOKENS = 4  # a phrase is 2..PHRASE_TOKENS consecutive jieba words...
PHRASE_CHARS = (4, 10)  # ...of this many Han characters in all
Sides = tuple[str | None, str | None]  # a phrase's one neighbouring word on the left / right, None: several or none


def accurate_words(run: str, search_words: list[str]) -> list[str]:
    """jieba's accurate-mode words of a run, recovered from its search-mode output (which gives each word
    after the shorter words inside it): read from the end, the words that tile the run. [] if they do not."""
    end, out = len(run), []
    for word in reversed(search_words):
        if len(word) <= end and run.startswith(word, end - len(word)):
            out.append(word)
            end -= len(word)
    return out[::-1] if end == 0 else []


def run_phrases(words: list[str], breaks: tuple[int, ...] = ()) -> dict[str, Sides]:
    """Phrases of a run's accurate words: 2..PHRASE_TOKENS words in a row of PHRASE_CHARS characters, each
    with the word before and after it (None where the run starts or ends: a phrase standing alone).
    With `breaks` (indices of words that start a run of a chain), only the phrases across one."""
    found: dict[str, Sides] = {}
    # one string per distinct word, not one per occurrence: the sides of every phrase of a site hold them
    # (11 MB a worker at 10,000 reports), and a pickle writes each once
    words = list(map(sys.intern, words))
    low, high = PHRASE_CHARS
    last = len(words) - 1
    if breaks:
        firsts = sorted({i for b in breaks for i in range(max(0, b - PHRASE_TOKENS + 1), b)})
    else:
        firsts = range(len(words))
    for i in firsts:
        crossing = breaks[bisect.bisect_right(breaks, i)] if breaks and i < breaks[-1] else len(words)
        size = len(words[i])
        phrase = words[i]
        for j in range(i + 1, min(i + PHRASE_TOKENS, len(words))):
            size += len(words[j])
            phrase += words[j]
            if size > high:
                break
            if size >= low and (not breaks or crossing <= j):  # a break in i+1..j: the phrase crosses it
                sides = (words[i - 1] if i else None, words[j + 1] if j < last else None)
                old = found.get(phrase)
                found[phrase] = sides if old is None else merge_sides(old, sides)
    return found


def merge_sides(a: Sides, b: Sides) -> Sides:
    """A side stays a word only while every occurrence has that same word there."""
    return (a[0] if a[0] == b[0] else None, a[1] if a[1] == b[1] else None)


def add_sides(into: dict[str, Sides], found: dict[str, Sides]) -> None:
    for phrase, sides in found.items():
        into[phrase] = merge_sides(into[phrase], sides) if phrase in into else sides


class WordFinder:
    """jieba search-mode words of 3+ Han characters in a text's runs (each distinct run cut once), and the
    phrases (run_phrases) of its runs. With remember=False nothing is kept between calls: for a caller that
    asks once per distinct run and chain (_RangeCounter; what it would keep took 35 MB a worker at 10,000
    reports, and cutting a run again costs little)."""

    def __init__(self, segmenter: Segmenter, remember: bool = True):
        self.segmenter = segmenter
        self._remember = remember
        self._cache: dict[str, frozenset[str]] = {}
        self._chains: dict[str, dict[str, Sides]] = {}

    def of_run(self, run: str) -> frozenset[str]:
        words = self._cache.get(run)
        if words is None:
            if not is_han(run):
                words = frozenset()
            else:
                cut = self.segmenter.words(run, self._remember)
                if not cut and len(run) > 1:
                    raise fail("content/search.yml", 1, f"the segmenter returned nothing for {run[:20]!r}",
                               "jieba is misconfigured; reinstall it")
                words = frozenset(w for w in cut if len(w) >= 3 and is_han(w))
            if self._remember:
                self._cache[run] = words
        return words

    def phrases_of_run(self, run: str) -> dict[str, Sides]:
        if not is_han(run) or len(run) < PHRASE_CHARS[0]:
            return {}
        return run_phrases(accurate_words(run, self.segmenter.words(run, self._remember)))

    def phrases_of_joins(self, joins: tuple[str, ...]) -> dict[str, Sides]:
        """Phrases across the gaps of a text's chains of runs (“八五”普法 -> 八五普法): the words of each run
        in a row, as if the gaps were not there; only phrases that cross a gap (the others are a run's)."""
        found: dict[str, Sides] = {}
        for chain in joins:
            if CHAIN_MARK in chain:
                phrases = self._chains.get(chain)
                if phrases is None:
                    words: list[str] = []
                    breaks: list[int] = []
                    for run in chain.split(CHAIN_MARK):
                        breaks.append(len(words))
                        words += accurate_words(run, self.segmenter.words(run, self._remember)) or [run]
                    phrases = run_phrases(words, tuple(breaks[1:]))
                    if self._remember:
                        self._chains[chain] = phrases
                add_sides(found, phrases)
        return found

    def of(self, text: SectionText) -> set[str]:
        return set().union(*map(self.of_run, text.heading_runs), *map(self.of_run, text.body_runs))


def choose_vocabulary(df: Counter[str], settings: SearchSettings, phrase_df: Counter[str] | None = None,
                      sides: dict[str, Sides] | None = None, sections: int = 0) -> set[str]:
    """The `vocab_max` words found in most sections (ties by the word), without stop words; and the
    `phrase_max` phrases found in most sections (at least `phrase_min_share` of them) that stand as a unit:
    not always after the same word, nor always before the same word (重大行政决策 is a phrase, 双随机一 is not:
    公开 always follows). A query typed as a phrase then needs one word list, not one per character pair."""
    vocab = set(ranked_words(df, settings)[: settings.vocab_max])
    if phrase_df and sides is not None:
        least = phrase_least(settings, sections)
        phrases = sorted((p for p, count in phrase_df.items() if count >= least and p not in vocab
                          and p not in settings.stop_words and sides[p] == (None, None)),
                         key=lambda p: (-phrase_df[p], p))
        vocab.update(phrases[: settings.phrase_max])
    return vocab


def ranked_words(df: Counter[str] | dict[str, int], settings: SearchSettings) -> list[str]:
    """The words that may be in the vocabulary, those found in most sections first (ties by the word)."""
    return sorted((w for w in df if w not in settings.stop_words), key=lambda w: (-df[w], w))


def phrase_least(settings: SearchSettings, sections: int) -> float:
    """In how many sections a phrase is found, at least, to be in the vocabulary."""
    return max(2, settings.phrase_min_share * sections)


def vocabulary(texts: list[SectionText], segmenter: Segmenter, settings: SearchSettings) -> set[str]:
    """jieba search-mode words of 3+ Han characters and phrases, as choose_vocabulary picks them."""
    finder = WordFinder(segmenter)
    df: Counter[str] = Counter()
    phrase_df: Counter[str] = Counter()
    sides: dict[str, Sides] = {}
    for t in texts:
        df.update(finder.of(t))
        found = finder.phrases_of_joins(t.heading_joins + t.body_joins)
        for run in (*t.heading_runs, *t.body_runs):
            add_sides(found, finder.phrases_of_run(run))
        phrase_df.update(list(found))
        add_sides(sides, found)
    return choose_vocabulary(df, settings, phrase_df, sides, len(texts))


class TermCounter:
    """Index terms of runs: a letter/digit run whole; of a Han run every character pair and every
    vocabulary word it contains (wherever it stands, not only where jieba cut it out: so a query word
    that the browser cuts from the vocabulary finds every section that has it). With remember=False
    nothing is kept between calls, for a caller that asks once per distinct run (range_postings)."""

    def __init__(self, vocab: set[str], remember: bool = True):
        self.vocab = vocab
        self.starts = {w[:3] for w in vocab}
        self.longest = max((len(w) for w in vocab), default=3)
        self._cache: dict[str, list[str]] = {}
        self._remember = remember

    def run_terms(self, run: str) -> list[str]:
        """The run's terms, each as often as it occurs."""
        found = self._cache.get(run)
        if found is None:
            if not is_han(run):
                found = [run]
            else:
                found = list(bigrams(run))
                for i in range(len(run) - 2):
                    if run[i:i + 3] in self.starts:
                        found += [run[i:i + n] for n in range(3, min(self.longest, len(run) - i) + 1)
                                  if run[i:i + n] in self.vocab]
            if self._remember:
                self._cache[run] = found
        return found

    def of_run(self, run: str) -> Counter[str]:
        return Counter(self.run_terms(run))

    def chain_terms(self, chain: str) -> list[str]:
        """Vocabulary words that stand across a gap of a chain of runs (双随机|一公开 -> 双随机一公开)."""
        found = self._cache.get(chain)
        if found is None:
            parts = chain.split(CHAIN_MARK)
            text = "".join(parts)
            gaps = list(accumulate(len(part) for part in parts[:-1]))
            found = []
            for i in range(len(text) - 2):
                if text[i:i + 3] in self.starts:
                    found += [text[i:i + n] for n in range(3, min(self.longest, len(text) - i) + 1)
                              if any(i < gap < i + n for gap in gaps) and text[i:i + n] in self.vocab]
            if self._remember:
                self._cache[chain] = found
        return found

    def join_terms(self, join: str) -> list[str]:
        return self.chain_terms(join) if CHAIN_MARK in join else [join]

    def of(self, runs: tuple[str, ...], joins: tuple[str, ...]) -> Counter[str]:
        terms: list[str] = []
        for join in joins:
            terms += self.join_terms(join)
        for run in runs:
            terms += self.run_terms(run)
        return Counter(terms)


# ------------------------------------------------------------------------------------------------------
# Counting, in worker processes: each cuts its range of sections once, counts jieba's words in them
# (pass 1), and once the parent has chosen the vocabulary, counts their index terms (pass 2)


@dataclass(frozen=True)
class _Texts:
    """Every section's heading and body as one string. A worker that reads them so writes to no page of the
    parent's: with a str per section, each one's reference count would (200 MB a worker at 10,000 reports)."""

    joined: str
    bounds: array  # section k: heading joined[bounds[2k]:bounds[2k + 1]], body up to bounds[2k + 2]

    @classmethod
    def of(cls, texts: list[tuple[str, str]]) -> _Texts:
        bounds = array("q", [0])
        bounds.extend(accumulate(len(text) for pair in texts for text in pair))
        return cls("".join(text for pair in texts for text in pair), bounds)

    def __len__(self) -> int:
        return len(self.bounds) // 2

    def body(self, k: int) -> str:
        return self.joined[self.bounds[2 * k + 1]:self.bounds[2 * k + 2]]

    def heading(self, k: int) -> str:
        return self.joined[self.bounds[2 * k]:self.bounds[2 * k + 1]]

    def with_bodies(self, bodies: dict[int, str]) -> _Texts:
        """These texts with the bodies of some sections (number -> body) replaced (_PatchedTexts)."""
        return _PatchedTexts(self, bodies) if bodies else self

    def of_sections(self, numbers: Iterable[int]) -> _Texts:
        """The texts of these sections alone, in this order: section i of them is numbers[i]."""
        return _Texts.of([(self.heading(k), self.body(k)) for k in numbers])

    @property
    def unpatched(self) -> _Texts:
        """The texts without the bodies replaced (with_bodies): the same but for the sections `differing`."""
        return self

    def differing(self) -> set[int]:
        return set()

    def spans(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(where the heading starts, where the body starts, where the body ends) in joined, of the sections
        start..stop."""
        at = self.bounds[2 * start:2 * stop + 1].tolist()
        for k in range(0, len(at) - 1, 2):
            yield at[k], at[k + 1], at[k + 2]


class _LazyTexts(_Texts):
    """_Texts whose texts as one (joined, bounds) are made only when first asked for; equal to any _Texts of
    the same texts."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Texts) and (self.joined, self.bounds) == (other.joined, other.bounds)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return _Texts, (self.joined, self.bounds)


class TextStore(Protocol):
    """Texts as stored (cache.StoredText): code units decoded a piece at a time, or all at once."""

    units: int

    def slice(self, start: int, stop: int) -> str: ...

    def whole(self) -> str: ...


class _StoredTexts(_LazyTexts):
    """The texts of a kept input read from where they are stored, a section at a time (input_of_columns)."""

    def __init__(self, stored: TextStore, bounds: array) -> None:
        object.__setattr__(self, "stored", stored)
        object.__setattr__(self, "bounds", bounds)

    def body(self, k: int) -> str:
        return self.stored.slice(self.bounds[2 * k + 1], self.bounds[2 * k + 2])

    def heading(self, k: int) -> str:
        return self.stored.slice(self.bounds[2 * k], self.bounds[2 * k + 1])

    @functools.cached_property
    def joined(self) -> str:  # type: ignore[override]
        return self.stored.whole()


class _PatchedTexts(_LazyTexts):
    """_Texts with the bodies of some sections replaced, without joining all the texts again (86 MB at 10,000
    reports: 0.13 s of a rebuild after an edit). A body is the replaced one or the base's; the texts as one
    (joined, bounds: what counting ranges of sections, their digests and keeping the input read) are made
    when first asked for. The plan patched after an edit reads only bodies, and the base beside the sections
    it knows changed (unpatched)."""

    def __init__(self, base: _Texts, replaced: dict[int, str]) -> None:
        if isinstance(base, _PatchedTexts):
            base, replaced = base.base, {**base.replaced, **replaced}
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "replaced", dict(replaced))

    def __len__(self) -> int:
        return len(self.base)

    def body(self, k: int) -> str:
        found = self.replaced.get(k)
        return self.base.body(k) if found is None else found

    def heading(self, k: int) -> str:
        return self.base.heading(k)

    @property
    def unpatched(self) -> _Texts:
        return self.base

    def differing(self) -> set[int]:
        return {k for k, body in self.replaced.items() if body != self.base.body(k)}

    @functools.cached_property
    def _whole(self) -> tuple[str, array]:
        base = self.base
        parts: list[str] = []
        grown = np.zeros(len(base.bounds), np.int64)  # how much longer each section's body got
        at = 0
        for k in sorted(self.replaced):
            start, end = base.bounds[2 * k + 1], base.bounds[2 * k + 2]
            parts += [base.joined[at:start], self.replaced[k]]
            grown[2 * k + 2] = len(self.replaced[k]) - (end - start)
            at = end
        parts.append(base.joined[at:])
        shifted = np.frombuffer(base.bounds, np.int64) + np.cumsum(grown)
        return "".join(parts), array("q", shifted.tobytes())

    @property  # type: ignore[override]
    def joined(self) -> str:
        return self._whole[0]

    @property  # type: ignore[override]
    def bounds(self) -> array:
        return self._whole[1]


@dataclass(frozen=True)
class _Job:
    """What the worker processes share, inherited through fork (never pickled)."""

    texts: _Texts
    segmenter: Segmenter
    settings: SearchSettings


# section counts of jieba's 3+ character words and of phrases; the phrases' neighbours; each section's BM25 length
PassOne = tuple[Counter[str], Counter[str], dict[str, Sides], "np.ndarray"]
# the postings of at most _CHUNK_SECTIONS consecutive sections in term order: their terms' ids (int32), postings
# per term (int32), section numbers counted from the block's first section (uint16), term counts (uint8, up to
# TF_MAX), and that first section's number (counted from the range's first section). Small
# types: a worker holds its blocks until it sends them all. Counts, not BM25 impacts: an impact depends on the
# average length of all sections, which an edit anywhere changes; a range's counts change only with its texts.
Block = tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray", int]
PassTwo = tuple[list[str], list[Block]]  # see range_postings


@dataclass(frozen=True)
class _Units:
    """What pass two needs of a range of sections, as pass one cut them: small and flat, so that pass two can
    run in a process of its own. Pass one's heap, fragmented by the millions of small objects it made and
    dropped, is then not carried into pass two (150 MB a worker at 10,000 reports)."""

    runs: list[str]  # by id
    joins: list[str]  # by id
    units: np.ndarray  # int32, per section, heading then body: a run as its id, a join as -1 - its id
    heading_units: np.ndarray  # int32, per section: how many of its units are the heading's...
    body_units: np.ndarray  # ...and the body's


class _RangeCounter:
    """The sections start..stop, cut once and kept between the passes as "units": ids of their distinct runs
    and joins, one flat array for the whole range (a Python list per section would take gigabytes)."""

    def __init__(self, job: _Job, bounds: tuple[int, int]):
        self.job = job
        self.start, self.stop = bounds
        self.run_ids: dict[str, int] = {}
        self.join_codes: dict[str, int] = {}  # a join -> -1 - its id
        self.units = array("i")  # per section, heading then body: a run as its id, a join as -1 - its id
        self.heading_units = array("i")  # per section: how many of its units are the heading's...
        self.body_units = array("i")  # ...and the body's
        self.lengths: list[int] = []  # per section: BM25 length
        # hash of a text -> (where in the joined texts, its length, start in units, count, characters): not the
        # text itself, which would keep a copy of every distinct text (37 MB a worker at 10,000 reports)
        self._cut_at: dict[int, tuple[int, int, int, int, int]] = {}
        self._finder = WordFinder(job.segmenter, remember=False)
        self._words_of: list[frozenset[str]] = []  # per run id
        self._is_chain: list[bool] = []  # per join id

    def _cut(self, text: str, at: int) -> tuple[int, int]:
        """Append the units of a text, at `at` in the joined texts: (how many, characters). A text seen before
        (a heading, a set paragraph) is copied, not cut again."""
        units = self.units
        key = hash(text)
        seen = self._cut_at.get(key)
        if seen is not None and seen[1] == len(text) and self.job.texts.joined.startswith(text, seen[0]):
            start, count, size = seen[2:]
            units.extend(units[start:start + count])
            return count, size
        runs, joins, size = cut_text(text)
        start = len(units)
        codes = list(map(self.run_ids.get, runs))
        if None in codes:  # runs seen for the first time: their words, in the order of their ids
            for k, run in enumerate(runs):
                if codes[k] is None:
                    run_id = self.run_ids.get(run)
                    if run_id is None:
                        run_id = self.run_ids[run] = len(self.run_ids)
                        self._words_of.append(self._finder.of_run(run))
                    codes[k] = run_id
        units.extend(codes)
        codes = list(map(self.join_codes.get, joins))
        if None in codes:
            for k, join in enumerate(joins):
                if codes[k] is None:
                    code = self.join_codes.get(join)
                    if code is None:
                        code = self.join_codes[join] = -1 - len(self.join_codes)
                        self._is_chain.append(CHAIN_MARK in join)
                    codes[k] = code
        units.extend(codes)
        self._cut_at.setdefault(key, (at, len(text), start, len(units) - start, size))  # (a clash of hashes: cut)
        return len(units) - start, size

    def words(self) -> PassOne:
        hw = self.job.settings.heading_weight
        words_of, is_chain = self._words_of, self._is_chain
        df: Counter[str] = Counter()
        # sections per distinct run and per distinct chain of runs: a phrase's count is theirs summed (a
        # phrase in two runs of a section counts twice: near enough to choose phrases, and much faster)
        run_sections: Counter[int] = Counter()
        chain_sections: Counter[int] = Counter()  # by join id
        joined = self.job.texts.joined
        for heading_at, body_at, end in self.job.texts.spans(self.start, self.stop):
            at = len(self.units)
            heading_count, heading_size = self._cut(joined[heading_at:body_at], heading_at)
            body_count, body_size = self._cut(joined[body_at:end], body_at)
            present = set(self.units[at:])
            run_set = [u for u in present if u >= 0]
            df.update(set().union(*(words_of[r] for r in run_set if words_of[r])))
            run_sections.update(run_set)
            chain_sections.update(-1 - u for u in present if u < 0 and is_chain[-1 - u])
            self.heading_units.append(heading_count)
            self.body_units.append(body_count)
            self.lengths.append(heading_size * hw + body_size)
        finder = self._finder
        joins = list(self.join_codes)
        phrase_df: Counter[str] = Counter()
        sides: dict[str, Sides] = {}
        of_runs = ((finder.phrases_of_run(run), run_sections[r]) for run, r in self.run_ids.items())
        of_chains = ((finder.phrases_of_joins((joins[j],)), count) for j, count in chain_sections.items())
        for found_in in (of_runs, of_chains):
            for found, count in found_in:
                add_sides(sides, found)
                for phrase in found:
                    phrase_df[phrase] += count
        return df, phrase_df, sides, np.array(self.lengths, np.int64)

    def cut(self) -> _Units:
        """The range as pass one cut it (after words)."""
        return _Units(list(self.run_ids), list(self.join_codes), np.frombuffer(self.units, np.int32),
                      np.frombuffer(self.heading_units, np.int32), np.frombuffer(self.body_units, np.int32))


def range_postings(cut: _Units, vocab: frozenset[str], s: SearchSettings) -> PassTwo:
    """(the range's terms, sorted; the blocks of its postings, _CHUNK_SECTIONS sections each, their terms
    as ids in that list). All blocks of all ranges are put in place at once (count_postings): a range
    that put its own in place first held them twice (90 MB a worker at 10,000 reports).

    A section's term counts are the sum of its units' terms (the heading's heading_weight times), so
    each distinct unit is cut into terms once, and the counting is done with numpy: every (term,
    section) occurrence as one integer, sorted, and counted where it changes."""
    counter = TermCounter(set(vocab), remember=False)
    ids: dict[str, int] = {}
    term_counts = array("q")  # per unit: how many terms

    def term_ids(units_terms: Iterator[list[str]]) -> Iterator[int]:
        """Each unit's terms as ids, unit after unit. The units' lists of terms are not kept: together they
        were a million strings, 70 MB a worker at 10,000 reports."""
        for terms in units_terms:
            term_counts.append(len(terms))
            for term in terms:
                yield ids.setdefault(term, len(ids))

    flat = np.concatenate([np.fromiter(term_ids(map(counter.run_terms, cut.runs)), np.int64),
                           np.fromiter(term_ids(map(counter.join_terms, cut.joins)), np.int64)])
    names = list(ids)
    del ids
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), np.int64)
    rank[order] = np.arange(len(names), dtype=np.int64)
    unit_flat = rank[flat]  # each unit's terms as their rank among the range's terms
    unit_len = np.frombuffer(term_counts, np.int64)
    unit_at = np.cumsum(unit_len) - unit_len
    runs = len(cut.runs)
    del flat, rank, counter  # the units' terms are in unit_flat now

    codes, heading, body = cut.units, cut.heading_units, cut.body_units
    count = len(heading)
    unit_end = np.concatenate([[0], np.cumsum(heading.astype(np.int64) + body)])

    blocks: list[Block] = []
    first = 0
    while first < count:
        last = min(count, first + _CHUNK_SECTIONS)
        chunk = codes[unit_end[first]:unit_end[last]]
        # per occurrence of a unit: its section (counted from first), a heading's heading_weight times
        weight = np.tile(np.array([s.heading_weight, 1], np.int64), last - first)  # section by section
        pieces = np.stack([heading[first:last], body[first:last]], axis=1).ravel()  # heading, body
        occ_unit = np.repeat(np.where(chunk >= 0, chunk, runs - 1 - chunk.astype(np.int64)),
                             np.repeat(weight, pieces))
        occ_section = np.repeat(np.arange(2 * (last - first), dtype=np.int64) // 2, pieces * weight)
        sizes = unit_len[occ_unit]
        ends = np.cumsum(sizes)
        # every term of every occurrence: its position in unit_flat
        at = np.repeat(unit_at[occ_unit] - (ends - sizes), sizes) + np.arange(int(ends[-1]) if len(ends) else 0)
        keys = np.sort(unit_flat[at] * (last - first) + np.repeat(occ_section, sizes))
        del occ_unit, occ_section, sizes, ends, at
        if len(keys):
            unique, tf = _counted(keys)
            term, section = np.divmod(unique, last - first)
            ids, per_term = _counted(term)
            blocks.append((ids.astype(np.int32), per_term.astype(np.int32), section.astype(np.uint16),
                           np.minimum(tf, TF_MAX).astype(np.uint8), first))
        first = last
    return [names[i] for i in order], blocks


def _counted(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array and how often each occurs."""
    bounds = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1, [len(ordered)]])
    return ordered[bounds[:-1]], np.diff(bounds)


def _gathered(blocks: list[Block], terms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first posting of each term, section numbers, counts) of blocks of consecutive sections, in term order
    then section order: each posting is put straight in its place (no sort). The blocks are used up."""
    totals = np.zeros(terms, np.int64)
    for ids, per_term, *_ in blocks:
        totals[ids] += per_term  # a term is once in a block's ids
    starts = np.concatenate([[0], np.cumsum(totals)])
    filled = starts[:-1].copy()  # per term: where its next posting goes
    sections = np.empty(int(starts[-1]), np.int32)
    counts = np.empty(int(starts[-1]), np.uint8)
    blocks.reverse()
    while blocks:
        ids, per_term, block_sections, block_counts, block_first = blocks.pop()
        ends = np.cumsum(per_term)
        # a few million postings at a time: the positions of all of a block's at once took 400 MB
        cuts = [0, *np.searchsorted(ends, np.arange(_GATHER_POSTINGS, int(ends[-1]) if len(ends) else 0,
                                                    _GATHER_POSTINGS), side="right").tolist(), len(ids)]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=False):
            if lo == hi:
                continue
            first, last = int(ends[lo] - per_term[lo]), int(ends[hi - 1])
            at = np.repeat(filled[ids[lo:hi]] - (ends[lo:hi] - per_term[lo:hi] - first), per_term[lo:hi])
            at += np.arange(last - first)
            sections[at] = block_sections[first:last].astype(np.int32) + block_first
            counts[at] = block_counts[first:last]
        filled[ids] += per_term
    return starts, sections, counts


_GATHER_POSTINGS = 2_000_000


_CHUNK_SECTIONS = 1024  # sections counted at a time, a few arrays of their term occurrences (4,096: 70 MB more)
assert _CHUNK_SECTIONS <= 1 << 16  # a block's section numbers are uint16


RANGE_SECTIONS = 4096  # sections a range of the counting holds at most (about 2,300 on average: _content_ranges)
WORDS, CUT, COUNTS = "index-words", "index-cut", "index-counts"  # what IndexMemo keeps of a range


class MemoStore(Protocol):
    """Values kept between builds under a kind and a key (cache.DiskStore)."""

    def get(self, kind: str, key: bytes) -> Any | None: ...

    def put(self, kind: str, key: bytes, value: Any) -> None: ...

    def prune(self, kind: str, keep: set[bytes]) -> int: ...


@dataclass(frozen=True)
class IndexMemo:
    """What the index keeps between builds, under digests that include the code version and the settings:
    - of each range of sections, what the counting made of it: its words (pass one), its texts as cut, and
      its term counts (pass two), under its texts (the counts also under the vocabulary). A rebuild counts
      again only the ranges whose texts changed: an edit, one or two of the 61 ranges of 10,000 reports;
    - with `keep`, the files: each file's key digests everything it is made of, and keep(path, key) takes
      over the last site's file when that was made of the same (or returns None); `last` has the keys of
      the site's index files, for the files an edit cannot have changed (IndexChange)."""

    store: MemoStore
    version: bytes
    keep: Callable[[str, bytes], Any | None] | None = None
    read: Callable[[str, bytes], OutputFile | None] | None = None  # like keep, the last site's file as read
    last: dict[str, tuple[bytes | None, bytes]] = field(default_factory=dict)  # the site's files: (key, digest)

    def salt(self, settings: SearchSettings) -> bytes:
        return hashlib.blake2b(self.version + repr(settings).encode(), digest_size=16).digest()

    def range_keys(self, settings: SearchSettings, texts: _Texts, ranges: list[tuple[int, int]]) -> list[bytes]:
        salt = self.salt(settings)
        return [_texts_digest(hashlib.blake2b(salt, digest_size=16), texts, a, b).digest() for a, b in ranges]

    def forget_others(self, kept: dict[str, set[bytes]]) -> None:
        """Delete what this build did not use: earlier versions of the ranges, which would pile up."""
        for kind, keys in kept.items():
            self.store.prune(kind, keys)


def _texts_digest(h: Any, texts: _Texts, a: int, b: int) -> Any:
    """h, fed the texts of sections a..b (headings, bodies and where each starts)."""
    lo, hi = texts.bounds[2 * a], texts.bounds[2 * b]
    h.update((np.frombuffer(texts.bounds, np.int64)[2 * a:2 * b + 1] - lo).tobytes())
    h.update(texts.joined[lo:hi].encode("utf-8", "surrogatepass"))
    return h


def _content_ranges(sections: list[IndexedSection], report_rows: list[list[object]],
                    longest: int) -> list[tuple[int, int]]:
    """Ranges of consecutive sections (in index order), each counted apart and kept apart (IndexMemo). A range
    starts at a section whose name (report and anchor) hashes to 0 modulo `longest`, or where it would grow
    past `longest`: where the ranges start depends on the names alone (and in a long stretch without such a
    name, on how far it is from the last), so an edit changes only the range of the sections it changes,
    which is never long to count again. (Without the limit, one range in ten was 2-4 times as long: an edit
    there took the index's child a second more at 1,000 reports. Shorter ranges, 2,048 on average, took
    55 MB more at the cold build's peak at 10,000 reports, 1,476 MB, near the target of 1,500.)"""
    bounds = [0]
    for s in sections[1:]:
        named = zlib.crc32(f"{report_rows[s.report][0]}#{s.anchor}".encode()) % longest == 0
        if named or s.number - bounds[-1] >= longest:
            bounds.append(s.number)
    bounds.append(len(sections))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _shares(sizes: list[int], workers: int) -> list[list[int]]:
    """The tasks (by index) split among `workers`, about as much work each: the biggest first, each to the
    least loaded."""
    loads = [0] * workers
    shares: list[list[int]] = [[] for _ in range(workers)]
    for task in sorted(range(len(sizes)), key=lambda t: -sizes[t]):
        least = loads.index(min(loads))
        shares[least].append(task)
        loads[least] += sizes[task]
    return [sorted(share) for share in shares if share]


Task = tuple[int, tuple[int, int], bytes | None]  # a range: its number, its sections, its key in the memo


def _range_words(job: _Job, task: Task, memo: IndexMemo | None) -> tuple[int, PassOne, _Units]:
    """Pass one of a range, kept in the memo."""
    number, bounds, key = task
    counter = _RangeCounter(job, bounds)
    words, cut = counter.words(), counter.cut()
    del counter
    return_freed_memory()  # pass one's heap of small objects: else a worker's grows range after range
    if memo and key:
        memo.store.put(WORDS, key, words)
        memo.store.put(CUT, key, cut)
    return number, words, cut


def _range_counts(cut: _Units, vocab: frozenset[str], settings: SearchSettings, number: int,
                  key: bytes | None, memo: IndexMemo | None) -> tuple[int, PassTwo]:
    """Pass two of a range, kept in the memo."""
    counted = range_postings(cut, vocab, settings)
    return_freed_memory()  # the arrays of the counting, freed: 100 MB a worker at 10,000 reports
    if memo and key:
        memo.store.put(COUNTS, key, counted)
    return number, counted


def _worked(make: Callable[[int], T], sizes: list[int], sections: int,
            forked: Callable[[], None] | None = None) -> list[T]:
    """make(task) for every task (0..len(sizes) - 1, of those sizes), in forked workers with about as much
    work each when there are enough sections to count, else here; in no particular order. `forked` is
    called once the workers have what they inherit."""
    if not sizes:
        return []
    shares = _shares(sizes, min(len(sizes), pool_size(sections, PARALLEL_MIN_SECTIONS)))
    made = _in_workers(lambda part: map(make, shares[part]), len(shares), forked)
    return [item for part in made for item in part]


def _pass_one(job: _Job, ranges: list[tuple[int, int]], keys: list[bytes | None],
              memo: IndexMemo | None) -> tuple[list[PassOne], dict[int, _Units]]:
    """Every range's words (pass one), from the memo or counted; the ranges counted, as cut."""
    words: list[PassOne | None] = [memo.store.get(WORDS, key) if memo and key else None for key in keys]
    tasks: list[Task] = [(i, ranges[i], keys[i]) for i, found in enumerate(words) if found is None]
    bounds = job.texts.bounds
    counted = _worked(lambda t: _range_words(job, tasks[t], memo),
                      [bounds[2 * b] - bounds[2 * a] for _, (a, b), _ in tasks], sum(b - a for _, (a, b), _ in tasks))
    cuts: dict[int, _Units] = {}
    for number, found, cut in counted:
        words[number], cuts[number] = found, cut
    return words, cuts  # type: ignore[return-value]


def _pass_two(job: _Job, ranges: list[tuple[int, int]], keys: list[bytes | None], memo: IndexMemo | None,
              cuts: dict[int, _Units], vocab: frozenset[str]) -> list[PassTwo]:
    """Every range's term counts (pass two), from the memo or counted (in workers that inherit the cuts)."""
    vocab_digest = hashlib.blake2b("\n".join(sorted(vocab)).encode(), digest_size=16).digest()
    count_keys = [hashlib.blake2b(key + vocab_digest, digest_size=16).digest() if key else None for key in keys]
    counts: list[PassTwo | None] = [memo.store.get(COUNTS, key) if memo and key else None for key in count_keys]
    todo = [i for i, found in enumerate(counts) if found is None]
    for i in todo:
        if i not in cuts:  # its words were kept, but not the cut (a cache pruned by hand): cut it again
            cuts[i] = (memo.store.get(CUT, keys[i]) if memo and keys[i] else None) \
                or _range_words(job, (i, ranges[i], None), None)[2]
    todo_cuts = {i: cuts.pop(i) for i in todo}
    cuts.clear()  # the workers inherit the cuts they count, no more
    counted = _worked(lambda t: _range_counts(todo_cuts[todo[t]], vocab, job.settings, todo[t],
                                              count_keys[todo[t]], memo),
                      [len(todo_cuts[i].units) for i in todo], sum(ranges[i][1] - ranges[i][0] for i in todo),
                      forked=todo_cuts.clear)  # the workers have their own
    for number, found in counted:
        counts[number] = found
    if memo:
        memo.forget_others({WORDS: set(keys), CUT: set(keys), COUNTS: set(count_keys)})  # type: ignore[arg-type]
    return counts  # type: ignore[return-value]


@dataclass(frozen=True)
class WordCounts:
    """What the vocabulary was chosen from (choose_vocabulary), as a plan made again after an edit needs it
    (indexpatch): every word's sections, and the phrases found in `floor` or more (of their sections, see
    _RangeCounter.words) with their sides. A phrase is chosen only from phrase_least sections: the floor is
    below that, so that an edit that adds a phrase to a few sections is known not to make it chosen."""

    df: Counter[str]
    phrases: dict[str, tuple[int, Sides]]
    floor: int


def phrase_floor(settings: SearchSettings, sections: int) -> int:
    """The fewest sections of a phrase that WordCounts keeps: half of phrase_least."""
    return max(1, int(phrase_least(settings, sections) // 2))


def _chosen_vocabulary(words: list[PassOne], settings: SearchSettings, sections: int) -> tuple[set[str], WordCounts]:
    df: Counter[str] = Counter()
    phrase_df: Counter[str] = Counter()
    for part_df, part_phrases, _, _ in words:
        df.update(part_df)
        phrase_df.update(part_phrases)
    # choose_vocabulary reads the sides of the phrases in enough sections only: those alone are merged (all
    # the ranges' phrases took 0.3 s at 10,000 reports, a few thousand of a million are read); WordCounts
    # keeps those in half as many
    floor = phrase_floor(settings, sections)
    frequent = [phrase for phrase, count in phrase_df.items() if count >= floor]
    sides: dict[str, Sides] = {}
    for _, _, part_sides, _ in words:
        add_sides(sides, {phrase: found for phrase in frequent if (found := part_sides.get(phrase)) is not None})
    vocab = choose_vocabulary(df, settings, phrase_df, sides, sections)
    return vocab, WordCounts(df, {phrase: (phrase_df[phrase], sides[phrase]) for phrase in frequent}, floor)


@dataclass(frozen=True)
class Postings:
    """Every posting, in term order then section order."""

    terms: list[str]  # sorted
    starts: np.ndarray  # first posting of each term; len(terms) + 1 entries
    sections: np.ndarray  # int32 (after an edit, a SplicedArray)
    counts: np.ndarray  # uint8: the term's count in the section, up to TF_MAX (after an edit, a SplicedArray)
    classes: np.ndarray  # uint8, per section: its length class (length_classes)
    avgdl: float = 1.0  # BM25's average length, which the classes are relative to

    def df(self) -> np.ndarray:
        return np.diff(self.starts)

    def impacts(self, numbers: np.ndarray, counts: np.ndarray, table: np.ndarray) -> np.ndarray:
        """The impacts (impact_table) of postings of these sections with these counts."""
        return table[counts.astype(np.intp) - 1, self.classes[numbers]]


def length_classes(lengths: np.ndarray, avgdl: float) -> np.ndarray:
    """Each section's length class (see LENGTH_CLASSES). An impact depends on a section's length only through
    its class, which the browser reads from the manifest: a term file then changes only where its terms' counts
    do, not every file of a section's terms whenever the section's length changes (an edit's 500 files of
    2,000 at 10,000 reports, 0.4-0.7 s)."""
    with np.errstate(divide="ignore"):
        steps = np.round(np.log2(np.maximum(lengths, 0) / avgdl) * LENGTH_STEPS)
    return np.clip(np.nan_to_num(steps, neginf=-LENGTH_MIDDLE) + LENGTH_MIDDLE, 0, LENGTH_CLASSES - 1).astype(np.uint8)


def impact_table(settings: SearchSettings) -> np.ndarray:
    """BM25's tf part, divided by (k1 + 1), as an integer 1..IMPACT_SCALE: [count - 1, length class] for the
    counts 1..TF_MAX. The browser gets the same table (in the manifest) and looks impacts up in it."""
    counts = np.arange(1, TF_MAX + 1, dtype=np.float64)[:, None]
    relative = np.exp2((np.arange(LENGTH_CLASSES) - LENGTH_MIDDLE) / LENGTH_STEPS)[None, :]
    norms = settings.k1 * (1 - settings.b + settings.b * relative)
    return np.maximum(1, np.round(counts / (counts + norms) * IMPACT_SCALE)).astype(np.uint8)


class SplicedArray:
    """`values` without the items at `drop` (sorted) and with put[j] before the item put_at[j] was at (sorted;
    several before one item in their order), without making that array: the postings' section numbers or
    counts after an edit (indexpatch), as the last plan's (on the kept state's mapped pages) and the edited
    sections' new ones. An edit changes a few thousand of 36 million postings (10,000 reports), and the files
    it changes read those of a few thousand terms: copying all into new arrays took 0.2-0.3 s of a rebuild.
    Slices give arrays (a view when one piece holds them), gathered() the postings of some terms; numpy's
    functions, and any other index, work on the whole array, made once (np.asarray)."""

    def __init__(self, values: np.ndarray, drop: list[int], put_at: list[int], put: np.ndarray) -> None:
        self.values, self.put, self.dtype = values, put.astype(values.dtype), values.dtype
        pieces = splice_pieces(len(values), drop, put_at)
        self.length = sum(size for _, _, size in pieces)
        self.from_put = np.array([from_put for from_put, _, _ in pieces], bool)
        self.sources = np.array([source for _, source, _ in pieces], np.int64)
        self.ends = np.cumsum([size for _, _, size in pieces], dtype=np.int64)
        self.starts = self.ends - [size for _, _, size in pieces]
        self._whole: np.ndarray | None = None

    def __len__(self) -> int:
        return self.length

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._whole is None:
            self._whole = self._range(0, self.length)
        return self._whole if dtype is None else self._whole.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice) and key.step in (None, 1):
            lo, hi, _ = key.indices(self.length)
            return self._range(lo, max(lo, hi))
        return np.asarray(self)[key]

    def _range(self, lo: int, hi: int) -> np.ndarray:
        parts = []
        piece = int(np.searchsorted(self.starts, lo, side="right")) - 1
        while lo < hi:
            source = self.put if self.from_put[piece] else self.values
            first = int(self.sources[piece]) + lo - int(self.starts[piece])
            stop = min(hi, int(self.ends[piece]))
            parts.append(source[first:first + stop - lo])
            lo, piece = stop, piece + 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else self.values[:0]

    def runs(self, lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """gathered(): the items lo[j]..lo[j] + counts[j] of each run j, one run after another; each run cut
        where pieces meet, and all gathered at once from the two sources."""
        lo, counts = lo[counts > 0], counts[counts > 0]
        if not len(lo):
            return self.values[:0].copy()
        first = np.searchsorted(self.starts, lo, side="right") - 1
        last = np.searchsorted(self.starts, lo + counts - 1, side="right") - 1
        spans = last - first + 1  # pieces each run lies in
        run = np.repeat(np.arange(len(lo)), spans)
        piece = first[run] + np.arange(len(run)) - np.repeat(np.cumsum(spans) - spans, spans)
        start = np.maximum(lo[run], self.starts[piece])
        size = np.minimum((lo + counts)[run], self.ends[piece]) - start
        ends = np.cumsum(size)
        where = np.repeat(self.sources[piece] + start - self.starts[piece] - (ends - size), size) + np.arange(ends[-1])
        from_put = np.repeat(self.from_put[piece], size)
        out = np.empty(int(ends[-1]), self.dtype)
        out[~from_put] = self.values[where[~from_put]]
        out[from_put] = self.put[where[from_put]]
        return out


def splice_pieces(count: int, drop: list[int], put_at: list[int]) -> list[tuple[bool, int, int]]:
    """How `count` items without those at `drop` (sorted) and with put[j] before the item put_at[j] was at
    (sorted; several before one item in their order) are made: the pieces in order, each (of put or of the
    items, where in it the piece starts, its size), none empty."""
    pieces: list[tuple[bool, int, int]] = []
    taken = 0
    dropped = set(drop)
    groups: dict[int, list[int]] = {}
    for j, where in enumerate(put_at):
        groups.setdefault(where, []).append(j)
    for where in sorted(dropped | groups.keys() | {count}):
        if where > taken:
            pieces.append((False, taken, where - taken))
        if where in groups:
            pieces.append((True, groups[where][0], len(groups[where])))
        taken = where + 1 if where in dropped else where
    return pieces


def gathered(values: np.ndarray | SplicedArray, lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """values[lo[j]:lo[j] + counts[j]] of each j, one after another: a term file's terms' postings."""
    if isinstance(values, SplicedArray):
        return values.runs(lo, counts)
    ends = np.cumsum(counts)
    return values[np.repeat(lo - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)]


def count_postings(texts: _Texts, segmenter: Segmenter, settings: SearchSettings,
                   ranges: list[tuple[int, int]] | None = None,
                   memo: IndexMemo | None = None) -> tuple[set[str], Postings]:
    """(vocabulary, postings) of the sections' (heading, body) texts, counted by `ranges` of sections (all of
    them in one by default), each in the memo (when given) or counted in workers (a big site) or here."""
    vocab, postings, *_ = _count_postings(texts, segmenter, settings, ranges, memo)
    return vocab, postings


def _count_postings(texts: _Texts, segmenter: Segmenter, settings: SearchSettings,
                    ranges: list[tuple[int, int]] | None = None,
                    memo: IndexMemo | None = None
                    ) -> tuple[set[str], Postings, WordCounts, np.ndarray, list[bytes | None]]:
    """count_postings, and what the vocabulary was chosen from, each section's BM25 length and the ranges' keys."""
    ranges = ranges or [(0, len(texts))]
    job = _Job(texts, segmenter, settings)
    keys: list[bytes | None] = list(memo.range_keys(settings, texts, ranges)) if memo else [None] * len(ranges)
    words, cuts = _pass_one(job, ranges, keys, memo)
    vocab, word_counts = _chosen_vocabulary(words, settings, len(texts))
    lengths = np.concatenate([found[3] for found in words]) if words else np.zeros(0, np.int64)
    del words
    return_freed_memory()  # pass one's counts: else the workers of pass two inherit their pages
    parts = _pass_two(job, ranges, keys, memo, cuts, frozenset(vocab))
    # to three significant digits: an edit then rarely changes it, nor with it every section's length class
    # (and every snippet row's order); BM25's ranking does not notice 0.5 %
    avgdl = float(f"{int(lengths.sum()) / max(1, len(texts)):.3g}") or 1.0
    terms = sorted(set().union(*(names for names, _ in parts)))
    index = {t: i for i, t in enumerate(terms)}
    blocks: list[Block] = []
    for (start, _), (names, part_blocks) in zip(ranges, parts, strict=True):  # in order
        # the range's term ids in the site's: both sorted, so a block keeps its order
        global_id = np.array([index[t] for t in names], np.int64)
        for ids, per_term, sections, counts, first in part_blocks:
            at = start + first
            blocks.append((global_id[ids], per_term, sections, counts, at))
    del parts
    starts, sections, counts = _gathered(blocks, len(terms))
    return (vocab, Postings(terms, starts, sections, counts, length_classes(lengths, avgdl), avgdl), word_counts,
            lengths, keys)


def _without(postings: Postings, dropped: set[str]) -> Postings:
    if not dropped:
        return postings
    keep_terms = [i for i, t in enumerate(postings.terms) if t not in dropped]
    counts = postings.df()
    mask = np.repeat(np.isin(np.arange(len(postings.terms)), keep_terms), counts)
    kept_counts = counts[keep_terms]
    starts = np.concatenate([[0], np.cumsum(kept_counts)]).astype(np.int64)
    return Postings([postings.terms[i] for i in keep_terms], starts, postings.sections[mask], postings.counts[mask],
                    postings.classes, postings.avgdl)


# ------------------------------------------------------------------------------------------------------
# Index


class IndexedSection(NamedTuple):
    """A section as the index numbers it. A named tuple: the child that makes the index of a big site makes
    140,000 of them from the kept input (input_of_columns), in 0.3 s instead of 0.45 s as dataclasses."""

    number: int  # global, in report order
    report: int
    anchor: str
    title: str
    path: str  # heading path, " › "-joined


class _Column(Sequence[T]):
    """A sequence whose items are made when asked for (`_item`); a slice gives a list of them."""

    __slots__ = ()

    def __getitem__(self, k):  # type: ignore[override]  # int -> an item; slice -> a list of them
        if isinstance(k, slice):
            return [self._item(i) for i in range(*k.indices(len(self)))]
        return self._item(k + len(self) if k < 0 else k)

    def _item(self, k: int) -> T:
        raise NotImplementedError


class SectionColumns(_Column[IndexedSection]):
    """The sections of a kept input as its columns (input_of_columns), each IndexedSection made only when
    asked for: a rebuild after an edit looks at a few hundred of 140,000 (making them all took the spare
    child 0.3 s at 10,000 reports)."""

    __slots__ = ("reports", "anchors", "titles", "paths")

    def __init__(self, reports: list[int], anchors: list[str], titles: list[str], paths: list[str]) -> None:
        self.reports, self.anchors, self.titles, self.paths = reports, anchors, titles, paths

    def __len__(self) -> int:
        return len(self.reports)

    def _item(self, k: int) -> IndexedSection:
        return IndexedSection(k, self.reports[k], self.anchors[k], self.titles[k], self.paths[k])

    def __iter__(self) -> Iterator[IndexedSection]:
        return map(IndexedSection, range(len(self)), self.reports, self.anchors, self.titles, self.paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(map(tuple.__eq__, self, other))

    def __reduce__(self) -> tuple[Any, ...]:
        return SectionColumns, (self.reports, self.anchors, self.titles, self.paths)


class JoinedStrings(_Column[str]):
    """A kept input's column of section titles or heading paths, as one string and where each ends: read back
    at once, where a list of their 138,000 strings took 0.02 s of the spare child's start (10,000 reports),
    which then reads a few hundred of them."""

    __slots__ = ("joined", "ends")

    def __init__(self, joined: str, ends: array) -> None:
        self.joined, self.ends = joined, ends

    @classmethod
    def of(cls, strings: Sequence[str]) -> JoinedStrings:
        if isinstance(strings, JoinedStrings):
            return strings
        return cls("".join(strings), array("i", accumulate(map(len, strings))))

    def __len__(self) -> int:
        return len(self.ends)

    def _item(self, k: int) -> str:
        return self.joined[self.ends[k - 1] if k else 0:self.ends[k]]

    def __iter__(self) -> Iterator[str]:
        joined, start = self.joined, 0
        for end in self.ends:
            yield joined[start:end]
            start = end

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(map(str.__eq__, self, other))

    def __reduce__(self) -> tuple[Callable[[bytes, array], JoinedStrings], tuple[bytes, array]]:
        # as UTF-16, which Python decodes 4-5 times as fast as pickle's UTF-8 (0.04 s of the spare child's start
        # after an edit at 10,000 reports)
        return _joined_strings, (self.joined.encode("utf-16-le", "surrogatepass"), self.ends)


def _joined_strings(utf16: bytes, ends: array) -> JoinedStrings:
    return JoinedStrings(utf16.decode("utf-16-le", "surrogatepass"), ends)


class RowColumns(_Column[list[object]]):
    """The reports' rows of a kept input as its columns, each row made when asked for: 10,000 rows of six
    fields read back as lists took 0.05 s of the spare child, which reads a few hundred of them."""

    __slots__ = ("columns",)

    def __init__(self, columns: list[list[object]]) -> None:
        self.columns = columns

    @classmethod
    def of(cls, rows: Sequence[list[object]]) -> RowColumns:
        if isinstance(rows, RowColumns):
            return rows
        return cls([list(column) for column in zip(*rows, strict=True)] if rows else [])

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def _item(self, k: int) -> list[object]:
        return [column[k] for column in self.columns]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(map(list.__eq__, self, other))

    def __reduce__(self) -> tuple[Any, ...]:
        return RowColumns, (self.columns,)


def sections_of_reports(sections: Sequence[IndexedSection], reports: Collection[int]) -> list[int]:
    """The numbers of the sections of these reports, in order; of sections kept as columns, without making any."""
    if isinstance(sections, SectionColumns):  # its column of reports kept as an array (input_columns): 1 ms, not 7
        column = sections.reports
        numbers = np.frombuffer(column, np.intc) if isinstance(column, array) and column.typecode == "i" else (
            np.asarray(column))
        return np.flatnonzero(np.isin(numbers, np.fromiter(reports, np.intc, len(reports)))).tolist()
    return [s.number for s in sections if s.report in reports]


# "一、", "（二）", "3." before a heading: left out when sections are ordered by their heading
_NUMERAL = "[一二三四五六七八九十百零〇0-9]+"
_NUMBERING = re.compile(rf"^\s*(?:[(（]{_NUMERAL}[)）]|{_NUMERAL}[、.．])\s*")


def heading_key(title: str) -> str:
    """A heading without its numbering and punctuation: sections under the same heading in different
    reports (健全长效机制，规范性文件管理进一步加强) get the same key; a year stays (2023年…存在的不足)."""
    return "".join(run for run, _ in runs(_NUMBERING.sub("", title)))


# A section as its report gives it to the index: (anchor, heading, heading path, text)
PieceSection = tuple[str, str, str, str]


@dataclass(frozen=True)
class SearchPiece:
    """What one report gives the search index: its sections, its report row, its facet keys (year, level,
    province, city) and each section's topics. search_input_of puts the pieces of all reports together; a
    rebuild sends the index's process only the pieces of the reports that changed (see patched_input)."""

    sections: list[PieceSection]
    row: list[object]
    facets: list[str]
    topics: list[tuple[str, ...]]  # per section, the slugs of its topics


def search_piece(report: Report, topics: dict[str, Any]) -> SearchPiece:
    """`report`'s piece; `topics`: its sections' topic matches (topics.assign_topics)."""
    titles: dict[str, str] = {}
    sections: list[PieceSection] = []
    for section in report.sections:  # a parent comes before its subsections
        title = section.title.rstrip("。")
        parent = titles.get(section.parent, "") if section.parent else ""
        own = title if section.level > 0 else ""
        titles[section.id] = path = " › ".join(p for p in (parent, own) if p)
        sections.append((section.id, title, path, section.text))
    return SearchPiece(sections, _report_row(report), _report_facets(report),
                       [tuple(m.topic for m in topics.get(section.id, ())) for section in report.sections])


def piece_shape(piece: SearchPiece) -> bytes:
    """A digest of all a piece gives the index but its texts: a report edited within its sections keeps its
    shape, and its sections their places and numbers."""
    outline = [(anchor, title, path) for anchor, title, path, _ in piece.sections]
    return hashlib.blake2b(repr((outline, piece.row, piece.facets, piece.topics)).encode(), digest_size=16).digest()


def search_input(data: SiteData) -> SearchInput:
    return search_input_of(search_piece(report, data.topics.get(report.slug, {})) for report in data.reports)


def search_input_of(pieces: Iterable[SearchPiece], shapes: list[bytes] | None = None) -> SearchInput:
    """Every section, numbered in the order of their headings (heading_key, then report), and their
    (heading, text) in that order; each report's row; the facets. A query's first results are mostly sections
    under one heading in many reports, so the text files of that order (section n is in file n // docSections)
    give them in one or two requests, not one per report. The pieces are read once, one at a time (10,000
    reports' pieces held at once left a fragmented heap behind: 100 MB); `shapes` gets their piece_shape."""
    found: list[tuple[int, str, str, str, str, tuple[str, ...]]] = []
    rows: list[list[object]] = []
    report_facets: list[list[str]] = []
    # one string per distinct heading and heading path (1,500 headings in 140,000 sections at 10,000
    # reports): each is keyed once, and sent to another process once
    same: dict[str, str] = {}
    for r_index, piece in enumerate(pieces):
        rows.append(piece.row)
        report_facets.append(piece.facets)
        if shapes is not None:
            shapes.append(piece_shape(piece))
        for (anchor, title, path, text), topics in zip(piece.sections, piece.topics, strict=True):
            found.append((r_index, anchor, same.setdefault(title, title), same.setdefault(path, path), text, topics))
    key_of = {title: heading_key(title) for title in same}
    keys = [key_of[title] for _, _, title, _, _, _ in found]
    # Not also by length under one heading (shorter first, as BM25 ranks them), as until 2026-11-26: an edit
    # that took a section past a power of two moved it, and renumbered up to 10,000 others (the reports'
    # openings share a heading), rewriting 930 of 2,000 index files. Queries at 1,000 reports needed the
    # same requests either way (bench/search_bench.py).
    order = sorted(range(len(found)), key=lambda i: (keys[i], i))
    facets: dict[str, list[int]] = {}  # facet key (@y:2023, @p:河北省, @c:邢台市, @l:district, @t:topic) -> sections
    for number, i in enumerate(order):
        for key in report_facets[found[i][0]]:
            facets.setdefault(key, []).append(number)
        for topic in found[i][5]:
            facets.setdefault(f"@t:{topic}", []).append(number)
    return SearchInput([IndexedSection(number, *found[i][:4]) for number, i in enumerate(order)],
                       _Texts.of([(found[i][2], found[i][4]) for i in order]), rows, facets)


def patched_input(source: SearchInput, changed: dict[int, SearchPiece]) -> SearchInput:
    """`source` with the texts of some reports replaced (report number -> its new piece, of the shape it had
    in `source`, see piece_shape): the input search_input_of makes of the new pieces, without the others'."""
    bodies = {report: {anchor: text for anchor, _, _, text in piece.sections} for report, piece in changed.items()}
    sections = source.sections
    replaced = {k: bodies[sections[k].report][sections[k].anchor] for k in sections_of_reports(sections, bodies)}
    return SearchInput(source.sections, source.texts.with_bodies(replaced), source.report_rows, source.facets)


def input_columns(source: SearchInput) -> tuple[tuple[Any, ...], str]:
    """`source` as a few lists, 3-4 times faster to pickle and unpickle than its 140,000 sections (10,000
    reports), and its texts joined, to be kept apart; input_of_columns makes it again."""
    sections = source.sections
    columns = ((array("i", sections.reports), sections.anchors, sections.titles, sections.paths)
               if isinstance(sections, SectionColumns)
               else (array("i", [s.report for s in sections]), [s.anchor for s in sections],
                     [s.title for s in sections], [s.path for s in sections]))
    # the rows as columns and each facet's numbers as an array: read back 5 times faster (0.08 s less)
    rows = [_one_of_each(column) for column in RowColumns.of(source.report_rows).columns]
    facets = {key: numbers if isinstance(numbers, array) else array("i", numbers)
              for key, numbers in source.facets.items()}
    reports, anchors, titles, paths = columns
    return (reports, _one_of_each(anchors), JoinedStrings.of(titles), JoinedStrings.of(paths), source.texts.bounds,
            rows, facets), source.texts.joined


def _one_of_each(column: list[Any]) -> list[Any]:
    """The column with its equal values as one object, which pickle then writes once: the sections' anchors
    (138,000 of a few thousand distinct at 10,000 reports), heading paths and the reports' places. The kept
    columns were read back in half the time (0.024 s of the spare child's start)."""
    same: dict[Any, Any] = {}
    try:
        return [same.setdefault(value, value) for value in column]
    except TypeError:  # a value that cannot be a key: kept as it is
        return column


def input_of_columns(columns: tuple[Any, ...], joined: str | TextStore) -> SearchInput:
    """The input of input_columns; its texts joined, or as stored (read a section at a time, when the
    stored code units are the characters: no character beyond the Basic Multilingual Plane)."""
    reports, anchors, titles, paths, bounds, report_rows, facets = columns
    if len(bounds) != 2 * len(reports) + 1:
        raise ValueError("the kept texts do not match their sections")
    if not isinstance(joined, str) and joined.units == bounds[-1]:
        texts: _Texts = _StoredTexts(joined, bounds)
    else:
        texts = _Texts(joined if isinstance(joined, str) else joined.whole(), bounds)
        if bounds[-1] != len(texts.joined):
            raise ValueError("the kept texts do not match their sections")
    if not len(reports) == len(anchors) == len(titles) == len(paths):
        raise ValueError("the kept sections' columns differ in length")
    return SearchInput(SectionColumns(reports, anchors, titles, paths), texts, RowColumns(report_rows), facets)


def _facet_numbers(numbers: list[int]) -> str:
    """Sorted section numbers as varint deltas in DIGITS (as postings, without impacts)."""
    if not numbers:
        return ""
    chars, _ = varints(np.diff(np.array(numbers, np.int64), prepend=0))
    return chars.tobytes().decode("ascii")


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


def front_coded(words: list[str]) -> str:
    """Sorted Han words as one string: each word as the number (0-9) of leading characters it shares with
    the word before, then the rest of it (行政复议 行政执法 -> 0行政复议2执法). 15 % smaller gzipped than a
    JSON list; the worker's vocabularyOf() reads it."""
    out: list[str] = []
    previous = ""
    for word in words:
        shared = 0
        while shared < min(9, len(word) - 1, len(previous)) and word[shared] == previous[shared]:
            shared += 1
        out.append(f"{shared}{word[shared:]}")
        previous = word
    return "".join(out)


def front_decoded(text: str) -> list[str]:
    words: list[str] = []
    for shared, rest in re.findall(r"(\d)(\D+)", text):
        words.append((words[-1][: int(shared)] if words else "") + rest)
    return words


def _json(value: object) -> bytes:
    """Compact JSON in UTF-8: the bytes of json.dumps(value, ensure_ascii=False, separators=(",", ":")), made
    3 times as fast (orjson): the index's files are 265 MB of it at 10,000 reports, an edit's 250 files 0.1 s."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _report_row(report: Report) -> list[object]:
    j = report.jurisdiction
    return [report_path(report), jurisdiction_label(report), report.year, j.province or "", j.city or "",
            j.level]


def _report_facets(report: Report) -> list[str]:
    j = report.jurisdiction
    keys = [f"@y:{report.year}", f"@l:{j.level}"]
    keys += [f"@p:{j.province}"] if j.province else []
    keys += [f"@c:{j.city}"] if j.city else []
    return keys


# Postings are text, so that static hosts gzip them like any JSON (many leave binary types alone):
# 64 characters that JSON does not escape, each carrying 5 bits and a "more follows" flag.
DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@functools.cache
def digit_codes() -> np.ndarray:
    """DIGITS as an array, for numbers encoded all at once."""
    return np.frombuffer(DIGITS.encode("ascii"), np.uint8)


def varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integers (below 2**30) as characters of DIGITS, low 5 bits first, every character but
    a number's last with 32 added (the "more" flag); and how many characters each number took."""
    v = values.astype(np.uint32)
    size = _varint_sizes(v)
    at = np.cumsum(size, dtype=np.int64) - size
    digits = np.zeros(int(at[-1]) + int(size[-1]) if len(v) else 0, np.uint8)
    digits[at] = (v & 31).astype(np.uint8) | ((size > 1).astype(np.uint8) << 5)
    for k in range(1, int(size.max()) if len(v) else 0):  # the numbers of 2+ characters
        sel = np.flatnonzero(size > k)
        digits[at[sel] + k] = ((v[sel] >> (5 * k)) & 31).astype(np.uint8) | ((size[sel] > k + 1).astype(np.uint8) << 5)
    return digit_codes()[digits], size


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """How many characters of DIGITS each number takes (see varints)."""
    size = np.ones(len(values), np.uint8)
    for k in range(1, 6):
        size += values >= 1 << (5 * k)
    return size


@dataclass(frozen=True)
class EncodedPostings:
    """Each term's postings as two strings: its section numbers as varint deltas, and one character per
    section for the term's count there (DIGITS[count - 1]); made for a term file's terms when it is written (in the
    workers), so that the whole encoding - nor even its deltas, 240 MB at 10,000 reports - is never held."""

    postings: Postings
    chars: np.ndarray  # per term: characters of its varint deltas

    def sample(self, postings: int) -> list[np.ndarray]:
        """The encoding of the first postings: varint characters, count characters."""
        postings = min(postings, len(self.postings.sections))
        starts = self.postings.starts
        firsts = starts[:np.searchsorted(starts, postings)]  # of the terms that start before `postings`
        deltas = _deltas(self.postings.sections[:postings], firsts)
        return [varints(deltas)[0], digit_codes()[self.postings.counts[:postings] - 1]]

    def of(self, terms: list[int]) -> list[tuple[str, str]]:
        """(varint deltas, counts) of each of these terms."""
        ids = np.array(terms, np.int64)
        starts = self.postings.starts
        lo, counts = starts[ids], starts[ids + 1] - starts[ids]  # not a diff of all terms' starts: per file
        ends = np.cumsum(counts)
        firsts = (ends - counts)[counts > 0]
        sections = gathered(self.postings.sections, lo, counts)
        varint_text = varints(_deltas(sections, firsts))[0].tobytes().decode("ascii")
        count_text = digit_codes()[gathered(self.postings.counts, lo, counts) - 1].tobytes().decode("ascii")
        out = []
        char_start = posting_start = 0
        for char_end, posting_end in zip(np.cumsum(self.chars[ids]).tolist(), ends.tolist(), strict=True):
            out.append((varint_text[char_start:char_end], count_text[posting_start:posting_end]))
            char_start, posting_start = char_end, posting_end
        return out


def _deltas(sections: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """Section numbers of consecutive term lists as deltas; `firsts`: where each list starts (from 0)."""
    deltas = np.diff(sections, prepend=0)
    deltas[firsts] = sections[firsts]
    return deltas


_ENCODE_CHUNK = 1 << 22  # postings whose deltas are sized at a time


def encode_postings(postings: Postings) -> EncodedPostings:
    """Characters per term of its varint deltas, worked out a few million postings at a time."""
    starts, chars = postings.starts, np.zeros(len(postings.terms), np.int64)
    term = 0
    while term < len(postings.terms):
        last = max(term + 1, int(np.searchsorted(starts, starts[term] + _ENCODE_CHUNK, side="right")) - 1)
        last = min(last, len(postings.terms))  # terms term..last-1, whole
        lo, hi = int(starts[term]), int(starts[last])
        filled = np.flatnonzero(np.diff(starts[term:last + 1]) > 0)
        if hi > lo:
            local = starts[term:last][filled] - lo
            chars[term + filled] = np.add.reduceat(_varint_sizes(_deltas(postings.sections[lo:hi], local)), local,
                                                   dtype=np.int64)
        term = last
    return EncodedPostings(postings, chars)


def snippet_window(text: str, term: str) -> tuple[int, str]:
    """(start, text) of the part of a section's text the worker's snippet() would show for this term
    alone: where most of its occurrences stand within SNIPPET_WIDTH characters, from SNIPPET_LEAD before."""
    norm = normalise(text)
    spot = _norm_positions(text, norm)
    hits = []
    at = norm.find(term)
    while at >= 0:
        hits.append((spot(at), spot(at + len(term))))
        at = norm.find(term, at + 1)
    if not hits and len(term) > 1 and is_han(term):  # only across a little punctuation (“八五”普法)
        hits = [(spot(a), spot(b)) for a, b in gapped_spans(norm, term)]
    start = 0
    if hits:
        best = -1
        for s, _ in hits:
            count = sum(1 for a, b in hits if a >= s and b <= s + SNIPPET_WIDTH)
            if count > best:
                best, start = count, s
        start = max(0, start - SNIPPET_LEAD)
    return start, text[start:start + SNIPPET_WIDTH + SNIPPET_LEAD]


def gapped_spans(text: str, term: str) -> list[tuple[int, int]]:
    """(start, end) of every place, overlapping ones too, where `term` stands in `text` with up to MAX_GAP
    characters that are not word characters (neither letters nor digits, or _) between two of its characters:
    the matches of _gapped(term), without compiling a pattern per term (0.2 ms each, a tenth of the time an
    edit's index files took to make; each rebuild's workers are new, so no cache lasts)."""
    if not all(ch.isalnum() for ch in term):
        return [(m.start(1), m.end(1)) for m in _gapped(term).finditer(text)]
    spans = []
    at = text.find(term[0])
    while at >= 0:
        end = _gapped_end(text, term, at + 1)
        if end:
            spans.append((at, end))
        at = text.find(term[0], at + 1)
    return spans


def _gapped_end(text: str, term: str, at: int) -> int:
    """Where the rest of `term` (after its first character, whose next is at `at`) ends in `text`, its
    characters each after up to MAX_GAP others that are not word characters; 0 when it does not stand so."""
    for ch in term[1:]:
        gap = 0
        while at < len(text) and text[at] != ch and gap < MAX_GAP and (text[at] == "_" or not text[at].isalnum()):
            at += 1
            gap += 1
        if at >= len(text) or text[at] != ch:
            return 0
        at += 1
    return at


@functools.lru_cache(maxsize=4096)
def _gapped(term: str) -> re.Pattern[str]:
    """The term with a gap of up to MAX_GAP non-word characters allowed between its characters (overlapping
    matches). Wider than joinable() (a space passes too) but twice as quick to compile; only places a window."""
    gap = f"[_\\W]{{0,{MAX_GAP}}}"
    return re.compile(f"(?=({gap.join(map(re.escape, term))}))")


def _norm_positions(text: str, norm: str):
    """Position in the normalised text -> position in the text (they differ only where NFKC expands)."""
    if len(norm) == len(text):
        return lambda i: i
    positions: list[int] = []
    for pos, ch in enumerate(text):
        positions += [pos] * len(normalise(ch))
    positions.append(len(text))
    return lambda i: positions[min(i, len(positions) - 1)]


def build_search_files(data: SiteData, settings: SearchSettings, memo: IndexMemo | None = None) -> list[OutputFile]:
    return made_search_files(data, settings, _as_made, memo)


def made_search_files(data: SiteData, settings: SearchSettings, finish: Callable[[OutputFile], T],
                      memo: IndexMemo | None = None) -> list[T]:
    return index_files(search_input(data), settings, finish, memo)


@dataclass(frozen=True)
class SearchInput:
    """What the index is made of, as plain data (cheap to send to another process): every section in index
    order and its text (search_input_of), and each report's row and search facets."""

    sections: Sequence[IndexedSection]  # a list, or the columns of a kept input
    texts: _Texts
    report_rows: Sequence[list[object]]  # a list, or a kept input's RowColumns
    facets: dict[str, Sequence[int]]  # the numbers as a list, or a kept input's array("i")


def index_files(source: SearchInput, settings: SearchSettings, finish: Callable[[OutputFile], T],
                memo: IndexMemo | None = None) -> list[T]:
    """The search index's files, each passed to `finish` in the process that made it: a worker that writes
    its files into the site sends back what `finish` returns, not their bytes (265 MB at 10,000 reports).
    With `memo`, the counting of the ranges of sections whose texts did not change is taken from it."""
    return write_index(plan_index(source, settings, memo), finish, memo)


def _as_made(file: OutputFile) -> OutputFile:
    return file


@dataclass(frozen=True)
class IndexPlan:
    """The index counted, encoded and divided into files, before any file is made (plan_index)."""

    source: SearchInput
    settings: SearchSettings
    vocab: set[str]
    stop: set[str]
    charset: set[str]
    postings: Postings
    encoded: EncodedPostings
    own_index: dict[str, int]  # terms with a file of their own -> its number
    shared: int  # files of terms sharing them
    doc_sections: int  # sections per text file
    term_files: list[tuple[str, list[int], dict[str, str]]]  # (path, its terms, its facet ranges)
    vocab_coded: str | None = None  # front_coded(sorted(vocab)), when known (a patched plan: the state's)


@dataclass(frozen=True)
class PlanBasis:
    """What plan_index worked out on its way that a plan made again after an edit starts from (indexpatch)."""

    vocab: set[str]  # before the stop terms were taken out: what the terms were counted with
    words: WordCounts
    lengths: np.ndarray  # per section, its BM25 length
    removed: dict[str, int]  # the terms taken out of the postings (stop terms) -> their sections
    with_rows: int  # see _file_counts
    doc_bytes: int
    ranges: list[tuple[int, int]]  # the ranges of sections counted apart...
    range_keys: list[bytes | None]  # ...and their keys in the memo (IndexMemo.range_keys), if any
    gzip_ratios: dict[bytes, float] = field(default_factory=dict)  # samples' gzipped sizes, see _gzip_ratio


def plan_index(source: SearchInput, settings: SearchSettings, memo: IndexMemo | None = None) -> IndexPlan:
    """The sections' terms counted (with `memo`, the ranges whose texts did not change taken from it) and
    encoded, and the files they go to planned."""
    return planned_index(source, settings, memo)[0]


def planned_index(source: SearchInput, settings: SearchSettings,
                  memo: IndexMemo | None = None) -> tuple[IndexPlan, PlanBasis]:
    """plan_index, and what it was worked out from."""
    with collections_paused():
        return _plan_index(source, settings, memo)


def _plan_index(source: SearchInput, settings: SearchSettings, memo: IndexMemo | None) -> tuple[IndexPlan, PlanBasis]:
    sections, texts, report_rows = source.sections, source.texts, source.report_rows
    segmenter = Segmenter(settings.probes)  # fails loudly when jieba is missing or broken
    ranges = _content_ranges(sections, report_rows, RANGE_SECTIONS)
    vocab, postings, word_counts, lengths, keys = _count_postings(texts, segmenter, settings, ranges, memo)
    return_freed_memory()  # the workers' blocks, put in place and freed: else the child keeps their pages
    n = max(len(sections), 1)
    df = postings.df()
    stop = {t for t, count in zip(postings.terms, df.tolist(), strict=True) if count / n > settings.stop_ratio}
    stop |= set(settings.stop_words)
    charset = {ch for term in postings.terms for ch in term if is_han(ch)}
    removed = {t: count for t, count in zip(postings.terms, df.tolist(), strict=True) if t in stop}
    counted_vocab = set(vocab)
    postings = _without(postings, stop)
    vocab -= stop
    encoded = encode_postings(postings)

    with_rows, doc_bytes = _file_counts(postings, vocab, sections, texts)
    ratios: dict[bytes, float] = {}
    own, shared, doc_sections = _divided(postings, encoded, with_rows, doc_bytes, texts, settings, ratios)
    own_index = {term: i for i, term in enumerate(own)}
    groups: list[list[int]] = [[] for _ in range(shared)]
    own_groups: list[list[int]] = [[] for _ in own]
    for i, term in enumerate(postings.terms):
        if term in own_index:
            own_groups[own_index[term]].append(i)
        else:
            groups[fnv1a(term) % shared].append(i)
    facet_groups: list[dict[str, str]] = [{} for _ in range(shared)]
    for key, numbers in sorted(source.facets.items()):
        facet_groups[fnv1a(key) % shared][key] = _facet_numbers(numbers)
    term_files = [(_term_path(k, own=True), members, {}) for k, members in enumerate(own_groups)]
    term_files += [(_term_path(k), members, facet_groups[k]) for k, members in enumerate(groups)]
    return_freed_memory()  # of encoding and planning
    return (IndexPlan(source, settings, vocab, stop, charset, postings, encoded, own_index, shared, doc_sections,
                      term_files),
            PlanBasis(counted_vocab, word_counts, lengths, removed, with_rows, doc_bytes, ranges, keys, ratios))


@dataclass(frozen=True)
class IndexChange:
    """What an edit within sections changed since the index the site holds: that index's plan (plan_digest),
    the sections whose texts changed, and the terms whose entries those changes can change (changed_terms). A
    file of the same plan that holds none of these terms and texts is the file the site holds (write_index)."""

    plan: bytes
    sections: frozenset[int]
    terms: frozenset[str]


def plan_digest(plan: IndexPlan, salt: bytes) -> bytes:
    """A digest of all that every index file depends on but its own terms and texts: the settings, the code,
    the sections' count, BM25's average length, the vocabulary and stop words, and how files are divided."""
    return hashlib.blake2b(salt + pickle.dumps((
        len(plan.source.sections), plan.postings.avgdl, sorted(plan.vocab), sorted(plan.stop),
        sorted(plan.own_index.items()), plan.shared, plan.doc_sections)), digest_size=16).digest()


def changed_terms(plan: IndexPlan, old: dict[int, str], segmenter: Segmenter | None = None) -> frozenset[str]:
    """The terms whose entries in the term files an edit of some sections can change (section number -> its
    old body; the headings are the same): those whose count in one of the sections changed (its postings, its
    idf), and those whose snippet rows show one of the sections, before the edit or after it (the row's text).
    Not every term of the sections: an impact depends on the section's length only through its class, which
    the manifest carries, so a term whose counts stayed keeps its entry."""
    numbers = sorted(old)
    texts = plan.source.texts
    segmenter = segmenter or Segmenter(plan.settings.probes, few=True)
    before = section_counts(plan, _Texts.of([(texts.heading(k), old[k]) for k in numbers]), range(len(numbers)),
                            segmenter)
    after = section_counts(plan, texts, numbers, segmenter)
    changed: set[str] = set()
    for (was, _), (now, _) in zip(before, after, strict=True):
        changed.update(t for t in was.keys() | now.keys() if was.get(t) != now.get(t))
    postings, table = plan.postings, impact_table(plan.settings)
    old_classes = length_classes(np.array([length for _, length in before], np.int64), postings.avgdl)
    new_classes = postings.classes[np.array(numbers, np.int64)]
    # the terms whose counts stayed, with snippet rows: the best impact they have in an edited section
    best: dict[str, int] = {}
    for j, (now, _) in enumerate(after):
        for t, count in now.items():
            if t not in changed:
                impact = max(int(table[count - 1, new_classes[j]]), int(table[count - 1, old_classes[j]]))
                best[t] = max(best.get(t, 0), impact)
    ids, wanted, bars = [], [], []
    for t in sorted(best):
        i = bisect.bisect_left(postings.terms, t)
        if i < len(postings.terms) and postings.terms[i] == t:  # else a stop term: in no file
            rows = snippet_rows_wanted(plan, t, int(postings.starts[i + 1] - postings.starts[i]))
            if rows:
                ids.append(i)
                wanted.append(rows)
                bars.append(best[t])
    edited = np.array(numbers, np.int64)
    for k in _unless_outranked(postings, np.array(ids, np.int64), np.array(wanted), np.array(bars), edited, table):
        if _shows_any(postings, ids[k], wanted[k], edited, old_classes, table):
            changed.add(postings.terms[ids[k]])
    return frozenset(changed)


def _unless_outranked(postings: Postings, ids: np.ndarray, wanted: np.ndarray, bars: np.ndarray, edited: np.ndarray,
                      table: np.ndarray) -> list[int]:
    """Which of the terms `ids` may show an edited section among their `wanted` best: all but those with as
    many sections of an impact above the edited sections' best (`bars`) among their first postings. Most
    terms of a section are ruled out so, all at once, without reading their whole lists."""
    if not len(ids):
        return []
    lo = postings.starts[ids]
    taken = np.minimum(postings.starts[ids + 1] - lo, SHOWN_SAMPLE)
    numbers = gathered(postings.sections, lo, taken)
    impacts = postings.impacts(numbers, gathered(postings.counts, lo, taken), table)
    term = np.repeat(np.arange(len(ids)), taken)
    better = (impacts > bars[term]) & ~np.isin(numbers, edited)
    return np.flatnonzero(np.bincount(term, weights=better, minlength=len(ids)) < wanted).tolist()


SHOWN_SAMPLE = 512  # postings of each term _unless_outranked looks at


def _shows_any(postings: Postings, i: int, wanted: int, edited: np.ndarray, old_classes: np.ndarray,
               table: np.ndarray) -> bool:
    """Whether the `wanted` best postings of term i show an edited section, ranked as now or with the edited
    sections' old length classes (their counts are the same)."""
    lo, hi = int(postings.starts[i]), int(postings.starts[i + 1])
    numbers, counts = postings.sections[lo:hi], postings.counts[lo:hi]
    at = np.searchsorted(numbers, edited)
    held = (at < len(numbers)) & (numbers[np.minimum(at, len(numbers) - 1)] == edited)
    at = at[held]
    impacts = postings.impacts(numbers, counts, table)
    was = table[counts[at].astype(np.intp) - 1, old_classes[held]]
    for ranked in (impacts[at], was):
        mine = impacts.copy()
        mine[at] = ranked
        for j, number in zip(at.tolist(), numbers[at].tolist(), strict=True):
            ahead = int((mine > mine[j]).sum()) + int(((mine == mine[j]) & (numbers < number)).sum())
            if ahead < wanted:
                return True
    return False


def snippet_rows_wanted(plan: IndexPlan, term: str, df: int) -> int:
    """How many snippet rows a term's file carries for a term of `df` sections (see SHARED_ROWS_MIN_SECTIONS)."""
    if term in plan.own_index:
        return plan.settings.snippet_rows
    return FIRST_RESULTS if term in plan.vocab or df >= SHARED_ROWS_MIN_SECTIONS else 0


def section_counts(plan: IndexPlan, texts: _Texts, numbers: Iterable[int],
                   segmenter: Segmenter | None = None) -> list[tuple[dict[str, int], int]]:
    """Per section `numbers` of `texts`: its index terms (as the plan's vocabulary counts them) -> how often
    (up to TF_MAX, as postings keep them), and its BM25 length."""
    alone = texts.of_sections(numbers)  # not all the texts joined, when some were replaced (_PatchedTexts)
    job = _Job(alone, segmenter or Segmenter(plan.settings.probes, few=True), plan.settings)
    vocab = frozenset(plan.vocab)  # 14,000 words at 10,000 reports: made once, not per section
    found = []
    for number in range(len(alone)):
        counter = _RangeCounter(job, (number, number + 1))
        length = int(counter.words()[3][0])
        found.append((unit_counts(counter, vocab, plan.settings), length))
    return found


def unit_counts(counter: _RangeCounter, vocab: frozenset[str], settings: SearchSettings) -> dict[str, int]:
    """The terms of the one section a counter counted (after its words()) -> how often (its heading
    heading_weight times; up to TF_MAX)."""
    names, blocks = range_postings(counter.cut(), vocab, settings)
    counts: dict[str, int] = {}
    for ids, _, _, block_counts, _ in blocks:  # one section: one posting per term
        counts.update(zip((names[i] for i in ids.tolist()), block_counts.tolist(), strict=True))
    return counts


def index_files_digest(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A digest of the index files a site holds, (path, digest of the bytes) each."""
    return hashlib.blake2b(pickle.dumps(sorted(files)), digest_size=16).digest()


def write_index(plan: IndexPlan, finish: Callable[[OutputFile], T], memo: IndexMemo | None = None,
                change: IndexChange | None = None) -> list[T]:
    """The planned index's files, made by forked workers (each passed to `finish` there), or, with `memo`
    that keeps files, taken over from the last site where their keys are unchanged. With `change` (since
    the index the memo's `last` files are), a file that it leaves as it was is taken over under its last
    key, without working its key out: 2,000 files' keys, 1 s of two processes at 10,000 reports."""
    with collections_paused():
        return _write_index(plan, finish, memo, change)


# Files an edit changes, at least, for the files to be made in workers (a few ms each): an edit that adds a
# sentence changes 10-20.
PARALLEL_MIN_CHANGED_FILES = 40


def _write_index(plan: IndexPlan, finish: Callable[[OutputFile], T], memo: IndexMemo | None,
                 change: IndexChange | None) -> list[T]:
    settings, postings, encoded, vocab, own_index = (plan.settings, plan.postings, plan.encoded, plan.vocab,
                                                     plan.own_index)
    sections, texts, report_rows = plan.source.sections, plan.source.texts, plan.source.report_rows
    n = max(len(sections), 1)
    df_kept = postings.df()
    table = impact_table(settings)

    def rows_for(i: int) -> int:
        return snippet_rows_wanted(plan, postings.terms[i], int(df_kept[i]))

    term_files, doc_sections = plan.term_files, plan.doc_sections
    doc_firsts = range(0, len(sections), doc_sections)
    workers = pool_size(len(sections), PARALLEL_MIN_SECTIONS)

    salt = memo.salt(settings) if memo and memo.keep else None
    row_digests: dict[int, bytes] = {}  # of the sections in snippet rows, which many files share
    same = _unchanged_files(plan, change, salt) if memo and salt else set()
    if same and len(term_files) + len(doc_firsts) - len(same) < PARALLEL_MIN_CHANGED_FILES:
        workers = 1  # a few files to make: not worth forking

    def kept_as_it_was(path: str) -> T | None:
        last = memo.last.get(path) if memo and path in same else None
        return memo.keep(path, last[0]) if memo and memo.keep and last and last[0] else None

    def row_digest(number: int) -> bytes:
        found = row_digests.get(number)
        if found is None:
            found = row_digests[number] = _row_digest(number, report_rows, sections, texts)
        return found

    def kept_or_made(path: str, key: bytes | None, make: Callable[[], bytes]) -> T:
        """The last site's file when it was made of the same (see IndexMemo), else the file made."""
        kept = memo.keep(path, key) if memo and memo.keep and key else None
        return kept if kept is not None else finish(OutputFile(path, make(), key))

    def made_anew(path: str, make: Callable[[], bytes]) -> T:
        """A file that `change` changed: made without working out its key first (a third of the time of an
        edit's files). Its key is of its bytes, which no key of inputs ever equals: the next edit that
        leaves it as it is keeps it (kept_as_it_was), a build without a known change makes it again."""
        data = make()
        return finish(OutputFile(path, data, _bytes_key(salt, path, data) if salt else None))

    def last_bytes(path: str) -> bytes | None:
        """The last site's file at `path`, when it is the file the last build made: `change` is since then."""
        last = memo.last.get(path) if memo and memo.read else None
        found = memo.read(path, last[0]) if memo and memo.read and last and last[0] else None
        return found.data if found is not None else None

    def term_file(path: str, members: list[int], facet_ranges: dict[str, str]) -> T:
        kept = kept_as_it_was(path)
        if kept is not None:
            return kept
        if same and change:
            entries = _unchanged_entries(last_bytes(path), change.terms)
            made = [i for i in members if postings.terms[i] not in entries]
            return made_anew(path, lambda: _term_file(postings, encoded, members, facet_ranges,
                                                      _snippet_sections(postings, made, rows_for, table), report_rows,
                                                      sections, texts, n, entries))
        rows_of = _snippet_sections(postings, members, rows_for, table)
        key = salt and _term_file_key(salt, path, postings, members, facet_ranges, rows_of, row_digest, n)
        return kept_or_made(path, key, lambda: _term_file(postings, encoded, members, facet_ranges, rows_of,
                                                          report_rows, sections, texts, n))

    def doc_file(first: int) -> T:
        path = _doc_path(first // doc_sections)
        kept = kept_as_it_was(path)
        if kept is not None:
            return kept
        def make() -> bytes:
            return _doc_file(report_rows, sections, texts, first, doc_sections).data
        if same:
            return made_anew(path, make)
        key = salt and _doc_file_key(salt, report_rows, sections, texts, first, doc_sections)
        return kept_or_made(path, key, make)

    def make(part: int) -> Iterator[T]:
        """Every `workers`-th term file, from the part-th; then every `workers`-th text file, from the part-th."""
        yield from (term_file(*task) for task in term_files[part::workers])
        yield from (doc_file(first) for first in doc_firsts[part::workers])

    made = _in_workers(make, workers, batch=SEND_BATCH)
    terms_of = [len(term_files[part::workers]) for part in range(workers)]
    files = (_interleaved([part_files[:terms] for part_files, terms in zip(made, terms_of, strict=True)])
             + _interleaved([part_files[terms:] for part_files, terms in zip(made, terms_of, strict=True)]))
    manifest = {
        "version": FORMAT_VERSION, "sections": len(sections), "reports": len(report_rows),
        "termShards": plan.shared, "ownFiles": own_index, "docSections": doc_sections,
        "vocab": plan.vocab_coded or front_coded(sorted(vocab)), "stop": sorted(plan.stop),
        "t2s": traditional_map(plan.charset),
        "lengthClasses": LENGTH_CLASSES, "classes": digit_codes()[postings.classes].tobytes().decode("ascii"),
        "impacts": digit_codes()[table.ravel() - 1].tobytes().decode("ascii"),
    }
    return [finish(OutputFile(INDEX_DIR + "manifest.json", _json(manifest))), *files]


def _term_path(number: int, own: bool = False) -> str:
    """The path of a term file: one of a term of its own (plan.own_index), or one that terms share by hash."""
    return f"{INDEX_DIR}t/{'b' if own else ''}{number}.json"


def _doc_path(number: int) -> str:
    """The path of the number-th text file (sections number * docSections onwards)."""
    return f"{INDEX_DIR}d/{number}.json"


def _unchanged_files(plan: IndexPlan, change: IndexChange | None, salt: bytes) -> set[str]:
    """The paths of the files that `change` leaves as they were (none unless the plan is the last one's): the
    term files that hold none of its terms, the text files that hold none of its sections."""
    if change is None or change.plan != plan_digest(plan, salt):
        return set()
    changed = {_term_path(plan.own_index[term], own=True) if term in plan.own_index
               else _term_path(fnv1a(term) % plan.shared) for term in change.terms}
    changed |= {_doc_path(number // plan.doc_sections) for number in change.sections}
    paths = [path for path, _, _ in plan.term_files]
    paths += [_doc_path(k) for k in range(-(-len(plan.source.sections) // plan.doc_sections))]
    return {path for path in paths if path not in changed}


def _interleaved(parts: list[list[T]]) -> list[T]:
    """The list whose every len(parts)-th item from the p-th is parts[p] (the inverse of items[p::k])."""
    out: list[T] = []
    for i in range(max(map(len, parts), default=0)):
        out += [part[i] for part in parts if i < len(part)]
    return out


def _in_workers(make: Callable[[int], Iterator[T]], workers: int, forked: Callable[[], None] | None = None,
                batch: int = 1) -> list[list[T]]:
    """[list(make(part)) for part in range(workers)], each part in a forked process of its own when workers > 1
    (it inherits all that make needs). A worker sends the items as they are made, `batch` at a time, so that it
    never holds more (a range's counts are big: one at a time; an index file's entry is small: SEND_BATCH);
    only the items are pickled. `forked` is called once the workers are forked (or, in this process, when all
    is made): to drop what only they needed."""
    if workers < 2:
        made_here = [list(make(0))]
        if forked:
            forked()
        return made_here
    made: list[list[T]] = [[] for _ in range(workers)]
    with forked_processes(_send_made, [(make, part, batch) for part in range(workers)]) as connections:
        if forked:
            forked()
        busy = {conn: part for part, conn in enumerate(connections)}
        while busy:
            for conn in wait(list(busy)):
                items = received(conn)
                if items is _DONE:
                    del busy[conn]
                else:
                    made[busy[conn]] += items
    return made


_DONE = None  # what a worker sends after its last item
# Index files' entries a worker sends in one message: one message each took a tenth of the time of an edit's
# files (2,000 files, most of them kept, at 10,000 reports); an entry is a file's path and digest, mostly.
SEND_BATCH = 64


def _send_made(make: Callable[[int], Iterator[object]], part: int, batch: int, conn) -> None:
    with reporting_to(conn) as send:
        items: list[object] = []
        for item in make(part):
            items.append(item)
            if len(items) == batch:
                send(items)
                items = []
        send(items)
        send(_DONE)


def _snippet_sections(postings: Postings, members: list[int], rows_for, table: np.ndarray) -> list[list[int]]:
    """Per term of a term file, the sections of its snippet rows: its first `rows_for(term)` results, in the
    order a one-word query ranks them (impacts of `table`, impact_table)."""
    chosen = []
    for i in members:
        wanted = rows_for(i)
        if wanted:
            lo, hi = int(postings.starts[i]), int(postings.starts[i + 1])
            numbers = postings.sections[lo:hi]
            impacts = postings.impacts(numbers, postings.counts[lo:hi], table)
            best = np.lexsort((numbers, -impacts.astype(np.int16)))[:wanted]
            chosen.append(numbers[best].tolist())
        else:
            chosen.append([])
    return chosen


def _term_file(postings: Postings, encoded: EncodedPostings, members: list[int], facet_ranges: dict[str, str],
               rows_of: list[list[int]], report_rows: list[list[object]], sections: list[IndexedSection],
               texts: _Texts, n: int, kept: dict[str, LastEntry] | None = None) -> bytes:
    """{"t": term -> [idf x 1000, deltas, counts], "f": facet ranges, "r": report rows, "s": snippet rows};
    rows_of: _snippet_sections of the members not `kept`: terms whose entries are as the last build made them
    (_unchanged_entries), taken as they were but for the numbers of their rows' reports in this file."""
    kept = kept or {}
    report_column = sections.reports if isinstance(sections, SectionColumns) else None  # no section made
    directory: dict[str, list[object]] = {}
    snippets: dict[str, list[list[object]]] = {}
    reports: list[list[object]] = []
    report_at: dict[int, int] = {}

    def report_of(number: int) -> int:
        report = report_column[number] if report_column is not None else sections[number].report
        if report not in report_at:
            report_at[report] = len(reports)
            reports.append(report_rows[report])
        return report_at[report]

    made = [i for i in members if postings.terms[i] not in kept]
    made_entries = zip(encoded.of(made), rows_of, strict=True)
    for i in members:
        term = postings.terms[i]
        if term in kept:
            directory[term], last_rows = kept[term]
            if last_rows:
                snippets[term] = [[row[0], report_of(row[0]), *row[2:]] for row in last_rows]
            continue
        encoding, numbers = next(made_entries)
        count = int(postings.starts[i + 1] - postings.starts[i])
        idf = math.log(1 + (n - count + 0.5) / (count + 0.5))
        directory[term] = [round(idf * 1000), *encoding]
        if numbers:
            rows = []
            for number in numbers:
                s = sections[number]
                text = texts.body(s.number)
                start, window = snippet_window(text, term)
                rows.append([s.number, report_of(number), s.anchor, s.path, s.title, start, window, len(text)])
            snippets[term] = rows
    return _json({"t": directory, "f": facet_ranges, "r": reports, "s": snippets})


LastEntry = tuple[list[object], list[list[Any]] | None]  # a term's entry in a term file and its snippet rows


def _unchanged_entries(last: bytes | None, changed: Collection[str]) -> dict[str, LastEntry]:
    """The entries of a term file as the last build made it (`last`) of the terms an edit left as they were
    (not in `changed`, IndexChange.terms): their postings, idf and snippet rows are the same, and making them
    again (snippet windows, encodings) took two thirds of the time of the files an edit changes."""
    try:
        found = orjson.loads(last) if last else None
        entries, rows = (found["t"], found["s"]) if isinstance(found, dict) else ({}, {})
    except (ValueError, KeyError):
        return {}
    return {term: (entry, rows.get(term)) for term, entry in entries.items() if term not in changed}


def _term_file_key(salt: bytes, path: str, postings: Postings, members: list[int], facet_ranges: dict[str, str],
                   rows_of: list[list[int]], row_digest: Callable[[int], bytes], n: int) -> bytes:
    """A digest of all that _term_file makes the file of; row_digest(section): of all a snippet row shows."""
    h = hashlib.blake2b(salt + path.encode(), digest_size=16)
    ids = np.array(members, np.int64)
    lo, counts = postings.starts[ids], postings.starts[ids + 1] - postings.starts[ids]
    rows = [number for numbers in rows_of for number in numbers]
    for part in (counts, gathered(postings.sections, lo, counts), gathered(postings.counts, lo, counts),
                 np.array(list(map(len, rows_of)), np.int64)):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update(b"".join(map(row_digest, rows)))
    h.update(repr((n, [postings.terms[i] for i in members], facet_ranges)).encode())
    return h.digest()


def _bytes_key(salt: bytes, path: str, data: bytes) -> bytes:
    """The key of an index file made without the key of its inputs (see _write_index.made_anew)."""
    return hashlib.blake2b(b"bytes:" + salt + path.encode() + b"\0" + data, digest_size=16).digest()


def _row_digest(number: int, report_rows: list[list[object]], sections: list[IndexedSection], texts: _Texts) -> bytes:
    """A digest of all a snippet row of section `number` shows."""
    s = sections[number]
    h = hashlib.blake2b(repr((s.number, s.anchor, s.path, s.title, report_rows[s.report])).encode(), digest_size=16)
    h.update(texts.body(number).encode("utf-8", "surrogatepass"))
    return h.digest()


ROW_BYTES = 450  # about the size of one snippet row (report, heading path, 110 characters of text)
# A word sharing a file carries FIRST_RESULTS snippet rows when it is a vocabulary word or in this many
# sections: the rarest piece of a query (跨省 of 跨省通办) then brings the snippets of its first results.
# Rarer words do not: their rows would swell every shared file for queries that are rare themselves.
SHARED_ROWS_MIN_SECTIONS = 100
OWN_SHARE = 2  # at most 1/OWN_SHARE of the file budget goes to files of one common term
OWN_STEP = 64  # ...in steps of this many files (_divided)
TERM_FETCHES = 2  # a typical query reads two word lists that share their file...
DOC_FETCHES = 1  # ...and about one text file (snippet rows cover most results; texts in heading order)


def _file_counts(postings: Postings, vocab: set[str], sections: list[IndexedSection], texts: _Texts) -> tuple[int, int]:
    """(terms with snippet rows in a shared file or their own, bytes of all text files) for _divided: sums
    over terms and sections, which a plan patched after an edit changes by what the edit changed."""
    df = np.diff(postings.starts)
    with_rows = sum(1 for i, t in enumerate(postings.terms) if t in vocab or df[i] >= SHARED_ROWS_MIN_SECTIONS)
    return with_rows, sum(doc_bytes_of(s, texts) for s in sections)


def doc_bytes_of(s: IndexedSection, texts: _Texts) -> int:
    """About the bytes of a section in its text file."""
    return len(texts.body(s.number).encode()) + len(s.path.encode()) + len(s.title.encode()) + 24


def _divided(postings: Postings, encoded: EncodedPostings, with_rows: int, doc_bytes: int, texts: _Texts,
             settings: SearchSettings, ratios: dict[bytes, float] | None = None) -> tuple[list[str], int, int]:
    """Split the file budget (max_files - 1 for the manifest) between term lists and section texts.

    A query downloads whole files: its terms' lists (with their snippet rows), then the texts of the
    results no snippet row covers. So a common term (行政复议) gets a file of its own - fetching it brings
    nothing else - rare terms share files chosen by hash, and when the budget binds, shared and text files
    are sized so that a query reads the fewest bytes as served (gzip: texts in heading order shrink about
    8 times, postings about 2 times; measured on samples). Of the sums _file_counts makes; returns (terms
    with their own file, number of shared files, sections per text file)."""
    sections = range(len(texts))
    budget = settings.max_files - 1
    target, doc_min = settings.posting_shard_kb * 1024, settings.doc_shard_kb * 1024
    sizes = encoded.chars + np.diff(postings.starts)
    own_rows = ROW_BYTES * settings.snippet_rows
    # the biggest first, ties by term order; of those big enough only (sorting all terms took 0.1 s)
    fit = np.flatnonzero(sizes + own_rows >= target)
    big = fit[np.lexsort((fit, -sizes[fit]))][: budget // OWN_SHARE]
    own = sorted(postings.terms[i] for i in big.tolist())
    shared_rows = ROW_BYTES * FIRST_RESULTS * (with_rows - len(own))
    rest = int(sizes.sum()) - int(sizes[big].sum()) + shared_rows
    shared, docs = math.ceil(rest / target) or 1, math.ceil(doc_bytes / doc_min) or 1
    # An edit must rarely change how many files there are: every term would move to another shared file,
    # every section to another text file (1,606 of 2,000 files rewritten after one edit at 1,000 reports).
    # So the own files' share of the budget goes in steps of OWN_STEP, and the split is by a ratio of two
    # significant digits.
    free = budget - min(budget // OWN_SHARE, -(-len(own) // OWN_STEP) * OWN_STEP)
    if shared + docs > free:
        # fewest bytes for a query reading TERM_FETCHES shared files and DOC_FETCHES text files
        ratios = {} if ratios is None else ratios
        rest_served = rest / _gzip_ratio(encoded.sample(_GZIP_SAMPLE), ratios)
        doc_samples = [_json([texts.body(j) for j in range(k, min(k + 200, len(sections)))])
                       for k in range(0, len(sections), max(200, len(sections) // 8))]
        doc_served = doc_bytes / _gzip_ratio(doc_samples, ratios)
        ratio = float(f"{math.sqrt(TERM_FETCHES * rest_served / (DOC_FETCHES * doc_served)):.2g}")
        shared = max(1, min(shared, round(free * ratio / (1 + ratio))))
        docs = free - shared
    return own, shared, max(1, math.ceil(len(sections) / docs))


_GZIP_SAMPLE = 256 * 1024
# zlib's fastest level, as nginx serves by default (gzip_comp_level 1): a third of level 6's time (0.01 s a
# sample, 0.02 s of a rebuild after an edit at 10,000 reports), and the ratio of what most readers download
GZIP_LEVEL = 1


def _gzip_ratio(parts: list, packed_sizes: dict[bytes, float]) -> float:
    """Raw / gzipped size of some samples (up to _GZIP_SAMPLE bytes from the start of each; arrays or bytes).
    `packed_sizes`: each sample's gzipped size worked out before, by a digest of the sample (PlanBasis): an
    edit changes one of the samples at most, and compressing them all took 0.02-0.05 s of each rebuild after
    one at 10,000 reports."""
    raw = packed = 0
    for part in parts:
        data = bytes(part[:_GZIP_SAMPLE])
        key = hashlib.blake2b(data, digest_size=16).digest()
        if key not in packed_sizes:
            packed_sizes[key] = len(gzip.compress(data, GZIP_LEVEL))
        raw += len(data)
        packed += int(packed_sizes[key])
    return raw / packed if packed else 1.0


def _doc_file(report_rows: list[list[object]], sections: list[IndexedSection], texts: _Texts, first: int,
              per_file: int) -> OutputFile:
    """The text file of sections first..first + per_file: section n is in file n // per_file."""
    reports: list[list[object]] = []
    at: dict[int, int] = {}
    rows: list[list[object]] = []
    for s in sections[first:first + per_file]:
        if s.report not in at:
            at[s.report] = len(reports)
            reports.append(report_rows[s.report])
        rows.append([at[s.report], s.anchor, s.path, s.title, texts.body(s.number)])
    return OutputFile(_doc_path(first // per_file), _json({"r": reports, "s": rows}))


def _doc_file_key(salt: bytes, report_rows: list[list[object]], sections: list[IndexedSection], texts: _Texts,
                  first: int, per_file: int) -> bytes:
    """A digest of all that _doc_file makes the file of."""
    chosen = sections[first:first + per_file]
    reports = sorted({s.report for s in chosen})
    # pickled, not repr'd: repr of 500 sections' Chinese headings took 0.4 s of a rebuild at 10,000 reports
    h = hashlib.blake2b(salt + pickle.dumps((first, per_file, reports, [report_rows[r] for r in reports],
                                             [(s.report, s.anchor, s.path, s.title) for s in chosen])),
                        digest_size=16)
    return _texts_digest(h, texts, first, first + len(chosen)).digest()
