"""The search index's plan after an edit within a few sections' texts, made from the last plan (patched_plan)
rather than counted again from every range of sections (search.plan_index): the same plan, to the bit.

search.plan_index, after an edit of one section at 10,000 reports, recounts the edited range but then merges
the words of all 61 ranges into a vocabulary (0.7 s), and gathers, encodes and divides every posting (0.9 s).
What the last plan was made of is kept instead (IndexState, beside the kept index input): every word's
sections, the phrases that may be chosen with their sides, each section's BM25 length, and the postings. An
edit then counts only its sections, old texts and new, and the plan is the last one with their postings
replaced - when that is certainly the plan plan_index makes: the vocabulary, the stop terms, BM25's average
length and the division into files are unchanged. Otherwise (or when a phrase's sides cannot be told
cheaply) patched_plan returns None and the caller plans afresh.

A phrase's sides (search.Sides) are merged over every distinct run holding it, which cannot be undone: a side
that was None may be a word once the edited sections no longer hold the run that made it None. Such a side
is looked for in other sections (_Evidence): one occurrence with no word there, or two with different ones,
keep it None whatever the edit removed.
"""

from __future__ import annotations

import bisect
import math
import mmap
import os
import pickle
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

from .imports import lazy_import
from .search import (
    CHAIN_MARK,
    SHARED_ROWS_MIN_SECTIONS,
    WORDS,
    EncodedPostings,
    IndexPlan,
    MemoStore,
    PassOne,
    PlanBasis,
    Postings,
    SearchInput,
    SearchSettings,
    Segmenter,
    Sides,
    SplicedArray,
    WordFinder,
    _divided,
    _Job,
    _RangeCounter,
    _term_path,
    add_sides,
    cut_text,
    doc_bytes_of,
    fnv1a,
    front_coded,
    is_han,
    length_classes,
    phrase_least,
    ranked_words,
    sections_of_reports,
    splice_pieces,
    unit_counts,
)

np = lazy_import("numpy")  # a quick rebuild's main process never loads it

PATCH_MAX_SECTIONS = 64  # sections an edit changes, at most, for the plan to be patched (each is counted twice)
HEAD_MARGIN = 2000  # words kept in rank order after the vocabulary's: how far an edit's words may climb
EVIDENCE_SECTIONS = 12  # sections cut, at most, to show that a phrase's side stays None (_Evidence._in_texts)...
EVIDENCE_PLACES = 20000  # ...and places of the phrase looked at


@dataclass(frozen=True)
class IndexState:
    """What patched_plan needs of the last plan and of what it was made of (see search.PlanBasis)."""

    salt: bytes  # IndexMemo.salt: the code and the settings
    sections: int
    avgdl: float
    counted_vocab: set[str]  # what the terms were counted with: the vocabulary with its stop words
    vocab: set[str]
    stop: set[str]
    removed: dict[str, int]  # terms taken out of the postings (stop terms) -> their sections
    word_df: dict[str, int]  # every word (search.WordCounts) -> its sections
    head: list[str]  # the words in rank order (ranked_words), the vocabulary's and HEAD_MARGIN more
    word_count: int  # words ranked
    phrases: dict[str, tuple[int, Sides]]  # every phrase of `floor` or more sections -> (sections, sides)
    floor: int
    unsure: set[str]  # phrases of those whose sides are not known (none of them can be chosen yet)
    lengths: np.ndarray  # per section, its BM25 length
    terms: str  # the postings' terms, one a line
    starts: np.ndarray
    numbers: np.ndarray  # the postings' section numbers...
    counts: np.ndarray  # ...and counts
    chars: np.ndarray  # per term, characters of its varint deltas
    letters: Counter[str]  # characters of all terms, the removed too -> how often
    with_rows: int  # see search._file_counts
    doc_bytes: int
    own: list[str]
    shared: int
    doc_sections: int
    file_of: np.ndarray  # per term, its term file (plan.term_files)
    facet_groups: list[dict[str, str]]  # per shared file, its facet ranges
    ranges: list[tuple[int, int]]  # the ranges of sections of the plan made afresh...
    range_keys: list[bytes | None]  # ...their keys in the memo, whose words tell their phrases' sides...
    dirty: set[int]  # ...but those of ranges holding a section changed since
    gzip_ratios: dict[bytes, float] = field(default_factory=dict)  # samples' gzipped sizes, see search._gzip_ratio
    vocab_coded: str = ""  # the manifest's vocabulary (search.front_coded): a patched plan's is the same


_ARRAYS = ("lengths", "starts", "numbers", "counts", "chars", "file_of")  # kept as their bytes (write_state)


def write_state(path: Path, head: object, state: IndexState) -> None:
    """Keep `state` (after a small `head`) in one file, written under another name and put in place once
    complete. Its arrays follow the pickle as their bytes: read back by read_state with one copy, not the
    two of a pickle read whole and unpickled (0.4 s of the spare child at 10,000 reports, 180 MB)."""
    arrays = [np.ascontiguousarray(getattr(state, name)) for name in _ARRAYS]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        rest = replace(state, **dict.fromkeys(_ARRAYS))
        pickle.dump((head, rest, [(a.dtype.str, a.shape) for a in arrays]), f, protocol=pickle.HIGHEST_PROTOCOL)
        for a in arrays:
            f.write(memoryview(a).cast("B"))
    os.replace(tmp, path)


def read_state(path: Path) -> tuple[object, IndexState] | None:
    """(head, state) of write_state; None when there is none or it is unreadable. The arrays are read-only,
    on the file's pages as mapped: not copied out of them first (0.1 s at 10,000 reports). The file is only
    ever replaced, never changed in place, so the pages stay as they were while the arrays last."""
    try:
        with path.open("rb") as f:
            head, rest, layout = pickle.load(f)
            at, size = f.tell(), os.fstat(f.fileno()).st_size
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > at else b""
        arrays = {}
        for name, (dtype, shape) in zip(_ARRAYS, layout, strict=True):
            kind = np.dtype(dtype)
            count = math.prod(shape)
            if at + kind.itemsize * count > size:
                return None
            arrays[name] = (np.frombuffer(mapped, kind, count, at) if count else np.empty(0, kind)).reshape(shape)
            at += kind.itemsize * count
        return (head, replace(rest, **arrays)) if isinstance(rest, IndexState) else None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None


def index_state(plan: IndexPlan, basis: PlanBasis, salt: bytes) -> IndexState:
    """The state of a plan made by search.planned_index."""
    postings, settings = plan.postings, plan.settings
    ranked = ranked_words(basis.words.df, settings)
    file_of = np.empty(len(postings.terms), np.int32)
    for k, (_, members, _) in enumerate(plan.term_files):
        file_of[members] = k
    letters = Counter("".join(postings.terms))
    letters.update("".join(basis.removed))
    own = sorted(plan.own_index, key=plan.own_index.__getitem__)
    return IndexState(
        salt, len(plan.source.sections), postings.avgdl, set(basis.vocab), set(plan.vocab), set(plan.stop),
        dict(basis.removed), dict(basis.words.df), ranked[:settings.vocab_max + HEAD_MARGIN], len(ranked),
        dict(basis.words.phrases), basis.words.floor, set(), basis.lengths, "\n".join(postings.terms),
        postings.starts, postings.sections, postings.counts, plan.encoded.chars, letters, basis.with_rows,
        basis.doc_bytes, own, plan.shared, plan.doc_sections, file_of,
        [facets for _, _, facets in plan.term_files[len(own):]], basis.ranges, basis.range_keys, set(),
        dict(basis.gzip_ratios), plan.vocab_coded or front_coded(sorted(plan.vocab)))


@dataclass(frozen=True)
class _Section:
    """What one section gives the index, as a range of it alone counts it (search._RangeCounter)."""

    counter: _RangeCounter
    words: PassOne  # its words (each once), phrases (distinct runs and chains holding each), sides, length


def _sections(job: _Job, numbers: list[int]) -> list[_Section]:
    """Each of these sections counted as a range of its own; of their texts alone, not of all the texts
    joined again when some were replaced (search._PatchedTexts)."""
    alone = _Job(job.texts.of_sections(numbers), job.segmenter, job.settings)
    found = []
    for k in range(len(numbers)):
        counter = _RangeCounter(alone, (k, k + 1))
        found.append(_Section(counter, counter.words()))
    return found


def patched_plan(state: IndexState, old: SearchInput, source: SearchInput, settings: SearchSettings, salt: bytes,
                 reports: Iterable[int], store: MemoStore | None = None, segmenter: Segmenter | None = None
                 ) -> tuple[IndexPlan, Callable[[], IndexState]] | None:
    """The plan of `source`, which is `old` (the input of the state's plan) with the texts of some sections of
    `reports` replaced (search.patched_input), and a function that makes its state; None when it is not
    certainly search.plan_index's plan (then made so). `store`: the memo's (IndexMemo), whose ranges' words
    show the sides of phrases. `segmenter`: one that has cut some of the runs already (the spare child's)."""
    n = len(source.sections)
    if state.salt != salt or state.sections != n or len(old.sections) != n:
        return None
    wanted = set(reports)
    changed = [k for k in sections_of_reports(source.sections, wanted) if old.texts.body(k) != source.texts.body(k)]
    if len(changed) > PATCH_MAX_SECTIONS:
        return None
    segmenter = segmenter or Segmenter(settings.probes, few=True)
    before = _sections(_Job(old.texts, segmenter, settings), changed)
    after = _sections(_Job(source.texts, segmenter, settings), changed)
    lengths = state.lengths.copy()
    for k, section in zip(changed, after, strict=True):
        lengths[k] = int(section.words[3][0])
    avgdl = float(f"{int(lengths.sum()) / max(1, n):.3g}") or 1.0
    if avgdl != state.avgdl:  # every length class changes
        return None
    words = _patched_words(state, before, after, settings)
    if words is None:
        return None
    vocab_words = set(words[1][:settings.vocab_max])
    finder = WordFinder(segmenter)
    evidence = _Evidence(source, state, set(changed), finder, store)
    phrases = _patched_phrases(state, before, after, settings, vocab_words, _moved_phrases(before, after, finder),
                               evidence)
    if phrases is None:
        return None
    vocab = frozenset(state.counted_vocab)
    old_terms = [unit_counts(section.counter, vocab, settings) for section in before]
    new_terms = [unit_counts(section.counter, vocab, settings) for section in after]
    postings = _patched_postings(state, changed, old_terms, new_terms, lengths, settings, n)
    if postings is None:
        return None
    spliced, term_state = postings
    doc_bytes = state.doc_bytes + sum(doc_bytes_of(source.sections[k], source.texts)
                                      - doc_bytes_of(old.sections[k], old.texts) for k in changed)
    own, shared, doc_sections = _divided(spliced.postings, spliced, term_state.with_rows, doc_bytes, source.texts,
                                         settings, dict(state.gzip_ratios))
    if own != state.own or shared != state.shared or doc_sections != state.doc_sections:
        return None  # terms move to other files
    plan = IndexPlan(source, settings, set(state.vocab), set(state.stop),
                     {ch for ch, count in term_state.letters.items() if count > 0 and is_han(ch)},
                     spliced.postings, spliced, {term: i for i, term in enumerate(own)}, shared, doc_sections,
                     _term_files(term_state.file_of, own, shared, state.facet_groups), state.vocab_coded or None)
    word_df, head, word_count = words
    phrase_counts, floor, unsure = phrases

    def made() -> IndexState:
        return replace(state, word_df=word_df, head=head, word_count=word_count, phrases=phrase_counts,
                       floor=floor, unsure=unsure, lengths=lengths, terms="\n".join(spliced.postings.terms),
                       starts=spliced.postings.starts, numbers=spliced.postings.sections,
                       counts=spliced.postings.counts, chars=spliced.chars, letters=term_state.letters,
                       removed=term_state.removed, with_rows=term_state.with_rows, doc_bytes=doc_bytes,
                       file_of=term_state.file_of, dirty=state.dirty | set(changed))

    return plan, made


def _patched_words(state: IndexState, before: list[_Section], after: list[_Section],
                   settings: SearchSettings) -> tuple[dict[str, int], list[str], int] | None:
    """(every word's sections, the head of the ranking, words ranked) after the edit, when the vocabulary's
    words are those of the state's; else None. The words past the head rank after all in it: those not
    moved by the edit were there, and a moved word joins the head only when it ranks before its last."""
    delta: Counter[str] = Counter()
    for section in before:
        delta.subtract(section.words[0])
    for section in after:
        delta.update(section.words[0])
    df = state.word_df  # the state is read for one patch: changed in place
    moved = [w for w, d in delta.items() if d]
    was = {w: df.get(w, 0) for w in moved}
    for w in moved:
        if was[w] + delta[w]:
            df[w] = was[w] + delta[w]
        else:
            df.pop(w, None)
    stop_words = set(settings.stop_words)
    moved = [w for w in moved if w not in stop_words]
    count = state.word_count + sum((w in df) - (was[w] > 0) for w in moved)
    head = state.head
    if not head:
        return (df, head, count) if count == 0 else None
    covers = len(head) == state.word_count
    last = (-was.get(head[-1], df.get(head[-1], 0)), head[-1])
    moved_set = set(moved)
    joined = [w for w in moved if w in df and (covers or (-df[w], w) < last)]
    new_head = sorted([w for w in head if w not in moved_set] + joined, key=lambda w: (-df[w], w))
    m = settings.vocab_max
    if len(new_head) < min(m, count) or set(new_head[:m]) != set(head[:m]):
        return None
    return df, new_head, count


def _moved_phrases(before: list[_Section], after: list[_Section], finder: WordFinder) -> set[str]:
    """The phrases of the runs and chains of runs that a changed section holds before the edit or after it, not
    both: the others are in the same runs before and after, with the same sides (a sentence added to a section
    changes none of the phrases of its other sentences)."""
    moved: set[str] = set()
    for old, new in zip(before, after, strict=True):
        for run in old.counter.run_ids.keys() ^ new.counter.run_ids.keys():
            moved.update(finder.phrases_of_run(run))
        for join in old.counter.join_codes.keys() ^ new.counter.join_codes.keys():
            if CHAIN_MARK in join:
                moved.update(finder.phrases_of_joins((join,)))
    return moved


def _patched_phrases(state: IndexState, before: list[_Section], after: list[_Section], settings: SearchSettings,
                     vocab_words: set[str], moved: set[str], evidence: _Evidence
                     ) -> tuple[dict[str, tuple[int, Sides]], int, set[str]] | None:
    """(phrases of `floor` or more sections, the floor, those of unknown sides) after the edit, when the
    phrases chosen are the state's; else None. Only the `moved` phrases can have changed."""
    least = phrase_least(settings, state.sections)
    gone: Counter[str] = Counter()
    came: Counter[str] = Counter()
    their_sides: dict[str, Sides] = {}
    for section in before:
        gone.update(section.words[1])
    for section in after:
        came.update(section.words[1])
        add_sides(their_sides, section.words[2])
    phrases, unsure, floor, rise = state.phrases, set(state.unsure), state.floor, 0
    stop_words = set(settings.stop_words)
    for phrase in (gone.keys() | came.keys()) & moved:
        delta = came[phrase] - gone[phrase]
        entry = phrases.get(phrase)
        if entry is None:  # in fewer than `floor` sections
            if floor - 1 + delta >= least:
                return None  # it may be in enough now, of sides not known
            rise = max(rise, delta)
            continue
        count, sides = entry
        if count + delta == 0:
            del phrases[phrase]
            unsure.discard(phrase)
            continue
        matters = count + delta >= least and phrase not in vocab_words and phrase not in stop_words
        known = phrase not in unsure
        new_sides: list[str | None] = []
        for side in (0, 1):
            found = _new_side(sides[side] if known else "", count - gone[phrase], came[phrase],
                              their_sides.get(phrase, (None, None))[side])
            if found == "" and matters:
                against = their_sides[phrase][side] if came[phrase] else ""
                if not evidence.mixed(phrase, side, against):
                    return None
                found = None
            new_sides.append(found)
        if "" in new_sides:
            unsure.add(phrase)
            new_sides = [None, None]
        else:
            unsure.discard(phrase)
        phrases[phrase] = (count + delta, (new_sides[0], new_sides[1]))
    if any(phrases[p][0] >= least and p not in vocab_words and p not in stop_words for p in unsure):
        return None
    chosen = sorted((p for p, (count, sides) in phrases.items() if count >= least and p not in vocab_words
                     and p not in stop_words and sides == (None, None)), key=lambda p: (-phrases[p][0], p))
    if set(chosen[:settings.phrase_max]) != state.counted_vocab - vocab_words:
        return None
    return phrases, floor + rise, unsure


def _new_side(old: str | None, kept: int, came: int, theirs: str | None) -> str | None:
    """A phrase's side after the edit, of its side before (`old`, "" when not known), how many of its runs the
    edit left (`kept`) and added (`came`, with the side `theirs`): "" when it is not known."""
    if kept == 0:
        return theirs
    if old:  # every run had that word there, and those left still do
        return old if came == 0 or theirs == old else None
    if came and theirs is None:
        return None
    return ""


class _Evidence:
    """Looks for what keeps a phrase's side None in the sections an edit left (_mixed); each section read is
    cut once, as many phrases of an edited section are looked for in the same few sections."""

    def __init__(self, source: SearchInput, state: IndexState, skip: set[int], finder: WordFinder,
                 store: MemoStore | None):
        # the texts as they were but for the sections replaced since, which are not read (skipped)
        self.texts, self.skip = source.texts.unpatched, skip | source.texts.differing()
        self.finder, self.store = finder, store
        self._cut: dict[int, tuple[set[str], set[str]]] = {}
        firsts = [a for a, _ in state.ranges]
        touched = {bisect.bisect_right(firsts, k) - 1 for k in state.dirty | skip}
        # the ranges as the memo has them: none of their sections changed since
        self._ranges = [key for i, key in enumerate(state.range_keys) if i not in touched and key is not None]
        self._sides: dict[int, dict[str, Sides]] = {}

    def mixed(self, phrase: str, side: int, against: str) -> bool:
        """Whether sections other than `skip` hold the phrase with no word on its `side` (0 left, 1 right) or
        with another than `against` ("": two different ones): then that side is None whatever `skip` holds.
        In the memo's ranges of sections read already (_in_ranges), else in a few sections (_in_texts), else
        in the ranges not read yet (each takes 8 ms at 10,000 reports; a phrase may need a dozen)."""
        return (self._in_ranges(phrase, side, against, load=False) or self._in_texts(phrase, side, against)
                or self._in_ranges(phrase, side, against, load=True))

    def _in_ranges(self, phrase: str, side: int, against: str, load: bool) -> bool:
        """mixed, as the sides of the phrase in ranges of sections unchanged since the memo counted them tell
        (those read already, or all)."""
        if self.store is None:
            return False
        seen = {against} if against else set()
        for i, key in enumerate(self._ranges):
            found = self._sides.get(i)
            if found is None:
                if not load:
                    continue
                words = self.store.get(WORDS, key)
                found = self._sides[i] = words[2] if words is not None else {}
            sides = found.get(phrase)
            if sides is not None:
                if sides[side] is None:
                    return True
                seen.add(sides[side])
                if len(seen) > 1:
                    return True
        return False

    def _in_texts(self, phrase: str, side: int, against: str) -> bool:
        """mixed, looked for where the text beside the phrase is not `against` (法治政府 is before 建设 in
        thousands of sections, before another word in a few); what is found is then cut to tell. Only where the
        phrase stands as written: a pattern that allows punctuation between its characters took 25 ms a search
        at 10,000 reports."""
        joined, bounds = self.texts.joined, self.texts.bounds
        width = len(against)
        looked = read = 0
        at = joined.find(phrase)
        while at >= 0 and looked < EVIDENCE_SECTIONS and read < EVIDENCE_PLACES:
            read += 1
            beside = joined[at + len(phrase):at + len(phrase) + width] if side else joined[max(0, at - width):at]
            if against and beside == against:
                at = joined.find(phrase, at + 1)
                continue
            k = (bisect.bisect_right(bounds, at) - 1) // 2
            if k not in self.skip:
                looked += 1
                for sides in self._sides_in(k, phrase):
                    if sides[side] is None or (against and sides[side] != against):
                        return True
                    if not against:  # one word found there: another is looked for
                        return self._in_texts(phrase, side, sides[side])
            at = joined.find(phrase, bounds[2 * k + 2])
        return False

    def _sides_in(self, k: int, phrase: str) -> list[Sides]:
        """The phrase's sides in each distinct run and chain of runs of section k that holds it."""
        cut = self._cut.get(k)
        if cut is None:
            cut = self._cut[k] = (set(), set())
            for text in (self.texts.heading(k), self.texts.body(k)):
                runs, joins, _ = cut_text(text)
                cut[0].update(runs)
                cut[1].update(join for join in joins if CHAIN_MARK in join)
        runs, chains = cut
        finder = self.finder
        found = [sides for run in runs if phrase in run and (sides := finder.phrases_of_run(run).get(phrase))]
        found += [sides for chain in chains if phrase in chain.replace(CHAIN_MARK, "")
                  and (sides := finder.phrases_of_joins((chain,)).get(phrase))]
        return found


@dataclass(frozen=True)
class _TermState:
    """The per-term parts of the state after the edit."""

    removed: dict[str, int]
    letters: Counter[str]
    with_rows: int
    file_of: np.ndarray


def _patched_postings(state: IndexState, changed: list[int], old_terms: list[dict[str, int]],
                      new_terms: list[dict[str, int]], lengths: np.ndarray, settings: SearchSettings,
                      n: int) -> tuple[EncodedPostings, _TermState] | None:
    """The postings (encoded) with those of the changed sections replaced, when the stop terms stay those of
    the state; else None."""
    presence: Counter[str] = Counter()
    for counts in old_terms:
        presence.subtract(counts.keys())
    for counts in new_terms:
        presence.update(counts.keys())
    removed, letters = dict(state.removed), state.letters
    share = max(n, 1)
    for term in [t for t in presence if t in state.stop]:
        was = removed.get(term, 0)
        now = was + presence[term]
        if term not in settings.stop_words and now / share <= settings.stop_ratio:
            return None  # no longer a stop term
        if now and not was:
            letters.update(term)
        elif was and not now:
            letters.subtract(term)
        if now:
            removed[term] = now
        else:
            removed.pop(term, None)
    terms = state.terms.split("\n") if state.terms else []
    starts, numbers = state.starts, state.numbers
    moved = sorted(t for t in set().union(*old_terms, *new_terms) if t not in state.stop)
    ids = [bisect.bisect_left(terms, t) for t in moved]
    exists = [i < len(terms) and terms[i] == t for t, i in zip(moved, ids, strict=True)]
    old_df = [int(starts[i + 1] - starts[i]) if there else 0 for i, there in zip(ids, exists, strict=True)]
    new_df = [d + presence[t] for t, d in zip(moved, old_df, strict=True)]
    if any(d / share > settings.stop_ratio for d in new_df):
        return None  # a new stop term
    # the postings: those of the changed sections taken out, their new ones put in their places
    drop: list[int] = []
    put: list[tuple[int, str, int, int]] = []  # (where, term, section, count)
    chars_of: dict[str, int] = {}  # the moved terms' delta characters after the edit
    sections = np.array(changed, numbers.dtype)
    for t, i, there in zip(moved, ids, exists, strict=True):
        lo = int(starts[i])
        segment = numbers[lo:int(starts[i + 1])] if there else numbers[:0]
        places = (np.searchsorted(segment, sections) + lo).tolist()  # of all changed sections at once
        gone, come = [], []
        for j, k in enumerate(changed):
            at, was, now = places[j], t in old_terms[j], t in new_terms[j]
            if was:
                drop.append(at)
            if now:
                put.append((at, t, k, new_terms[j][t]))
            if was != now:
                (gone if was else come).append(k)
        chars_of[t] = _chars_after(segment, int(state.chars[i]) if there else 0, gone, come)
    put.sort()
    drop.sort()
    put_at = [p[0] for p in put]
    new_numbers = SplicedArray(numbers, drop, put_at, np.array([p[2] for p in put], numbers.dtype))
    new_counts = SplicedArray(state.counts, drop, put_at, np.array([p[3] for p in put], state.counts.dtype))
    # the terms: the moved ones taken out, those still found put back
    term_drop = [i for i, there in zip(ids, exists, strict=True) if there]
    back = [k for k, d in enumerate(new_df) if d > 0]
    back_at = [ids[k] for k in back]
    df = _spliced(np.diff(starts), term_drop, back_at, np.array([new_df[k] for k in back], np.int64))
    new_starts = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
    new_names = _spliced_list(terms, term_drop, back_at, [moved[k] for k in back])
    own_index = {term: i for i, term in enumerate(state.own)}
    files = [int(state.file_of[ids[k]]) if exists[k] else
             own_index.get(moved[k], len(state.own) + fnv1a(moved[k]) % state.shared) for k in back]
    file_of = _spliced(state.file_of, term_drop, back_at, np.array(files, state.file_of.dtype))
    with_rows = state.with_rows
    for t, was, now in zip(moved, old_df, new_df, strict=True):
        with_rows += ((now > 0) * (t in state.vocab or now >= SHARED_ROWS_MIN_SECTIONS)
                      - (was > 0) * (t in state.vocab or was >= SHARED_ROWS_MIN_SECTIONS))
        if now and not was:
            letters.update(t)
        elif was and not now:
            letters.subtract(t)
    # the characters of the moved terms' deltas, now at their new places
    new_chars = _spliced(state.chars, term_drop, back_at, np.array([chars_of[moved[k]] for k in back], np.int64))
    postings = Postings(new_names, new_starts, new_numbers, new_counts, length_classes(lengths, state.avgdl),
                        state.avgdl)
    assert len(new_numbers) == new_starts[-1] and len(new_chars) == len(new_names) == len(file_of)
    return EncodedPostings(postings, new_chars), _TermState(removed, +letters, with_rows, file_of)


def _chars_after(segment: np.ndarray, chars: int, gone: list[int], come: list[int]) -> int:
    """The characters of a term's varint deltas (EncodedPostings.chars) after the sections `gone` left its
    postings (`segment`, whose deltas took `chars`) and the sections `come` joined them: worked out from the
    numbers around them, not the whole list (the few hundred terms of an edit hold 100,000s of postings)."""
    if not gone and not come:
        return chars
    lo = int(np.searchsorted(segment, min(gone + come)))
    hi = int(np.searchsorted(segment, max(gone + come), side="right"))
    before = int(segment[lo - 1]) if lo > 0 else 0  # the deltas start from 0
    after = [int(segment[hi])] if hi < len(segment) else []
    window = segment[lo:hi].tolist()
    now = sorted(set(window).difference(gone).union(come))
    return chars - _delta_characters(before, window + after) + _delta_characters(before, now + after)


def _delta_characters(first: int, numbers: list[int]) -> int:
    """The characters of the varint deltas of `numbers` (ascending) from `first` (search.varints)."""
    total = 0
    for number in numbers:
        total += max(1, ((number - first).bit_length() + 4) // 5)
        first = number
    return total


def _spliced(values: np.ndarray, drop: list[int], put_at: list[int], put: np.ndarray) -> np.ndarray:
    """`values` without the items at `drop` (sorted), with put[j] before the item put_at[j] was at (sorted;
    several before one item in their order). Slices copied once."""
    return np.concatenate(_splice_pieces(values, drop, put_at, put)) if drop or put_at else values


def _spliced_list(values: list[str], drop: list[int], put_at: list[int], put: list[str]) -> list[str]:
    """_spliced of a list."""
    return list(chain.from_iterable(_splice_pieces(values, drop, put_at, put)))


def _splice_pieces(values: Any, drop: list[int], put_at: list[int], put: Any) -> list[Any]:
    """The slices of `values` and `put` that _spliced puts together, in order (search.splice_pieces)."""
    return [(put if from_put else values)[at:at + size] for from_put, at, size in
            splice_pieces(len(values), drop, put_at)] or [values[:0]]


def _term_files(file_of: np.ndarray, own: list[str], shared: int,
                facet_groups: list[dict[str, str]]) -> list[tuple[str, list[int], dict[str, str]]]:
    """plan.term_files: each file's terms in term order (its own files first, as search._plan_index lists them)."""
    order = np.argsort(file_of, kind="stable")
    ends = np.cumsum(np.bincount(file_of, minlength=len(own) + shared)).tolist()
    members = [order[a:b].tolist() for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    files = [(_term_path(k, own=True), members[k], {}) for k in range(len(own))]
    return files + [(_term_path(k), members[len(own) + k], facet_groups[k]) for k in range(shared)]
