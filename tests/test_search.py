"""The search index (reportsite/search.py) on the five real samples, and its agreement with the browser's
query cutting (theme/search-worker.js, run for real in Chromium)."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reportsite import search
from reportsite.cache import StoredText
from reportsite.errors import ReportsiteError
from reportsite.model import load_content
from reportsite.pipeline import BuildOptions, build
from reportsite.render import OutputFile
from tests.conftest import CHROMIUM, CONTENT_DIR, ROOT, serve_directory

QUERIES = ["行政复议", "复议", "法律明白人", "城事通", "网办率", "12345热线", "2023年", "“放管服”", "放管服改革",
           "行政复议 案件数", "合法性审查", "１２３４５热线", "行政復議", "重大行政决策程序", "公共法律服务体系建设",
           "\"行政执法 三项制度\"", "constructor __proto__", "普法宣传教育", "营商环境", "依法治区", "一网通办",
           "人民调解委员会", "双随机一公开", "\"行政复议 案件\"", "规范性文件 备案审查", "明白人法律"]


def index_dir(site: Path) -> Path:
    return site / "search" / "idx"


def load_manifest(site: Path) -> dict:
    return json.loads((index_dir(site) / "manifest.json").read_text(encoding="utf-8"))


def term_file(site: Path, name: str) -> dict:
    return json.loads((index_dir(site) / "t" / f"{name}.json").read_text(encoding="utf-8"))


def decode(deltas: str, counts: str) -> tuple[list[int], list[int]]:
    """Section numbers (varint deltas in search.DIGITS) and counts of one term, decoded as the worker does."""
    numbers, pos, last = [], 0, 0
    for _ in counts:
        value, shift = 0, 0
        while True:
            digit = search.DIGITS.index(deltas[pos])
            pos += 1
            value |= (digit & 31) << shift
            shift += 5
            if digit < 32:
                break
        last += value
        numbers.append(last)
    assert pos == len(deltas)
    return numbers, [search.DIGITS.index(ch) + 1 for ch in counts]


def impacts_of(manifest: dict, numbers: list[int], counts: list[int]) -> list[int]:
    """The impacts of postings, looked up as the worker does: in the manifest's table, by count and the
    section's length class."""
    per_count, table, classes = manifest["lengthClasses"], manifest["impacts"], manifest["classes"]
    return [search.DIGITS.index(table[(count - 1) * per_count + search.DIGITS.index(classes[n])]) + 1
            for n, count in zip(numbers, counts, strict=True)]


def file_of(manifest: dict, term: str) -> str:
    own = manifest["ownFiles"]
    return f"b{own[term]}" if term in own else str(search.fnv1a(term) % manifest["termShards"])


def postings_of(site: Path, term: str) -> list[int]:
    """Section numbers of a term, read the way the browser reads them (shard by FNV-1a of the term)."""
    header = term_file(site, file_of(load_manifest(site), term))
    if term not in header["t"]:
        return []
    _idf, deltas, impacts = header["t"][term]
    return decode(deltas, impacts)[0]


def section_rows(site: Path) -> list[tuple[str, str, str]]:
    """(report page, section id, text) for every section number, from the text shards."""
    rows = []
    for path in sorted((index_dir(site) / "d").glob("*.json"), key=lambda p: int(p.stem)):
        shard = json.loads(path.read_text(encoding="utf-8"))
        rows += [(shard["r"][r][0], anchor, text) for r, anchor, _path, _title, text in shard["s"]]
    return rows


def test_normalise_and_runs_fold_width_case_and_punctuation():
    assert search.normalise("ＡＢＣ１２３４５热线") == "abc12345热线"
    cut = [r for r, _ in search.runs("“放管服”改革，12345热线。2023年")]
    assert cut == ["放管服", "改革", "12345", "热线", "2023", "年"]


def test_fnv1a_matches_reference_values():
    # Published FNV-1a 32-bit test vectors; the worker's hash must give the same (checked in Chromium below).
    assert search.fnv1a("") == 0x811C9DC5
    assert search.fnv1a("a") == 0xE40C292C
    assert search.fnv1a("foobar") == 0xBF9CF968


def test_index_covers_every_section_and_stays_within_file_budget(built_site: Path):
    manifest = load_manifest(built_site)
    reports = load_content(CONTENT_DIR).reports
    assert manifest["sections"] == sum(len(r.sections) for r in reports)
    assert len(section_rows(built_site)) == manifest["sections"]
    files = [p for p in index_dir(built_site).rglob("*") if p.is_file()]
    docs = -(-manifest["sections"] // manifest["docSections"])
    assert len(files) == 1 + len(manifest["ownFiles"]) + manifest["termShards"] + docs
    assert len(files) <= search.load_search_settings(CONTENT_DIR).max_files


def test_bigram_layer_finds_part_words_in_all_reports(built_site: Path):
    rows = section_rows(built_site)
    for term in ("复议", "行政复议"):
        found = {rows[n][0] for n in postings_of(built_site, term)}
        expected = {page for page, _, text in rows if term in text}
        assert found >= expected and len(expected) == 5


def test_search_mode_words_and_facets_are_in_the_index(built_site: Path):
    manifest = load_manifest(built_site)
    vocab = search.front_decoded(manifest["vocab"])
    assert vocab == sorted(vocab) and search.front_decoded(search.front_coded(vocab)) == vocab
    assert "城事通" in vocab and "法律明白人" in vocab and "法律明白人" not in manifest["stop"]
    assert postings_of(built_site, "城事通")
    for year in ("2020", "2023", "2024"):
        header = term_file(built_site, file_of(manifest, f"@y:{year}"))
        assert header["f"][f"@y:{year}"]
    assert manifest["t2s"] and len(manifest["t2s"]) % 2 == 0


def test_a_term_across_punctuation_is_found_where_its_pattern_finds_it() -> None:
    """gapped_spans, which places a snippet's window for a term that stands only across punctuation (“八五”普法),
    finds the places the term's pattern (_gapped) matches: on random texts of a few characters, punctuation,
    spaces, letters and _."""
    rnd = random.Random(5)
    alphabet = "法治政府建设_ ，。、“”（）-…a1\u3000!\n"
    for _ in range(5000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 30)))
        term = "".join(rnd.choice("法治政府建设") for _ in range(rnd.randrange(2, 5)))
        expected = [(m.start(1), m.end(1)) for m in search._gapped(term).finditer(text)]
        assert search.gapped_spans(text, term) == expected, (text, term)
    assert search.gapped_spans("“八五”普法", "五普") == [(2, 5)]


def test_snippet_rows_are_a_terms_best_sections_with_a_window_of_their_text(built_site: Path):
    """A term file carries, for its common terms, the sections a one-word query shows first, each with
    a window of the section's own text where the term stands (so the worker needs no text file for them)."""
    manifest = load_manifest(built_site)
    rows = section_rows(built_site)
    checked = 0
    names = [f"b{i}" for i in range(len(manifest["ownFiles"]))] + [str(i) for i in range(manifest["termShards"])]
    for name in names:
        header = term_file(built_site, name)
        for term, snippet_rows in header["s"].items():
            _idf, deltas, count_text = header["t"][term]
            numbers, counts = decode(deltas, count_text)
            impacts = impacts_of(manifest, numbers, counts)
            count = len(numbers)
            best = sorted(zip(numbers, impacts, strict=True), key=lambda p: (-p[1], p[0]))
            assert [r[0] for r in snippet_rows] == [n for n, _ in best[:len(snippet_rows)]]
            assert len(snippet_rows) >= min(count, search.FIRST_RESULTS)
            for n, report, anchor, _path, _title, start, window, length in snippet_rows:
                page, section_id, text = rows[n]
                assert header["r"][report][0] == page and anchor == section_id and length == len(text)
                assert text[start:start + len(window)] == window
                in_text = term in search.normalise(text)
                assert not in_text or term in search.normalise(window), (term, n)
                checked += 1
    assert checked > 100


def test_pairs_across_a_gap_are_joined_exactly_when_joinable_says_so():
    gaps = ["”“", "、", "·", "……", "）（", "_", "-", "——", "，“", " ", "a", "1", "é", "，、。；", "\n"]
    for gap in gaps:
        _runs, joins, _size = search.cut_text("甲乙" + gap + "丙丁")
        normalised = search.normalise(gap)
        pairs = tuple(j for j in joins if search.CHAIN_MARK not in j)
        chains = [j for j in joins if search.CHAIN_MARK in j]
        assert (pairs == ("乙丙",)) == search.joinable(normalised), gap
        # a chain (vocabulary words across the gap) only where the gap does not end a clause
        assert chains == (["甲乙|丙丁"] if pairs and not set("，。；,.;") & set(gap) else []), gap
    assert search.cut_text("八五普法：“八五”普法")[1] == ("法八", "五普", "八五|普法")


# What cut_text finds, as the patterns that define it: its runs; a Han character, a gap that joinable()
# accepts and (not consumed) the Han character after it; chains of Han runs apart by such gaps that end no
# clause. cut_text reads all three from one split, which is quicker; they must agree.
HAN = "\u3400-\u4dbf\u4e00-\u9fff"
RUN = re.compile(f"[{HAN}]+|[0-9a-z]+")
JOIN = re.compile(f"([{HAN}])(?:[^\\w\\s]|_){{1,{search.MAX_GAP}}}(?=([{HAN}]))")
CHAIN = re.compile(f"(?<![{HAN}])[{HAN}]++(?:(?:[^\\w\\s,.;:!?。]|_){{1,{search.MAX_GAP}}}+[{HAN}]++)+")


def cut_by_patterns(text: str) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    norm = search.normalise(text)
    found = tuple(RUN.findall(norm))
    joins = tuple(a + b for a, b in JOIN.findall(norm))
    joins += tuple(search.CHAIN_MARK.join(RUN.findall(chain)) for chain in CHAIN.findall(norm))
    return found, joins, sum(map(len, found))


def test_cut_text_agrees_with_the_patterns_that_define_it():
    texts = [t for r in load_content(CONTENT_DIR).reports for s in r.sections for t in (s.title, s.text)]
    rng = random.Random(7)  # and text made of what the gaps are made of, in every order
    alphabet = list("法治政府、，。；：！？“”（）《》·—…_- \tabXY12３４é〇𠀀.,;:!?")
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(50_000)]
    mismatched = [t for t in texts if search.cut_text(t) != cut_by_patterns(t)]
    assert not mismatched, mismatched[:3]
    compared = [join for t in texts for join in cut_by_patterns(t)[1]]
    chains = sum(1 for join in compared if search.CHAIN_MARK in join)
    assert chains > 1000 and len(compared) - chains > 1000  # many pairs and chains were compared


def test_index_files_are_compact_json_as_json_dumps_writes_it(built_site: Path) -> None:
    """_json (orjson) writes the bytes json.dumps(ensure_ascii=False, compact) does: the samples' index files
    read back and written again, and strings of every kind of character."""
    def dumped(value: object) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    files = sorted((built_site / "search" / "idx").rglob("*.json"))
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        assert search._json(json.loads(data)) == dumped(json.loads(data)) == data, path
    odd = {"t": ["\x00\x1f\x7f\u0085\u2028\u2029", '"\\/\t\n\r\b\f', "😀“八五”普法", "", -1, 2 ** 40],
           "7": {"行政复议": [0, [1, "x"]]}, "n": None, "b": [True, False]}
    assert search._json(odd) == dumped(odd)


def test_varints_round_trip():
    import numpy as np

    values = np.array([0, 1, 31, 32, 300, 1023, 1024, 2**20 + 5, 2**25 + 7], np.int64)
    chars, sizes = search.varints(values)
    assert sizes.tolist() == [1, 1, 1, 2, 2, 2, 3, 5, 6]
    numbers, _ = decode(chars.tobytes().decode("ascii"), "A" * len(values))
    assert [b - a for a, b in zip([0, *numbers], numbers, strict=False)] == values.tolist()
    assert not set(search.DIGITS) & set('"\\') and len(set(search.DIGITS)) == 64  # nothing JSON escapes


PARALLEL_CHECK = """
import sys
from reportsite import search
from reportsite.config import load_config
from reportsite.model import load_content
from reportsite.pipeline import derive
from reportsite.topics import load_topics
from pathlib import Path

content = Path(sys.argv[1])
data = derive(load_content(content), load_topics(content), load_config(content, None))
settings = search.load_search_settings(content)
serial = search.build_search_files(data, settings)
search.PARALLEL_MIN_SECTIONS = 0
search.RANGE_SECTIONS = 16  # ranges enough for both workers
assert search.pool_size(1, 0) >= 2, "no pool in a fresh process"
parallel = search.build_search_files(data, settings)
print("same" if [(f.path, f.data) for f in parallel] == [(f.path, f.data) for f in serial] else "different")
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: the index is always built in one process")
def test_a_spliced_array_reads_as_the_array_spliced() -> None:
    """SplicedArray (the postings after an edit) is the array with items dropped and others put in: whole,
    sliced and gathered by runs (a file's terms' postings), on random splices of a small array."""
    import numpy as np

    rnd = random.Random(7)
    for _ in range(2000):
        n = rnd.randrange(0, 30)
        values = np.arange(n, dtype=np.int32) * 10
        drop = sorted(rnd.sample(range(n), rnd.randrange(0, n + 1)))
        put_at = sorted(rnd.randrange(0, n + 1) for _ in range(rnd.randrange(0, 6)))
        put = np.arange(len(put_at)) + 1000
        spliced = []  # by hand: each put before the item it was put at, then that item unless dropped
        for i in range(n + 1):
            spliced += [int(put[j]) for j, at in enumerate(put_at) if at == i]
            if i < n and i not in drop:
                spliced.append(int(values[i]))
        array = search.SplicedArray(values, drop, put_at, put)
        assert len(array) == len(spliced) and np.asarray(array).tolist() == spliced
        assert np.asarray(array).dtype == values.dtype
        lo, hi = sorted(rnd.randrange(0, len(spliced) + 1) for _ in range(2))
        assert array[lo:hi].tolist() == spliced[lo:hi]
        cuts = sorted(rnd.randrange(0, len(spliced) + 1) for _ in range(2 * rnd.randrange(0, 5)))
        starts, counts = np.array(cuts[0::2], np.int64), np.diff(cuts)[0::2].astype(np.int64)
        expected = [v for a, c in zip(starts.tolist(), counts.tolist(), strict=True) for v in spliced[a:a + c]]
        assert search.gathered(array, starts, counts).tolist() == expected
        assert search.gathered(np.array(spliced, np.int32), starts, counts).tolist() == expected


def test_index_is_the_same_bytes_built_in_worker_processes():
    """Forked workers count the terms of big sites, range by range; the files must not depend on how the work
    was split. Run in a fresh process: this one may have other threads, and then never forks."""
    result = subprocess.run([sys.executable, "-c", PARALLEL_CHECK, str(CONTENT_DIR)], capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "same"


class DictStore:
    """search.MemoStore in memory, each value pickled as the build cache's disk store does; counts its puts."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, bytes], bytes] = {}
        self.puts: list[str] = []

    def get(self, kind: str, key: bytes):
        found = self.values.get((kind, key))
        return None if found is None else pickle.loads(found)

    def put(self, kind: str, key: bytes, value) -> None:
        self.puts.append(kind)
        self.values[(kind, key)] = pickle.dumps(value)

    def prune(self, kind: str, keep: set[bytes]) -> int:
        gone = [k for k in self.values if k[0] == kind and k[1] not in keep]
        for k in gone:
            del self.values[k]
        return len(gone)


def index_of(content: Path, memo: search.IndexMemo | None = None, keep_keys: bool = False) -> list[tuple]:
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    data = derive(load_content(content), load_topics(content), load_config(content, None))
    made = search.index_files(search.search_input(data), search.load_search_settings(content), lambda f: f, memo)
    return [(f.path, f.data, f.key) if keep_keys else (f.path, f.data) for f in made]


def test_an_edit_counts_again_only_the_ranges_it_changed(content_copy: Path, monkeypatch):
    """The index is counted range by range and each range's counts are kept (IndexMemo) under its texts: after
    an edit of one section only that section's range is counted again, and the files are the bytes of an
    index counted afresh. Other settings or another code version find nothing kept."""
    monkeypatch.setattr(search, "RANGE_SECTIONS", 8)
    store = DictStore()
    memo = search.IndexMemo(store, b"version 1")
    first = index_of(content_copy, memo)
    ranges = store.puts.count(search.WORDS)
    assert ranges > 5 and store.puts.count(search.COUNTS) == ranges
    assert first == index_of(content_copy)

    report = sorted((content_copy / "reports").glob("*.md"))[2]
    text = report.read_text(encoding="utf-8")
    end = text.index("。", text.index("\n## ")) + 1
    start = max(text.rindex("\n", 0, end), text.rindex("。", 0, end - 1)) + 1
    report.write_text(text[:end] + text[start:end] + text[end:], encoding="utf-8")  # a sentence, twice: no new word
    store.puts.clear()
    edited = index_of(content_copy, memo)
    assert edited == index_of(content_copy)
    assert edited != first
    assert 1 <= store.puts.count(search.WORDS) <= 2  # where the section was, and where it went
    assert store.puts.count(search.COUNTS) == store.puts.count(search.WORDS)  # the vocabulary stayed
    assert len([k for k in store.values if k[0] == search.WORDS]) == ranges  # the old versions are gone

    store.puts.clear()
    assert index_of(content_copy, search.IndexMemo(store, b"version 2")) == edited
    assert store.puts.count(search.WORDS) == ranges


def pieces_of(content: Path) -> list[search.SearchPiece]:
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    data = derive(load_content(content), load_topics(content), load_config(content, None))
    return [search.search_piece(r, data.topics.get(r.slug, {})) for r in data.reports]


def as_plain(source: search.SearchInput) -> tuple:
    return (list(source.sections), source.texts.joined, source.texts.bounds.tolist(), list(source.report_rows),
            {key: list(numbers) for key, numbers in source.facets.items()})


def test_an_edit_within_sections_changes_the_index_input_by_replacing_texts(content_copy: Path):
    """A rebuild's index input is the last one with the edited reports' texts replaced (patched_input), when
    their pieces keep their shape: exactly the input made afresh of all pieces. A changed heading changes the
    shape (sections may move); a text twice as long does not."""
    pieces = pieces_of(content_copy)
    before = search.search_input_of(pieces)
    columns, joined = search.input_columns(before)
    kept = search.input_of_columns(pickle.loads(pickle.dumps(columns)), joined)
    assert as_plain(kept) == as_plain(before)
    # equal anchors, heading paths and places are one object each, written once by pickle
    anchors = kept.sections.anchors
    assert len(set(map(id, anchors))) == len(set(anchors)) < len(anchors)
    assert len({id(place) for place in kept.report_rows.columns[4]}) == len(set(kept.report_rows.columns[4]))
    # kept as columns, its sections are made when asked for, and stand for the list they were
    listed = list(before.sections)
    assert isinstance(kept.sections, search.SectionColumns) and list(kept.sections) == listed
    assert kept.sections[-1] == listed[-1] and kept.sections[5:9] == listed[5:9] and kept.sections[::7] == listed[::7]
    assert pickle.loads(pickle.dumps(kept.sections)) == listed and kept.sections != listed[1:]
    ends = {listed[0].report, listed[-1].report}
    assert search.sections_of_reports(kept.sections, ends) == search.sections_of_reports(listed, ends) != []
    assert search.input_columns(kept) == (columns, joined)
    # kept as stored, its texts are decoded a section at a time; cut short, or with a character beyond the
    # Basic Multilingual Plane (two code units), they are decoded whole (and checked)
    stored = search.input_of_columns(columns, StoredText(joined.encode("utf-16-le", "surrogatepass")))
    assert isinstance(stored.texts, search._StoredTexts) and as_plain(stored) == as_plain(before)
    assert [stored.texts.body(k) for k in range(9)] == [before.texts.body(k) for k in range(9)]
    assert search.input_columns(stored) == (columns, joined)
    with pytest.raises(ValueError):
        search.input_of_columns(columns, StoredText(joined.encode("utf-16-le")[:-2]))
    wide = [search.SearchPiece([(*pieces[0].sections[0][:3], pieces[0].sections[0][3] + "😀"),
                                *pieces[0].sections[1:]], pieces[0].row, pieces[0].facets, pieces[0].topics),
            *pieces[1:]]
    wide_columns, wide_joined = search.input_columns(search.search_input_of(wide))
    wide_stored = search.input_of_columns(wide_columns, StoredText(wide_joined.encode("utf-16-le")))
    assert not isinstance(wide_stored.texts, search._StoredTexts) and wide_stored.texts.joined == wide_joined
    # and so are the reports' rows
    rows = list(before.report_rows)
    assert isinstance(kept.report_rows, search.RowColumns) and kept.report_rows == rows and len(rows) > 3
    assert kept.report_rows[3] == rows[3] and kept.report_rows[1:3] == rows[1:3]
    assert pickle.loads(pickle.dumps(kept.report_rows)) == rows

    report = sorted((content_copy / "reports").glob("*.md"))[2]
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    report.write_text(text[:at] + "进一步" + text[at:], encoding="utf-8")  # a word more, in a section's text
    edited = pieces_of(content_copy)
    changed = {i: piece for i, piece in enumerate(edited) if piece != pieces[i]}
    assert len(changed) == 1
    (i, piece), = changed.items()
    assert search.piece_shape(piece) == search.piece_shape(pieces[i])
    patched = search.patched_input(before, changed)
    assert as_plain(patched) == as_plain(search.search_input_of(edited)) != as_plain(before)
    assert patched.sections is before.sections  # the same sections, only texts replaced
    assert as_plain(search.patched_input(kept, changed)) == as_plain(patched)
    # the texts are the last ones with some bodies replaced, read one by one without joining all again
    texts, fresh = search.patched_input(before, changed).texts, search.search_input_of(edited).texts
    numbers = range(len(fresh))
    assert [texts.body(k) for k in numbers] == [fresh.body(k) for k in numbers]
    assert [texts.heading(k) for k in numbers] == [fresh.heading(k) for k in numbers]
    assert "_whole" not in vars(texts)  # nothing joined
    differing = texts.differing()
    assert differing == {k for k in numbers if fresh.body(k) != before.texts.body(k)} and len(differing) == 1
    assert texts.unpatched is before.texts and texts.of_sections(sorted(differing)) == fresh.of_sections(differing)
    again = texts.with_bodies({0: "另一段正文。"})  # replaced over the same base, not over the replaced
    assert again.unpatched is before.texts and again.differing() == differing | {0}
    assert again == search._Texts.of([(fresh.heading(k), "另一段正文。" if k == 0 else fresh.body(k)) for k in numbers])

    heading = text.index("\n## ") + 4
    report.write_text(text[:heading] + "新" + text[heading:], encoding="utf-8")
    assert search.piece_shape(pieces_of(content_copy)[i]) != search.piece_shape(pieces[i])
    old = pieces[i].sections
    longer = search.SearchPiece([*old[:3], (*old[3][:3], old[3][3] * 2), *old[4:]], pieces[i].row,
                                pieces[i].facets, pieces[i].topics)
    assert search.piece_shape(longer) == search.piece_shape(pieces[i])
    assert as_plain(search.patched_input(before, {i: longer})) == \
        as_plain(search.search_input_of([*pieces[:i], longer, *pieces[i + 1:]]))


def test_gzip_ratios_are_worked_out_once_per_sample() -> None:
    """The ratios that divide the file budget (_divided) come from each sample's gzipped size, kept by a digest
    of the sample (PlanBasis, IndexState): a sample seen before is not compressed again, an edited one is."""
    import gzip

    sizes: dict[bytes, float] = {}
    samples = [("行政复议案件" * 400).encode(), bytes(range(256)) * 40]
    ratio = search._gzip_ratio(samples, sizes)
    packed = [len(gzip.compress(sample, search.GZIP_LEVEL)) for sample in samples]
    assert ratio == sum(map(len, samples)) / sum(packed) and sorted(sizes.values()) == sorted(packed)
    first = next(iter(sizes))
    sizes[first] = 1.0  # a size kept is used as it is
    assert search._gzip_ratio(samples, sizes) != ratio and search._gzip_ratio(samples, {}) == ratio
    edited = [samples[0] + "。".encode(), samples[1]]
    search._gzip_ratio(edited, sizes)
    assert len(sizes) == 3 and sizes[first] == 1.0


def test_an_edit_makes_again_only_the_index_files_it_changed(content_copy: Path):
    """Each index file has a key that digests all it is made of; a file whose key is the last build's is taken
    over (IndexMemo.keep), the others are made. After an edit most files are taken over, and the index is
    the bytes of one made afresh; another code version takes over nothing."""
    last: dict[str, tuple[bytes, bytes]] = {}  # the last site: path -> (key, bytes)
    kept: list[str] = []

    def keep(path: str, key: bytes):
        if path in last and last[path][0] == key:
            kept.append(path)
            return OutputFile(path, last[path][1], key)
        return None

    def index(version: bytes) -> list[tuple[str, bytes]]:
        made = index_of(content_copy, search.IndexMemo(DictStore(), version, keep), keep_keys=True)
        last.clear()
        last.update((path, (key, data)) for path, data, key in made)
        return [(path, data) for path, data, _ in made]

    first = index(b"version 1")
    assert kept == [] and len(first) > 20
    report = sorted((content_copy / "reports").glob("*.md"))[2]
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    report.write_text(text[:at] + "强化" + text[at + 2:], encoding="utf-8")  # no length changes: nor do other BM25s
    edited = index(b"version 1")
    assert edited == index_of(content_copy) != first
    changed = {path for (path, data), (_, before) in zip(edited, first, strict=True) if data != before}
    unchanged = {path for path, _ in edited} - changed - {search.INDEX_DIR + "manifest.json"}
    # never a changed file; a file some of whose snippet texts changed out of sight is made again
    assert changed and set(kept) <= unchanged and len(kept) > 0.9 * len(unchanged), (len(kept), len(unchanged))
    end = text.index("。", at) + 1
    report.write_text(text[:end] + text[at:end] + text[end:], encoding="utf-8")  # longer: every BM25 changes
    assert index(b"version 1") == index_of(content_copy)
    kept.clear()
    assert index(b"version 2") == index_of(content_copy) and kept == []


def test_the_rows_check_agrees_with_ranking_every_posting(monkeypatch):
    """changed_terms takes a term whose counts an edit left as they were only when its snippet rows show an
    edited section, ranked with the sections' length classes as now or as before: the quick check (a few
    first postings of all terms at once, then the whole list of those not ruled out) against ranking all."""
    import numpy as np

    monkeypatch.setattr(search, "SHOWN_SAMPLE", 6)  # both ways taken: ruled out early, and looked at whole
    table = search.impact_table(search.SearchSettings())
    rng = np.random.default_rng(7)
    seen = {True: 0, False: 0}
    early = 0
    for _ in range(300):
        count = int(rng.integers(3, 200))
        classes = rng.integers(20, 44, count).astype(np.uint8)
        lists = [np.sort(rng.choice(count, int(rng.integers(1, count + 1)), replace=False)) for _ in range(6)]
        starts = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
        counts = rng.integers(1, 4, int(starts[-1])).astype(np.uint8)
        postings = search.Postings([f"t{k}" for k in range(6)], starts, np.concatenate(lists).astype(np.int32), counts,
                                   classes)
        edited = np.sort(rng.choice(count, int(rng.integers(1, min(count, 3) + 1)), replace=False)).astype(np.int64)
        moved = classes[edited].astype(np.int64) + rng.integers(-2, 3, len(edited))
        old_classes = np.clip(moved, 0, 63).astype(np.uint8)
        wanted = rng.integers(1, 8, 6)
        bars = []
        for k in range(6):
            held = [(j, int(counts[starts[k] + np.searchsorted(lists[k], e)]))
                    for j, e in enumerate(edited.tolist()) if e in set(lists[k].tolist())]
            bars.append(max([max(table[c - 1, classes[edited[j]]], table[c - 1, old_classes[j]]) for j, c in held],
                            default=0))
        maybe = search._unless_outranked(postings, np.arange(6), wanted, np.array(bars), edited, table)
        for k in range(6):
            numbers, term_counts = lists[k], counts[starts[k]:starts[k + 1]]
            now = table[term_counts.astype(np.intp) - 1, classes[numbers]]
            was_classes = classes.copy()
            was_classes[edited] = old_classes
            was = table[term_counts.astype(np.intp) - 1, was_classes[numbers]]
            shown = any(np.isin(numbers[np.lexsort((numbers, -impacts.astype(np.int16)))[:wanted[k]]], edited).any()
                        for impacts in (now, was))
            quick = k in maybe and search._shows_any(postings, k, int(wanted[k]), edited, old_classes, table)
            assert quick == shown, (k, numbers, term_counts, edited)
            seen[shown] += 1
            early += k not in maybe
    assert min(seen.values()) > 100 and 100 < early < seen[False]  # some ruled out early, some on their whole list


def test_an_edit_s_known_change_keeps_files_and_entries_the_last_build_made(content_copy: Path, monkeypatch):
    """With the change an edit made since the site's index (IndexChange), a file holding none of its terms
    and texts is kept as it is, and a file holding some is made with the other terms' entries taken from the
    file as the last build made it (memo.read): the index is the bytes of one made afresh, with fewer snippet
    windows worked out."""
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    settings = search.load_search_settings(content_copy)

    def planned() -> search.IndexPlan:
        data = derive(load_content(content_copy), load_topics(content_copy), load_config(content_copy, None))
        return search.plan_index(search.search_input(data), settings)

    salt = search.IndexMemo(DictStore(), b"v").salt(settings)
    before = planned()
    made_keys = search.IndexMemo(DictStore(), b"v", lambda path, key: None)  # keys worked out, nothing kept
    last = {f.path: f for f in search.write_index(before, lambda f: f, made_keys)}
    report = sorted((content_copy / "reports").glob("*.md"))[2]
    text = report.read_text(encoding="utf-8")
    at = text.index("加强", text.index("\n## "))
    report.write_text(text[:at] + "强化" + text[at + 2:], encoding="utf-8")  # the same length: BM25s stay
    after = planned()
    assert search.plan_digest(after, salt) == search.plan_digest(before, salt)  # the vocabulary stayed
    old = {k: before.source.texts.body(k) for k in range(len(before.source.sections))
           if before.source.texts.body(k) != after.source.texts.body(k)}
    change = search.IndexChange(search.plan_digest(before, salt), frozenset(old), search.changed_terms(after, old))
    afresh = [(f.path, f.data) for f in search.write_index(after, lambda f: f)]
    kept: list[str] = []

    def keep(path: str, key: bytes) -> OutputFile | None:
        found = last[path] if last[path].key == key else None
        if found:
            kept.append(path)
        return found

    def read(path: str, key: bytes) -> OutputFile | None:
        return last[path] if last[path].key == key else None

    windows: list[str] = []
    window = search.snippet_window
    monkeypatch.setattr(search, "snippet_window", lambda text, term: windows.append(term) or window(text, term))
    memo = search.IndexMemo(DictStore(), b"v", keep, read, {p: (f.key, b"") for p, f in last.items()})
    assert [(f.path, f.data) for f in search.write_index(after, lambda f: f, memo, change)] == afresh
    remade = [path for path, _ in afresh if path.startswith(search.INDEX_DIR + "t/") and path not in kept]
    assert kept and remade  # some files kept as they were, some made again
    rows = sum(len(entry) for path, data in afresh if path in remade for entry in json.loads(data)["s"].values())
    assert 0 < len(windows) < rows / 2  # most of the remade files' snippet rows were taken as they were
    # without the last build's files to read, the files the change changed are made whole
    windows.clear()
    memo = search.IndexMemo(DictStore(), b"v", keep, lambda path, key: None,
                            {p: (f.key, b"") for p, f in last.items()})
    assert [(f.path, f.data) for f in search.write_index(after, lambda f: f, memo, change)] == afresh
    assert len(windows) == rows


def test_an_edit_that_changes_lengths_remakes_only_the_terms_it_changed(content_copy: Path):
    """A sentence moved from one report to another changes the lengths of two sections, and with them the
    impact of each of their terms; the impacts are looked up by the section's length class (in the manifest), so
    the term files change only for the terms whose counts changed or whose snippet rows show the sections.
    With the change known, the index is the bytes of one made afresh, and most of the sections' terms keep
    their entries. (Moved, so that the average length, and with it every class, stays.)"""
    import numpy as np

    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    settings = search.load_search_settings(content_copy)
    salt = search.IndexMemo(DictStore(), b"v").salt(settings)

    def planned() -> search.IndexPlan:
        data = derive(load_content(content_copy), load_topics(content_copy), load_config(content_copy, None))
        return search.plan_index(search.search_input(data), settings)

    reports = sorted((content_copy / "reports").glob("*.md"))
    first, second = (reports[k].read_text(encoding="utf-8") for k in (1, 3))
    body = second.index("\n## ")
    # a sentence within a paragraph, of no quoted name (a rare word, which moved could change the vocabulary)
    found = next(re.finditer(r"(?<=。)[^。\n*#“”《》]{30,60}。", second[body:]))
    moved = (first.replace("\n## ", f"\n{found[0]}\n\n## ", 1),
             second[:body + found.start()] + second[body + found.end():])
    last: dict[str, OutputFile] = {}
    kept: list[str] = []

    def keep(path: str, key: bytes) -> OutputFile | None:
        if last[path].key == key:
            kept.append(path)
            return last[path]
        return None

    before = planned()
    classes_moved = 0
    for texts in (moved, (first, second)):  # moved, and back
        last.clear()
        last.update((f.path, f) for f in search.write_index(before, lambda f: f, search.IndexMemo(
            DictStore(), b"v", lambda path, key: None)))
        for k, text in zip((1, 3), texts, strict=True):
            reports[k].write_text(text, encoding="utf-8")
        after = planned()
        assert search.plan_digest(after, salt) == search.plan_digest(before, salt)
        old = {k: before.source.texts.body(k) for k in range(len(before.source.sections))
               if before.source.texts.body(k) != after.source.texts.body(k)}
        edited = np.array(sorted(old), np.int64)
        classes_moved += int((after.postings.classes[edited] != before.postings.classes[edited]).sum())
        terms = search.changed_terms(after, old)
        every = {t for counts, _ in search.section_counts(after, after.source.texts, sorted(old)) for t in counts}
        assert len(old) == 2 and terms and len(terms) < len(every) / 2
        change = search.IndexChange(search.plan_digest(before, salt), frozenset(old), terms)
        afresh = [(f.path, f.data) for f in search.write_index(after, lambda f: f)]
        kept.clear()
        memo = search.IndexMemo(DictStore(), b"v", keep, lambda path, key: last[path] if last[path].key == key
                                else None, {p: (f.key, b"") for p, f in last.items()})
        assert [(f.path, f.data) for f in search.write_index(after, lambda f: f, memo, change)] == afresh
        assert kept
        before = after
    assert classes_moved >= 2  # the lengths changed enough to move the sections to other classes


def test_index_is_the_same_bytes_counted_in_small_chunks(monkeypatch):
    """Term counts are made a chunk of sections at a time and each posting put straight into its place, a few
    million at a time; the samples fit in one chunk, so count and place them in many small ones too: the
    files must not change."""
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    data = derive(load_content(CONTENT_DIR), load_topics(CONTENT_DIR), load_config(CONTENT_DIR, None))
    settings = search.load_search_settings(CONTENT_DIR)
    whole = search.build_search_files(data, settings)
    monkeypatch.setattr(search, "_CHUNK_SECTIONS", 5)
    monkeypatch.setattr(search, "_GATHER_POSTINGS", 7)
    chunked = search.build_search_files(data, settings)
    assert len(search.search_input(data).sections) > 10 * 5
    assert [(f.path, f.data) for f in chunked] == [(f.path, f.data) for f in whole]


def test_index_is_the_same_bytes_when_every_text_hash_clashes(monkeypatch):
    """A text seen before is found by its hash and copied, not cut again; texts whose hashes clash must still
    be cut each as itself. With one hash for every text, the files must not change."""
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    data = derive(load_content(CONTENT_DIR), load_topics(CONTENT_DIR), load_config(CONTENT_DIR, None))
    settings = search.load_search_settings(CONTENT_DIR)
    whole = search.build_search_files(data, settings)
    monkeypatch.setattr(search, "hash", lambda text: 7, raising=False)
    clashing = search.build_search_files(data, settings)
    assert [(f.path, f.data) for f in clashing] == [(f.path, f.data) for f in whole]


def test_phrases_that_stand_as_units_join_the_vocabulary():
    """Phrases of 2-4 jieba words go into the vocabulary when they stand as a unit (not always after, nor
    always before, the same word), also across a little punctuation (“双随机、一公开”)."""
    reports = load_content(CONTENT_DIR).reports
    texts = [search.section_text(s.title, s.text, 4) for r in reports for s in r.sections]
    vocab = search.vocabulary(texts, search.Segmenter({}), search.load_search_settings(CONTENT_DIR))
    assert {"重大行政决策", "包容审慎监管", "法律明白人", "双随机一公开", "八五普法"} <= vocab
    assert "双随机一" not in vocab  # 公开 always follows it
    without = search.vocabulary(texts, search.Segmenter({}), search.SearchSettings(phrase_max=0))
    assert "重大行政决策" not in without and without < vocab
    counter = search.TermCounter(vocab)
    text = search.section_text("", "推行“双随机、一公开”监管，深化“八五”普法。", 4)
    terms = counter.of(text.body_runs, text.body_joins)
    assert terms["双随机一公开"] == 1 and terms["八五普法"] == 1
    stop = search.section_text("", "双随机。一公开", 4)  # a clause ends between them: not the phrase
    assert counter.of(stop.body_runs, stop.body_joins)["双随机一公开"] == 0


def test_sections_are_numbered_in_the_order_of_their_headings(built_site: Path):
    """Text files hold sections in heading order, so results under one heading in many reports share files."""
    assert search.heading_key("（二）健全长效机制，规范性文件管理进一步加强") == \
        search.heading_key("七、健全长效机制,规范性文件管理进一步加强")
    assert search.heading_key("一、2023年法治政府建设情况") == search.heading_key("(三)2023年法治政府建设情况")
    assert search.heading_key("2023年法治政府建设情况") != search.heading_key("2024年法治政府建设情况")
    from reportsite.config import load_config
    from reportsite.pipeline import derive
    from reportsite.topics import load_topics

    data = derive(load_content(CONTENT_DIR), load_topics(CONTENT_DIR), load_config(CONTENT_DIR, None))
    source = search.search_input(data)
    sections = source.sections
    assert [s.number for s in sections] == list(range(len(sections)))
    keys = [(search.heading_key(s.title), s.report) for s in sections]
    assert keys == sorted(keys)
    rows = section_rows(built_site)
    assert [(r[0], r[1]) for r in rows] == [(render_path(data, s), s.anchor) for s in sections]


def render_path(data, section) -> str:
    from reportsite.render import report_path

    return report_path(data.reports[section.report])


def test_heading_words_weigh_more_than_body_words():
    text = search.section_text("行政复议", "开展行政复议工作。", heading_weight=4)
    assert text.length == 4 * 4 + len("开展行政复议工作")
    counter = search.TermCounter({"行政复议"})
    assert counter.of(text.heading_runs, text.heading_joins)["行政复议"] == 1
    assert counter.of(text.body_runs, text.body_joins)["行政复议"] == 1


def test_words_are_indexed_wherever_they_stand_and_pairs_cross_punctuation():
    segmenter = search.Segmenter({})
    text = search.section_text("", "人民调解员调解纠纷，深化“八五”普法。", heading_weight=4)
    vocab = search.vocabulary([search.section_text("", "加强人民调解工作", 4), text], segmenter,
                              search.SearchSettings())
    assert "人民调解" in vocab
    terms = search.TermCounter(vocab).of(text.body_runs, text.body_joins)
    assert terms["人民调解"] == 1  # jieba cut 人民调解员 otherwise, the word is still found here
    assert terms["五普"] == 1 and terms["调解"] == 2


@pytest.mark.parametrize("agreed_before", [False, True])
def test_build_fails_loudly_when_the_segmenter_finds_nothing(content_copy: Path, tmp_path: Path, monkeypatch,
                                                             agreed_before: bool):
    import tempfile

    import jieba

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where rjieba's agreement is remembered
    probes = search.load_search_settings(content_copy).probes
    if agreed_before:  # rjieba cuts alone, jieba is not loaded: rjieba is the one that breaks
        assert search.Segmenter(probes).fast
        monkeypatch.setattr(search, "_fast_cutter", lambda: lambda text: iter(()))
    else:
        monkeypatch.setattr(jieba, "cut_for_search", lambda text, HMM=True: iter(()))
    with pytest.raises(ReportsiteError) as caught:
        build(BuildOptions(content_copy, tmp_path / "site", templates_dir=ROOT / "templates",
                           theme_dir=ROOT / "theme"))
    message = str(caught.value)
    assert "segmenter" in message and "jieba" in message
    assert not (tmp_path / "site").exists()


def test_bad_search_settings_name_the_file(content_copy: Path):
    (content_copy / "search.yml").write_text("heading_weight: [\n", encoding="utf-8")
    with pytest.raises(ReportsiteError, match=r"search\.yml:\d+: not valid YAML"):
        search.load_search_settings(content_copy)
    (content_copy / "search.yml").write_text("heading_wieght: 3\n", encoding="utf-8")
    with pytest.raises(ReportsiteError, match="unknown search setting"):
        search.load_search_settings(content_copy)


def test_traditional_map_only_maps_characters_the_index_lacks():
    pairs = search.traditional_map({"复", "议", "办", "覆"})
    mapping = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}
    assert mapping["議"] == "议" and mapping["復"] == "复" and mapping["辦"] == "办"
    assert "覆" not in mapping  # a Simplified character of its own stays as it is


@pytest.mark.browser
def test_browser_query_terms_are_index_terms(built_site: Path, browser):
    """Tokenizer agreement: every term the real worker code asks for is a term the build wrote
    (or a term too frequent to index, listed as such), and lands in the same shard."""
    if not CHROMIUM.exists():
        pytest.skip("no chromium")
    server, url = serve_directory(built_site)
    try:
        page = browser.new_page()
        page.goto(url + "about/")
        page.add_script_tag(url=url + "assets/search-worker.js", type="module")
        answer = page.evaluate(
            """async (queries) => {
                const m = await (await fetch('../search/idx/manifest.json')).json();
                const S = self.ReportsiteSearch;
                const t2s = new Map();
                for (let i = 0; i + 1 < m.t2s.length; i += 2) t2s.set(m.t2s[i], m.t2s[i + 1]);
                const words = S.vocabularyOf(m.vocab);
                const vocab = new Set(words);
                const maxLen = words.reduce((n, w) => Math.max(n, w.length), 3);
                const out = {};
                for (const q of queries) {
                    const terms = S.queryTerms(S.parseQuery(q, t2s), vocab, maxLen);
                    out[q] = terms.map((t) => [t, S.fnv1a(t), S.shardOf(m, t)]);
                }
                out.__vocab = words;
                out.__norm = S.normaliseQuery('行政復議ＡＢＣ', t2s);
                return out;
            }""", QUERIES)
        page.close()
    finally:
        server.shutdown()
    manifest = load_manifest(built_site)
    stop = set(manifest["stop"])
    assert answer.pop("__norm") == "行政复议abc"
    assert answer.pop("__vocab") == search.front_decoded(load_manifest(built_site)["vocab"])
    texts = [search.normalise(s.title + "\n" + s.text) for r in load_content(CONTENT_DIR).reports for s in r.sections]
    checked = 0
    for query, terms in answer.items():
        assert terms, f"no terms for {query}"
        runs = [run for run, _ in search.runs(query) if len(run) > 1 or not search.is_han(run)]
        if not all(any(run in text for text in texts) for run in runs):
            continue  # words that are in no report cannot be in the index
        checked += 1
        for term, hashed, shard in terms:
            assert hashed == search.fnv1a(term), term
            own = manifest["ownFiles"]
            assert shard == (f"t/b{own[term]}.json" if term in own else f"t/{hashed % manifest['termShards']}.json")
            assert term in stop or postings_of(built_site, term), f"{query}: browser term {term!r} not in the index"
    assert checked >= 15
    assert [t[0] for t in answer["法律明白人"]] == ["法律明白人"]  # a phrase of the vocabulary: one word list
    assert [t[0] for t in answer["明白人法律"]] == ["明白人", "法律"]  # not one: its pieces
    assert [t[0] for t in answer["\"行政复议 案件\""]] == ["行政复议案件"]  # a quoted phrase is cut as one run
    assert [t[0] for t in answer["行政復議"]] == ["行政复议"]


def test_fast_segmenter_cuts_exactly_like_jieba_on_the_samples():
    """rjieba is used only because it gives jieba's tokens; prove it on every run of the samples."""
    rjieba = pytest.importorskip("rjieba")
    import jieba

    runs = {run for r in load_content(CONTENT_DIR).reports for s in r.sections
            for run, _ in search.runs(s.title + "\n" + s.text) if search.is_han(run)}
    assert len(runs) > 1000
    differ = [run for run in sorted(runs) if list(rjieba.cut_for_search(run)) != list(jieba.cut_for_search(run))]
    assert differ == []


def test_once_rjieba_agreed_with_jieba_a_build_cuts_without_loading_jieba(tmp_path: Path) -> None:
    probes = {"行政复议案件": ("行政复议", "复议")}
    text = "推进严格规范公正文明执法，深化行政复议体制改革"
    program = ("import json, sys; from reportsite.search import Segmenter; "
               f"s = Segmenter({probes!r}); print(json.dumps([s.fast, 'jieba' in sys.modules, s.words({text!r})]))")

    def run() -> list:
        env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the agreement is remembered
        return json.loads(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                                         cwd=ROOT, env=env).stdout)

    jieba_words = search.Segmenter(probes, fast=False).words(text)
    assert run() == [True, True, jieba_words]  # compared with jieba: they agree, rjieba cuts
    assert list(tmp_path.glob("reportsite-rjieba-agrees-*"))
    assert run() == [True, False, jieba_words]  # the next build: rjieba at once, jieba not even loaded


def test_a_kept_column_of_strings_reads_as_the_list_it_was_made_of() -> None:
    """JoinedStrings (a kept input's titles and heading paths as one string): every way the index reads a list
    of strings gives what the list gives, after pickling too; empty strings, characters beyond the BMP and a
    byte that was not UTF-8 (a lone surrogate, as surrogateescape reads it) included."""
    strings = ["总体情况", "", "一、主要举措 › （一）深化改革", "𠀀扩展字", "行政复议", "", "坏\udc80字节"]
    joined = search.JoinedStrings.of(strings)
    for column in (joined, pickle.loads(pickle.dumps(joined))):
        assert len(column) == len(strings) and list(column) == strings and column == strings
        assert [column[k] for k in range(-len(strings), len(strings))] == strings * 2
        assert column[1:4] == strings[1:4] and column[::2] == strings[::2]
    assert search.JoinedStrings.of(joined) is joined and len(search.JoinedStrings.of([])) == 0
