"""jieba's dictionary as a sorted table on disk, so that a few runs are cut without loading it all.

rjieba builds its whole dictionary (349,000 words) before it cuts anything: 0.13 s, most of what the
search index's patch costs after an edit, which cuts the runs of a section or two. jieba cuts a run by
the dictionary's words found in it (the graph of its substrings that are words), their frequencies, the
total of all frequencies (each word's probability) and an HMM that does not depend on the dictionary.
So a Jieba given only the words found in the runs it cuts, and one word that stands for all the others
(private-use characters, in no run; its frequency makes the total the whole dictionary's, as jieba-rs
sums it: each word once), cuts those runs exactly as rjieba with the whole dictionary.
tests/test_wordtable.py proves it on every run of the samples and of a bench corpus.

The table is made from jieba's own dict.txt (the dictionary jieba-rs embeds too) once per installed jieba
and rjieba, beside jieba's cache in the temporary folder (search.agreement_mark), by a segmenter that has
loaded rjieba whole anyway (a cold build's, or the first patch's without a table), and kept only when it
cuts the probes as rjieba does. A table that cannot be read is left alone: rjieba then cuts, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .imports import lazy_import

np = lazy_import("numpy")  # a quick rebuild's main process never loads it

OTHER_WORDS = "\ue000\ue001"  # stands for the words not loaded: private use, so in no run
WORDS, FREQUENCIES = "words.npy", "frequencies.npy"


def table_folder(versions: tuple[str, str]) -> Path:
    """Where the table of these (jieba, rjieba) versions is kept."""
    digest = hashlib.blake2b(repr(versions).encode(), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"reportsite-jieba-words-{digest}"


def jieba_dictionary() -> Path | None:
    """jieba's dict.txt, found without importing jieba."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "dict.txt"


class WordTable:
    """The dictionary's words, sorted, and their frequencies: two arrays mapped from disk (22 MB, of which a
    lookup reads a few pages)."""

    def __init__(self, folder: Path):
        self.words = np.load(folder / WORDS, mmap_mode="r")
        self.frequencies = np.load(folder / FREQUENCIES, mmap_mode="r")
        self.total = int(self.frequencies.sum())
        self.longest = self.words.dtype.itemsize // 4  # characters of the longest word (UTF-32)

    def found_in(self, run: str) -> dict[str, int]:
        """The run's substrings that are words -> their frequencies."""
        wanted = np.array(list({run[i:j] for i in range(len(run))
                                for j in range(i + 1, min(len(run), i + self.longest) + 1)}),
                          dtype=self.words.dtype)
        at = np.searchsorted(self.words, wanted)
        at[at == len(self.words)] = 0
        found = self.words[at] == wanted
        return dict(zip(wanted[found].tolist(), self.frequencies[at[found]].tolist(), strict=True))


def write_table(folder: Path) -> bool:
    """Make the table from jieba's dict.txt (0.5 s); False when there is none or it cannot be written."""
    source = jieba_dictionary()
    if source is None or not source.is_file():
        return False
    frequencies: dict[str, int] = {}
    for line in source.read_text(encoding="utf-8").splitlines():
        word, frequency, *_ = line.split(" ")
        frequencies[word] = int(frequency)  # a word listed twice counts once, as jieba-rs loads it
    words = sorted(frequencies)
    made = folder.with_name(f"{folder.name}.{os.getpid()}")
    try:
        made.mkdir(exist_ok=True)
        np.save(made / WORDS, np.array(words))
        np.save(made / FREQUENCIES, np.array([frequencies[w] for w in words], dtype=np.int64))
        made.rename(folder)
    except OSError:  # another build made it first, or a read-only temporary folder
        shutil.rmtree(made, ignore_errors=True)
        return folder.is_dir()
    return True


def load_table(folder: Path) -> WordTable | None:
    with contextlib.suppress(OSError, ValueError):
        return WordTable(folder)
    return None


def jieba_class() -> Any:
    """rjieba's Jieba class, without importing the package: its __init__ makes a Jieba of the whole
    dictionary at import (0.13 s), which a FewRunsCutter does not need. None when that fails."""
    module = sys.modules.get("rjieba.rjieba")
    if module is None:
        spec = importlib.util.find_spec("rjieba")
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations)))
        binary = next((folder / f"rjieba{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
                       if (folder / f"rjieba{suffix}").is_file()), None)
        found = binary and importlib.util.spec_from_file_location("rjieba.rjieba", binary)
        if not found or found.loader is None:
            return None
        try:
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        except ImportError:
            return None
        sys.modules["rjieba.rjieba"] = module  # `import rjieba` later takes this one: it loads only once
    return getattr(module, "Jieba", None)


class FewRunsCutter:
    """rjieba's search-mode cut of a run, by a Jieba given only the words of the runs cut so far."""

    def __init__(self, table: WordTable, jieba: Any):
        self._table = table
        self._jieba = jieba.empty()
        self._jieba.add_word(OTHER_WORDS, table.total, None)
        self._given = 0  # the frequencies of the words given
        self._seen: set[str] = set()

    def __call__(self, run: str) -> list[str]:
        if run not in self._seen:
            self._seen.add(run)
            new = {w: f for w, f in self._table.found_in(run).items() if not self._jieba.has_word(w)}
            for word, frequency in new.items():
                self._jieba.add_word(word, frequency, None)
            if new:
                self._given += sum(new.values())
                self._jieba.add_word(OTHER_WORDS, self._table.total - self._given, None)
        return self._jieba.cut_for_search(run)


def few_runs_cutter(versions: tuple[str, str]) -> Callable[[str], list[str]] | None:
    """A FewRunsCutter when the table of these versions is there and rjieba loads."""
    table = load_table(table_folder(versions))
    jieba = jieba_class() if table is not None else None
    return FewRunsCutter(table, jieba) if table is not None and jieba is not None else None
