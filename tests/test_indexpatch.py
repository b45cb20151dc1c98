"""indexpatch: the index plan after an edit within sections, made from the last plan, is plan_index's plan
exactly - or it is not made (None), and plan_index makes it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from reportsite import indexpatch, pipeline, search
from reportsite.cache import DiskStore
from reportsite.config import load_config
from reportsite.model import load_content
from reportsite.topics import load_topics
from tests.test_search import DictStore

SALT = b"code and settings"


def pieces_of(content: Path) -> list[search.SearchPiece]:
    data = pipeline.derive(load_content(content), load_topics(content), load_config(content, None))
    return [search.search_piece(r, data.topics.get(r.slug, {})) for r in data.reports]


def assert_same_plan(got: search.IndexPlan, expected: search.IndexPlan) -> None:
    for name in ("vocab", "stop", "charset", "own_index", "shared", "doc_sections", "term_files"):
        assert getattr(got, name) == getattr(expected, name), name
    assert got.postings.terms == expected.postings.terms
    assert got.postings.avgdl == expected.postings.avgdl
    for name in ("starts", "sections", "counts", "classes"):
        assert np.array_equal(getattr(got.postings, name), getattr(expected.postings, name)), name
    assert np.array_equal(got.encoded.chars, expected.encoded.chars)
    assert got.source is not None and got.settings == expected.settings


def with_text(piece: search.SearchPiece, number: int, text: str) -> search.SearchPiece:
    sections = list(piece.sections)
    sections[number] = (*sections[number][:3], text)
    return search.SearchPiece(sections, piece.row, piece.facets, piece.topics)


class Site:
    """The index input of some pieces, its plan and the state kept of it, edited piece by piece: each edit's
    plan is patched (when it can be) and planned afresh, and the two compared."""

    def __init__(self, pieces: list[search.SearchPiece], settings: search.SearchSettings):
        self.pieces, self.settings = list(pieces), settings
        self.store = DictStore()
        self.memo = search.IndexMemo(self.store, b"version")
        self.source = search.search_input_of(self.pieces)
        plan, basis = search.planned_index(self.source, settings, self.memo)
        self.state = self.kept(indexpatch.index_state(plan, basis, SALT))

    @staticmethod
    def kept(state: indexpatch.IndexState) -> indexpatch.IndexState:
        return pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))  # as the cache keeps it

    def edit(self, report: int, section: int, change) -> bool:
        """Replace a section's text by change(text); whether the plan was patched (it is plan_index's)."""
        text = self.pieces[report].sections[section][3]
        piece = with_text(self.pieces[report], section, change(text))
        assert search.piece_shape(piece) == search.piece_shape(self.pieces[report])
        self.pieces[report] = piece
        source = search.patched_input(self.source, {report: piece})
        patched = indexpatch.patched_plan(self.state, self.source, source, self.settings, SALT, [report],
                                          self.store)
        expected, basis = search.planned_index(source, self.settings, self.memo)
        self.source = source
        if patched is None:
            self.state = self.kept(indexpatch.index_state(expected, basis, SALT))
            return False
        assert_same_plan(patched[0], expected)
        self.state = self.kept(patched[1]())
        return True


@pytest.fixture()
def site(content_copy: Path, monkeypatch) -> Site:
    monkeypatch.setattr(search, "RANGE_SECTIONS", 8)  # ranges enough to tell phrases' sides (as at 10,000 reports)
    return Site(pieces_of(content_copy), search.load_search_settings(content_copy))


def first_section_with(site: Site, needle: str) -> tuple[int, int]:
    for r, piece in enumerate(site.pieces):
        for k, (_, _, _, text) in enumerate(piece.sections):
            if needle in text:
                return r, k
    raise AssertionError(needle)


def test_edits_within_sections_patch_the_plan_into_plan_index_s(site: Site) -> None:
    """Edits that keep the vocabulary, the stop terms and BM25's average length: the plan is patched, and it is
    the plan made afresh, field by field, edit after edit (each from the state the last one left)."""
    r, k = first_section_with(site, "加强")
    assert site.edit(r, k, lambda text: text.replace("加强", "强化", 1))  # the same length: only terms move
    r, k = first_section_with(site, "1157")
    # a figure: the term 1157 is gone from the index, 9157 comes in
    assert site.edit(r, k, lambda text: text.replace("1157", "9157"))
    assert "1157" not in site.state.terms.split("\n") and "9157" in site.state.terms.split("\n")
    r, k = first_section_with(site, "9157")
    assert site.edit(r, k, lambda text: text.replace("9157", "1157"))  # and back
    patched = 0
    for r, piece in enumerate(site.pieces[:3]):  # a sentence more: its words and phrases counted again
        k = max(range(len(piece.sections)), key=lambda k: len(piece.sections[k][3]))
        sentence = piece.sections[k][3].split("。")[0] + "。"
        patched += site.edit(r, k, lambda text, sentence=sentence: text + sentence)
    assert patched >= 2


def test_a_phrase_s_sides_are_told_after_an_edit_that_changes_them(site: Site) -> None:
    """A word before a phrase (进一步加强…): the phrases it stands beside get another side; a plan patched is
    still plan_index's, and the sides kept are those of the phrases counted afresh."""
    r, k = first_section_with(site, "加强")
    site.edit(r, k, lambda text: text.replace("加强", "进一步加强"))
    r2, k2 = first_section_with(site, "进一步加强")
    site.edit(r2, k2, lambda text: text.replace("进一步加强", "加强"))
    fresh = indexpatch.index_state(*search.planned_index(site.source, site.settings), SALT)
    for phrase, counted in fresh.phrases.items():
        if phrase in site.state.phrases and phrase not in site.state.unsure:
            assert site.state.phrases[phrase] == counted, phrase


def test_an_edit_that_changes_the_vocabulary_is_planned_afresh(site: Site) -> None:
    """A word no section had (every word is in the vocabulary of a site this small): not patched."""
    vocab_before = set(site.state.vocab)
    r, k = first_section_with(site, "加强")
    assert not site.edit(r, k, lambda text: text + "马克思主义哲学研究院组织专题研讨。")
    assert set(site.state.vocab) != vocab_before
    r, k = first_section_with(site, "加强")
    assert site.edit(r, k, lambda text: text.replace("加强", "强化", 1))  # the state made afresh patches again


def test_a_state_of_other_settings_or_too_many_sections_is_not_patched(site: Site, monkeypatch) -> None:
    source = search.patched_input(site.source, {})
    other = search.SearchSettings(**{**site.settings.__dict__, "k1": 1.5})
    assert indexpatch.patched_plan(site.state, site.source, source, other, b"other salt", [0]) is None
    r, k = first_section_with(site, "加强")
    piece = site.pieces[r]
    for number in range(len(piece.sections)):
        piece = with_text(piece, number, piece.sections[number][3] + "。")
    edited = search.patched_input(site.source, {r: piece})
    monkeypatch.setattr(indexpatch, "PATCH_MAX_SECTIONS", 1)
    assert indexpatch.patched_plan(site.state, site.source, edited, site.settings, SALT, [r], site.store) is None


def test_the_state_is_kept_with_the_input_and_read_back_for_the_next_edit(content_copy: Path, tmp_path: Path,
                                                                            monkeypatch) -> None:
    """pipeline.planned: without a state kept, plan_index's plan and a state; with the state of the whole input
    kept (in the cache, as the child keeps it), the plan of an edit patched from it, plan_index's again; and
    after that edit was kept as an edit (the state not written again), the plan of the next edit patched from
    the same state with both edits."""
    monkeypatch.setattr(search, "RANGE_SECTIONS", 8)
    disk, store = DiskStore(tmp_path / "cache"), b"site folder key."
    pieces = pieces_of(content_copy)
    settings = search.load_search_settings(content_copy)
    shapes: list[bytes] = []
    source = search.search_input_of(pieces, shapes)
    keys = pipeline.IndexInputKeys([bytes([i]) * 16 for i in range(len(pieces))], shapes,
                                   [f"{i}.md" for i in range(len(pieces))])
    memo = search.IndexMemo(disk, b"version")
    plan, state, patched = pipeline.planned(disk, store, None, source, settings, memo, ())
    assert not patched
    pipeline._keep_input(disk, store, b"version", keys, source, state)
    last = pipeline.last_index_input(disk, store, b"version")
    assert last is not None and pipeline.kept_state(disk, store, last) is not None

    r, k = next((r, k) for r, piece in enumerate(pieces) for k, section in enumerate(piece.sections)
                if "加强" in section[3])
    piece = with_text(pieces[r], k, pieces[r].sections[k][3].replace("加强", "强化", 1))
    edited = search.patched_input(last.source, {r: piece})
    called: list[bool] = []

    def counted(*args):
        found = indexpatch.patched_plan(*args)
        called.append(found is not None)
        return found

    monkeypatch.setattr(pipeline, "patched_plan", counted)
    plan, _, patched = pipeline.planned(disk, store, last, edited, settings, memo, (r,))
    assert called == [True] and patched
    assert_same_plan(plan, search.plan_index(edited, settings))
    # the edit kept as an edit, beside the whole input: the next edit is patched from the same state
    head = pipeline.IndexInputKeys([b"e" * 16, *keys.keys[1:]], shapes, keys.paths)
    pipeline._keep_edits(disk, store, b"version", pipeline.KeptEdits(last.base, head, {r: piece}))
    since = pipeline.last_index_input(disk, store, b"version")
    assert since is not None and since.edits == {r: piece}
    assert since.original.texts == last.source.texts != since.source.texts
    q, j = next((q, j) for q, other in enumerate(pieces) for j, section in enumerate(other.sections)
                if q != r and "推进" in section[3])
    other = with_text(pieces[q], j, pieces[q].sections[j][3].replace("推进", "推动", 1))
    both = search.patched_input(since.source, {q: other})
    plan, _, patched = pipeline.planned(disk, store, since, both, settings, memo, (q,))
    assert called == [True, True] and patched
    assert_same_plan(plan, search.plan_index(both, settings))
    other_keys = pipeline.IndexInputKeys([b"x" * 16] * len(pieces), shapes, keys.paths)
    assert pipeline.kept_state(disk, store, pipeline.LastIndexInput(other_keys, last.source)) is None
    path = next((tmp_path / "cache" / pipeline.STATE).glob("*.state"))
    os.truncate(path, path.stat().st_size - 10)  # its arrays cut short: not taken
    assert pipeline.kept_state(disk, store, last) is None


MAKE_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "make_corpus.py"


@pytest.mark.skipif(not MAKE_CORPUS.exists(), reason="../shared/bench/make_corpus.py is not there")
def test_edits_of_a_synthetic_corpus_patch_the_plan_into_plan_index_s(tmp_path: Path, monkeypatch) -> None:
    """300 reports recombined from the samples (many phrases, each beside many words): edits of every kind -
    a sentence twice, a word replaced, a new sentence, a rare figure, half a section cut - are mostly patched,
    each into plan_index's plan; the phrases' sides kept are those counted afresh."""
    import random
    import shutil
    import subprocess
    import sys

    from tests.conftest import CONTENT_DIR, RAW_DIR

    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    shutil.rmtree(content / "reports")
    subprocess.run([sys.executable, str(MAKE_CORPUS), "--seeds", str(RAW_DIR), "--out", str(content / "reports"),
                    "--n", "300", "--format", "md"], check=True, capture_output=True)
    monkeypatch.setattr(search, "RANGE_SECTIONS", 64)  # ranges enough to tell phrases' sides (as at 10,000 reports)
    site = Site(pieces_of(content), search.load_search_settings(content))
    rnd = random.Random(3)

    def edited(kind: str):
        def change(text: str) -> str:
            first = text.split("。")[0] + "。"
            return {"twice": first + text, "word": text.replace("加强", "强化", 1),
                    "sentence": text + "新增加一句话：城事通平台网办率达到百分之九十九点九。",
                    "figure": text + f"稀有词{rnd.randrange(10 ** 6)}号", "cut": text[: len(text) // 2]}[kind]
        return change

    patched = 0
    for kind in ["twice", "word", "sentence", "figure", "cut"] * 2:
        r = rnd.randrange(len(site.pieces))
        k = max(range(len(site.pieces[r].sections)), key=lambda k: len(site.pieces[r].sections[k][3]))
        patched += site.edit(r, k, edited(kind))
    assert patched >= 7
    fresh = indexpatch.index_state(*search.planned_index(site.source, site.settings), SALT)
    for phrase, counted in fresh.phrases.items():
        if phrase in site.state.phrases and phrase not in site.state.unsure:
            assert site.state.phrases[phrase] == counted, phrase


def test_a_term_s_delta_characters_after_an_edit_are_those_of_its_new_postings() -> None:
    """_chars_after works out a term's varint characters from the numbers around the sections that left or
    joined its postings: the same as encoding the whole new list, for lists and edits of every shape (empty,
    at either end, next to each other, far apart, deltas of 1 to 6 characters)."""
    rng = np.random.default_rng(7)

    def characters(numbers: list[int]) -> int:
        return int(search._varint_sizes(np.diff(np.array(numbers, np.int64), prepend=0)).sum()) if numbers else 0

    for _ in range(400):
        universe = np.unique(rng.integers(0, 1 << int(rng.integers(3, 30)), int(rng.integers(1, 60))))
        held = universe[rng.random(len(universe)) < 0.5]
        changed = rng.choice(universe, min(len(universe), int(rng.integers(1, 6))), replace=False).tolist()
        gone = [k for k in changed if k in set(held.tolist()) and rng.random() < 0.7]
        come = [k for k in changed if k not in set(held.tolist()) and rng.random() < 0.7]
        after = sorted(set(held.tolist()).difference(gone).union(come))
        segment = held.astype(np.int32)
        assert indexpatch._chars_after(segment, characters(held.tolist()), gone, come) == characters(after)
