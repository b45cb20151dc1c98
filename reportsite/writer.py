"""Write: put the rendered site in place atomically.

The new site is written into a temporary sibling directory and swapped in only when complete, so a
failed or killed build leaves the previous output untouched. The build refuses output directories
that could hold a user's work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import fail

MARKER = ".reportsite-output"


def check_output_dir(out: Path, protected: Iterable[Path], content_dir: Path) -> None:
    """Refuse `out` when it is, or contains, a protected folder, lies inside content/, or holds
    files that reportsite did not write."""
    out = out.resolve()
    if out == Path(out.anchor) or out == Path.home():
        raise fail(str(out), 0, "refusing to write the site into a root or home folder", "use e.g. --out site/")
    for path in (*protected, content_dir):
        path = path.resolve()
        if path.is_relative_to(out):
            raise fail(str(out), 0, f"refusing to write the site here: it would replace {path}",
                       "choose an output folder of its own, e.g. --out site/")
    if out.is_relative_to(content_dir.resolve()):
        raise fail(str(out), 0, "refusing to write the site inside the content folder", "use e.g. --out site/")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise fail(str(out), 0, "output folder exists, is not empty and was not made by reportsite",
                   "empty it, or choose another --out")


def start_staging(out: Path) -> Path:
    """A new, empty staging folder beside `out` (see write_site)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))


def finish_staging(staging: Path, out: Path) -> None:
    """Mark the complete staging folder as ours and swap it in for `out`."""
    (staging / MARKER).write_text("written by reportsite; safe to delete\n", encoding="utf-8")
    _swap(staging, out.resolve())


def write_site(out: Path, files: Iterable[tuple[str, bytes]]) -> int:
    """Write all files into a temp dir beside `out`, then swap it in. Returns the number of files."""
    staging = start_staging(out)
    try:
        count = 0
        for rel, data in files:
            target = staging / rel
            if not target.resolve().is_relative_to(staging):
                raise fail(rel, 0, "output path escapes the site folder", "check slugs and paths")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            count += 1
        finish_staging(staging, out)
        return count
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_leftovers(out: Path) -> None:
    """Staging folders of a build that was killed (SIGKILL cannot clean up after itself). Their names are
    ours alone; two builds into the same --out at the same time are not supported."""
    for pattern in (f".{out.name}.new-*", f".{out.name}.old-*"):
        for leftover in out.parent.glob(pattern):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def _swap(staging: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    os.replace(staging, out)
    remove_in_background(old)


def remove_in_background(folder: Path) -> None:
    """Delete the previous site in a detached process: the new one is in place already, and removing
    10,000 folders can take seconds when the disk is busy. If that process is killed, the next build
    removes what is left (_remove_leftovers)."""
    command = [sys.executable, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)", str(folder)]
    try:
        subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
