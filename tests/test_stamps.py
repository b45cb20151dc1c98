"""stamps: the look-ahead child takes the input files' stamps and checks the site exactly as the build would
itself, answers only for the state it read, and is always collected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reportsite import stamps
from reportsite.cache import BuildCache, read_site_state, site_as_left
from reportsite.pipeline import BuildOptions, build


def _built(project: BuildOptions, cache_dir: Path) -> BuildCache:
    cache = BuildCache(cache_dir)
    build(BuildOptions(**{**project.__dict__, "cache": cache}))
    return cache


def _look(project: BuildOptions, cache_dir: Path) -> stamps.Lookahead:
    look = stamps.Lookahead.start([project.content_dir, project.templates_dir, project.theme_dir],
                                  stamps.cache_store(cache_dir), project.out_dir)
    assert look is not None
    return look


def _state_identity(cache_dir: Path, out: Path) -> tuple:
    cache = BuildCache(cache_dir)
    assert cache.disk is not None
    rows, _, _, folders, saved = read_site_state(cache.disk, stamps.site_key(out))
    return stamps.state_identity(saved.generation, (saved.rows, saved.folders), rows, folders)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the look-ahead child is forked")
def test_the_child_takes_the_stamps_and_checks_the_site_as_the_build_would(project: BuildOptions,
                                                                           tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    _built(project, cache_dir)
    roots = [project.content_dir, project.templates_dir, project.theme_dir]
    identity = _state_identity(cache_dir, project.out_dir)
    look = _look(project, cache_dir)
    try:
        taken = stamps.input_stamps(roots)
        assert look.input_stamps(roots) == (taken, stamps.stamps_digest(taken)) and taken != {}
        assert look.input_stamps(roots[:2]) is None  # taken of other folders: not these
        assert look.site_untouched(identity) is True
        assert look.site_untouched((b"another state", *identity[1:])) is None
    finally:
        look.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(look.pid, os.WNOHANG)  # collected
    # a file of the site changed since: the child finds it, as the build's own check does
    page = next(project.out_dir.rglob("*.html"))
    page.write_bytes(page.read_bytes() + b"\n")
    look = _look(project, cache_dir)
    try:
        assert look.site_untouched(identity) is False
        cache = BuildCache(cache_dir)
        cache.open_site(project.out_dir)
        assert site_as_left(cache, project.out_dir, look) is False
        assert site_as_left(cache, project.out_dir) is False
    finally:
        look.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the look-ahead child is forked")
def test_a_child_that_is_not_asked_is_stopped_and_collected(project: BuildOptions, tmp_path: Path) -> None:
    """A build that fails before it asks (bad settings, say) closes the child all the same: the child may be
    blocked writing the stamps of 10,000 files, and is killed, not waited for."""
    for n in range(6000):  # more stamps than the pipe holds (1 MB) without a reader
        (project.content_dir / f"note-{n:04d}-{'x' * 200}.txt").write_text("x", encoding="utf-8")
    look = _look(project, tmp_path / "cache")
    look.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(look.pid, os.WNOHANG)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the look-ahead child is forked")
def test_without_a_kept_site_the_child_gives_the_stamps_only(project: BuildOptions, tmp_path: Path) -> None:
    look = _look(project, tmp_path / "cache")
    roots = [project.content_dir, project.templates_dir, project.theme_dir]
    try:
        taken = stamps.input_stamps(roots)
        assert look.input_stamps(roots) == (taken, stamps.stamps_digest(taken))
        assert look.site_untouched((b"", 0, 0, 0, 0)) is None
    finally:
        look.close()


def test_the_stamps_digest_is_of_the_stamps_not_of_their_order(project: BuildOptions) -> None:
    taken = stamps.input_stamps([project.content_dir, project.templates_dir, project.theme_dir])
    backwards = dict(reversed(list(taken.items())))
    assert list(backwards) != list(taken)
    assert stamps.stamps_digest(backwards) == stamps.stamps_digest(taken)
    path, (mtime, size) = next(iter(taken.items()))
    for changed in ({**taken, path: (mtime + 1, size)}, {**taken, path: (mtime, size + 1)},
                    {p: s for p, s in taken.items() if p != path}, {**taken, path + "x": (mtime, size)}):
        assert stamps.stamps_digest(changed) != stamps.stamps_digest(taken)
