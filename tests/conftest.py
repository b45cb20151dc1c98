"""Shared fixtures: the five real raw reports, the committed content, and built sites."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

# In CI the property tests draw the same examples every run, so a landing never hangs on luck; locally
# they keep exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
# A copy of ../shared/raw-reports, byte for byte, so a clone tests itself.
RAW_DIR = ROOT / "tests" / "data" / "raw-reports"
CONTENT_DIR = ROOT / "content"

SAMPLES = {
    "000": "000_587ecf3fbd3c4a2b.txt",
    "001": "001_e682de9bac8de13f.txt",
    "002": "002_a62a3be5949b6c15.txt",
    "003": "003_0db19a1b1cc97a3e.txt",
    "004": "004_12d456f2e68e5874.txt",
}


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    return RAW_DIR


@pytest.fixture(scope="session")
def sample_paths() -> dict[str, Path]:
    return {key: RAW_DIR / name for key, name in SAMPLES.items()}


@pytest.fixture()
def content_copy(tmp_path: Path) -> Path:
    """A writable copy of the committed content/ folder."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


@pytest.fixture()
def project(tmp_path: Path):
    """Build options over a writable copy of content/, templates/ and theme/."""
    from reportsite.pipeline import BuildOptions

    for name in ("content", "templates", "theme"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return BuildOptions(tmp_path / "content", tmp_path / "site", templates_dir=tmp_path / "templates",
                        theme_dir=tmp_path / "theme")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed content built once into a temporary site folder."""
    from reportsite.pipeline import BuildOptions, build

    out = tmp_path_factory.mktemp("built") / "site"
    build(BuildOptions(CONTENT_DIR, out, templates_dir=ROOT / "templates", theme_dir=ROOT / "theme"))
    return out


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def serve_directory(directory: Path):
    """Start a quiet static HTTP server for `directory` on a free loopback port; returns (server, base URL)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="session")
def site_url(built_site: Path):
    server, url = serve_directory(built_site)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (run tests/setup-browser.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()
