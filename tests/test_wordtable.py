"""The dictionary's table: a Jieba given only the words found in the runs it cuts cuts them as rjieba does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reportsite import search, wordtable
from reportsite.model import load_content
from tests.conftest import CONTENT_DIR, RAW_DIR, ROOT

rjieba = pytest.importorskip("rjieba")
MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"
PROBES = {"行政复议案件": ("行政复议", "复议")}


@pytest.fixture()
def table_dir(tmp_path: Path, monkeypatch) -> Path:
    """A temporary folder of its own, where the table is made (as it is beside jieba's cache)."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def han_runs(texts: list[str]) -> list[str]:
    return sorted({run for text in texts for run, _ in search.runs(text) if search.is_han(run)})


def report_texts(content: Path) -> list[list[str]]:
    return [[s.title + "\n" + s.text for s in r.sections] for r in load_content(content).reports]


def cuts_alike(reports: list[list[str]], cutter_of) -> list[str]:
    """The runs a cutter cuts otherwise than rjieba with the whole dictionary; a cutter per report, each given
    the words of its runs as it goes (the total made up again at each)."""
    differ = []
    for texts in reports:
        cut = cutter_of()
        differ += [run for run in han_runs(texts) if cut(run) != rjieba.cut_for_search(run)]
    return differ


def test_the_table_cuts_every_run_of_the_samples_and_a_bench_corpus_as_rjieba(table_dir: Path, tmp_path: Path):
    versions = search.cutter_versions()
    assert versions is not None and wordtable.write_table(wordtable.table_folder(versions))
    samples = report_texts(CONTENT_DIR)
    assert len(han_runs([t for texts in samples for t in texts])) > 1000
    assert cuts_alike(samples, lambda: wordtable.few_runs_cutter(versions)) == []
    if MAKE_CORPUS.exists():
        subprocess.run([sys.executable, str(MAKE_CORPUS), "--seeds", str(RAW_DIR), "--out", str(tmp_path / "bench"),
                        "--n", "150", "--format", "md"], check=True, capture_output=True)
        content = tmp_path / "content"
        shutil.copytree(CONTENT_DIR, content)
        shutil.rmtree(content / "reports")
        (tmp_path / "bench").rename(content / "reports")
        corpus = report_texts(content)
        assert len(corpus) == 150
        assert cuts_alike(corpus, lambda: wordtable.few_runs_cutter(versions)) == []
    # one cutter for all: the words of many runs given one after the other
    one = wordtable.few_runs_cutter(versions)
    runs = han_runs([t for texts in samples for t in texts])
    assert [one(run) for run in runs] == [rjieba.cut_for_search(run) for run in runs]


def test_a_segmenter_that_loaded_rjieba_makes_the_table_and_one_for_few_runs_takes_it(table_dir: Path):
    assert search.Segmenter(PROBES).fast  # compared with jieba, agreed: rjieba loaded whole
    tables = list(table_dir.glob("reportsite-jieba-words-*"))
    assert len(tables) == 1 and (tables[0] / wordtable.WORDS).is_file()
    text = "推进严格规范公正文明执法，深化行政复议体制改革"
    program = ("import json, sys; from reportsite.search import Segmenter; "
               f"s = Segmenter({PROBES!r}, few=True); w = s.words({text!r}); "
               "print(json.dumps([s.fast, 'rjieba' in sys.modules, 'jieba' in sys.modules, w]))")
    env = {**os.environ, "TMPDIR": str(table_dir)}
    got = json.loads(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                                    cwd=ROOT, env=env).stdout)
    assert got == [True, False, False, search.Segmenter(PROBES, fast=False).words(text)]


def test_a_table_that_cuts_the_probes_otherwise_is_not_kept(table_dir: Path):
    search._make_word_table(lambda text: ["行政", "复议", "案件"], {"行政复议案件": ()})
    assert not list(table_dir.glob("reportsite-jieba-words-*"))
    search._make_word_table(rjieba.cut_for_search, {"行政复议案件": ()})
    assert len(list(table_dir.glob("reportsite-jieba-words-*"))) == 1


def test_without_the_table_a_segmenter_for_few_runs_loads_rjieba(table_dir: Path, monkeypatch):
    monkeypatch.setattr(search, "_make_word_table", lambda *args: None)
    assert search.Segmenter(PROBES).fast
    assert search.Segmenter(PROBES, few=True).fast and not list(table_dir.glob("reportsite-jieba-words-*"))
    assert search.Segmenter(PROBES, few=True).words("行政复议案件") == list(rjieba.cut_for_search("行政复议案件"))
