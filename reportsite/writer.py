"""Write: put the rendered site in place atomically.

The new site is written into a temporary sibling directory and swapped in only when complete, so a
failed or killed build leaves the previous output untouched. A rebuild into a site that is as the last
build left it (a build cache knows) writes only the files that changed into that sibling directory, a
*patch*, and moves them in once all are there: a killed build leaves either the old site, or a patch
marked complete that the next build finishes putting in place. The build refuses output directories
that could hold a user's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import fail

MARKER = ".reportsite-output"
PATCH = ".patch-"  # in the name of a patch folder: .site.patch-xxxx beside site/
PATCH_DONE = ".reportsite-patch"  # in a complete patch folder: the site's files to delete (JSON list)


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


def start_patch(out: Path) -> Path:
    """A new, empty patch folder beside `out`, a site as the last build left it: the files whose bytes
    change go there, the others stay where they are (see finish_patch)."""
    out = out.resolve()
    _remove_leftovers(out)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}{PATCH}", dir=out.parent))


def is_patch(staging: Path | str) -> bool:
    """Whether `staging` is a patch folder (start_patch): a file unchanged since the last build is then
    left where it is instead of being linked into it."""
    return PATCH in os.path.basename(staging)


def finish_patch(patch: Path, out: Path, removed: Iterable[str]) -> None:
    """Mark the patch complete, with the site paths of the files that are no longer made (`removed`), then
    put its files in place in `out` and delete those."""
    record = patch / f"{PATCH_DONE}.tmp"  # put in place whole: a record cut short would not say what to delete
    record.write_text(json.dumps(sorted(removed), ensure_ascii=False), encoding="utf-8")
    os.replace(record, patch / PATCH_DONE)
    _finish_patch(patch, out.resolve())


def _finish_patch(patch: Path, out: Path) -> None:
    try:
        _apply_patch(patch, out)
    except OSError as exc:
        raise fail(str(out), 0, f"the site was updated only in part ({exc.strerror or exc})",
                   "run the build again: it finishes the update first") from None


def discard_staging(staging: Path) -> None:
    """After a failed build: its staging or patch folder, unless the patch was complete (a failure while it
    was put in place): the next build finishes that one (_remove_leftovers)."""
    if not (staging / PATCH_DONE).exists():
        shutil.rmtree(staging, ignore_errors=True)


def _apply_patch(patch: Path, out: Path) -> None:
    """Delete the files the complete `patch` lists, then move its files into `out`; then the patch folder
    goes. Run again after an interruption, it finishes the work."""
    removed = json.loads((patch / PATCH_DONE).read_text(encoding="utf-8"))
    root = str(out)
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, path))
        folder = os.path.dirname(path)
        while folder:  # the folders left empty (a deleted report's)
            try:
                os.rmdir(os.path.join(root, folder))
            except OSError:
                break
            folder = os.path.dirname(folder)
    source = str(patch)
    for folder, _, names in os.walk(source):
        relative = os.path.relpath(folder, source)
        target = root if relative == "." else os.path.join(root, relative)
        if relative != ".":
            os.makedirs(target, exist_ok=True)
        for name in names:
            if relative != "." or name != PATCH_DONE:
                os.replace(os.path.join(folder, name), os.path.join(target, name))
    shutil.rmtree(patch, ignore_errors=True)


def write_into(staging: Path, path: str, data: bytes) -> None:
    target = os.path.join(staging, path)
    try:
        with open(target, "wb") as f:
            f.write(data)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)


def make_folders(staging: Path, paths: Iterable[str]) -> None:
    """The folders of the site paths `paths` in the new staging folder, parents first, made before any file
    goes there: a rebuild's 13,000 links each found their folder missing, raised, and made it."""
    root = str(staging)
    for folder in sorted({path.rpartition("/")[0] for path in paths} - {""}):
        try:
            os.mkdir(os.path.join(root, folder))
        except FileExistsError:  # made by the search index's child meanwhile
            pass
        except FileNotFoundError:  # a parent that holds no file of its own
            os.makedirs(os.path.join(root, folder), exist_ok=True)


def link_into(staging: Path, path: str, old: Path | str) -> bool:
    """Hard-link `old`, the last site's file at `path`, as `path` in staging; False where links are
    impossible (another filesystem). (Paths as strings, its folder made only when missing: a rebuild links
    13,000 files.)"""
    if is_patch(staging):  # the build patches the site `old` is in: the file stays there
        return True
    target = os.path.join(staging, path)
    try:
        os.link(old, target)
    except FileNotFoundError:
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.link(old, target)
        except OSError:
            return False
    except OSError:
        return False
    return True


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
    """Staging folders of a build that was killed (SIGKILL cannot clean up after itself), and a previous site
    still being deleted (remove_in_background), deleted in the background: a rebuild just after a build at
    10,000 reports waited 30 s for the last site's folders. Their names are ours alone; two builds into the
    same --out at the same time are not supported."""
    for pattern in (f".{out.name}.new-*", f".{out.name}.old-*", f".{out.name}{PATCH}*"):
        for leftover in out.parent.glob(pattern):
            if not leftover.is_dir():
                continue
            if (leftover / PATCH_DONE).exists() and out.is_dir():  # complete: it was being put in place
                _finish_patch(leftover, out)
            else:
                remove_in_background(leftover)


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
