"""imports: the versions of installed libraries, read from their .dist-info folders, are importlib.metadata's."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from reportsite.cache import OUTPUT_LIBRARIES
from reportsite.imports import installed_versions


def test_the_versions_are_importlib_metadata_s() -> None:
    found = installed_versions([*OUTPUT_LIBRARIES, "reportsite", "no-such-library-here"])
    for name in [*OUTPUT_LIBRARIES, "reportsite"]:
        assert found[name] == metadata.version(name), name
    assert found["no-such-library-here"] is None


def test_the_first_on_the_path_counts_as_its_name_is_written_any_way(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution found earlier on sys.path shadows the installed one, as it does for importlib.metadata;
    names match however their separators and case are written (PyYAML, pyyaml; cpca-new, cpca_new)."""
    for name, version in (("PyYAML", "99.1"), ("cpca_new", "7.0")):
        folder = tmp_path / f"{name}-{version}.dist-info"
        folder.mkdir()
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    found = installed_versions(["pyyaml", "cpca-new", "jinja2"])
    assert found == {"pyyaml": "99.1", "cpca-new": "7.0", "jinja2": metadata.version("jinja2")}
    assert metadata.version("pyyaml") == "99.1" and metadata.version("cpca-new") == "7.0"
