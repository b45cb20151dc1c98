"""Libraries imported on first use, not when the module that names them is imported; and the versions of
those installed."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module `name`, loaded when one of its attributes is first read (importlib's LazyLoader): numpy
    costs 0.05-0.09 s to import, which a quick rebuild's main process, which never uses it, need not pay."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    """name -> version of these installed distributions (None: not installed): the first found on sys.path, as
    importlib.metadata finds it, but read from the names of their .dist-info folders ({name}-{version}, PEP
    427) in one listing of each folder, where importlib.metadata reads and parses each one's METADATA (0.033 s
    for the eight that shape the site). A name with no such folder (an .egg-info) is asked of importlib.metadata."""
    wanted = {_normal(name): name for name in names}
    found: dict[str, str | None] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        for item in listing:
            if item.endswith(".dist-info"):
                name, _, version = item[: -len(".dist-info")].partition("-")
                key = wanted.get(_normal(name))
                if key is not None and key not in found and version:
                    found[key] = version
    for name in wanted.values():
        if name not in found:
            from importlib import metadata

            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = None
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
