"""Command line: `import`, `check`, `build`, `serve`. Thin: parses arguments, calls one step, prints.

Exit codes: 0 success; 1 some input was bad (each problem printed as `path:line: what; fix`, the
good inputs still processed); 2 nothing was written (bad settings, a broken link, refused output).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .errors import ReportsiteError, print_problems

if TYPE_CHECKING:
    from .stamps import Lookahead

EXIT_OK, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 2
CACHE_DIR = ".reportsite-cache"  # per-report and per-page work of earlier builds (cache.py)


def cmd_import(args: argparse.Namespace) -> int:
    from .ingest import choose_output, collect_sources, import_file, render_content_file

    out = Path(args.out) if args.out else Path(args.content) / "reports"
    out.mkdir(parents=True, exist_ok=True)
    sources = collect_sources([Path(p) for p in args.paths])
    rows, failed = [], 0
    taken: set[Path] = set()
    for source in sources:
        try:
            report = import_file(source)
            target, report = choose_output(out, report, taken)
        except ReportsiteError as exc:
            print_problems(exc.problems)
            failed += 1
            continue
        taken.add(target)
        text = render_content_file(report)
        if target.exists() and target.read_text(encoding="utf-8") != text and not args.force:
            print(f"{target}:1: exists and differs from a fresh import (edited by hand?); "
                  "pass --force to overwrite it", file=sys.stderr)
            failed += 1
            continue
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        fm = report.front_matter
        j = fm["jurisdiction"]
        place = "/".join(x for x in (j.get("province"), j.get("city"), j.get("name")) if x) or "?"
        rows.append((source.name, str(target), place, str(fm.get("year") or "?"), str(report.sections),
                     "; ".join(report.warnings) or "-"))
        for warning in report.warnings:
            print(f"warning: {source}:1: {warning}", file=sys.stderr)
    _print_table(["source", "output", "jurisdiction", "year", "sections", "warnings"], rows)
    print(f"imported {len(rows)} of {len(sources)} file(s)" + (f"; {failed} failed" if failed else ""))
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _print_table(header: list[str], rows: list[tuple[str, ...]]) -> None:
    if not rows:
        return
    widths = [max(_width(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    for row in [tuple(header), *rows]:
        print("  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)).rstrip())


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def cmd_check(args: argparse.Namespace) -> int:
    from .model import load_content
    from .topics import load_topics

    content = load_content(Path(args.content))
    load_topics(Path(args.content))
    print_problems(list(content.problems), warnings_shown=None)
    print(f"checked {len(content.reports)} report(s): {len(content.errors)} problem(s)")
    return EXIT_BAD_INPUT if content.problems else EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from .stamps import Lookahead, cache_store, project_path

    # forked before the imports below (0.25 s at 10,000 reports), which it spends taking the stamps
    look = None if args.no_cache else Lookahead.start(
        [Path(args.content), project_path("templates"), project_path("theme")], cache_store(Path(CACHE_DIR)),
        Path(args.out))
    try:
        return _build(args, look)
    finally:
        if look:
            look.close()


def _build(args: argparse.Namespace, look: Lookahead | None) -> int:
    from .cache import BuildCache, Progress
    from .pipeline import BuildOptions, build

    cache = None if args.no_cache else BuildCache(Path(CACHE_DIR))
    if cache:
        cache.progress = Progress(sys.stderr.isatty())
    result = build(BuildOptions(Path(args.content), Path(args.out), args.base_url, args.strict, cache=cache,
                                look=look))
    args.build_cache = cache  # what the build loaded, freed by the process's exit (see run)
    print_problems(list(result.problems))
    work = ""
    if cache:
        s = cache.stats
        work = (f" ({s.parsed} report(s) parsed, {len(s.rendered) + s.uncached} page(s) rendered, {s.reused} reused;"
                f" {result.written} file(s) rewritten)")
        if not (s.parsed or s.rendered or s.uncached or s.reused):
            work = " (nothing changed since the last build: 0 report(s) parsed, 0 file(s) rewritten)"
    if args.timings:
        for step, seconds, peak in result.steps:
            print(f"  {step:<30} {seconds:7.2f} s   peak {peak:7,.0f} MB (this process)", file=sys.stderr)
    print(f"built {result.reports} report(s), {result.files} files into {args.out} in {result.seconds:.2f} s{work}"
          + (f"; {len(result.errors)} report(s) left out, see above" if result.errors else ""))
    return EXIT_BAD_INPUT if result.errors else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    return serve(args)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reportsite", description="Static site for 法治政府建设年度报告.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="raw report texts -> content/reports/*.md")
    p.add_argument("paths", nargs="+", help="report files or folders of .txt files")
    p.add_argument("--content", default="content", help="content folder (default content/)")
    p.add_argument("--out", help="output folder (default CONTENT/reports)")
    p.add_argument("--force", action="store_true", help="overwrite content files that differ")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("check", help="validate content without writing anything")
    p.add_argument("--content", default="content")
    p.set_defaults(func=cmd_check)

    for name, func, help_text in (("build", cmd_build, "content -> static site"),
                                  ("serve", cmd_serve, "build, serve and rebuild on change")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--content", default="content")
        p.add_argument("--out", default="site")
        p.add_argument("--base-url", help="URL the site is published at, e.g. https://example.org/fzbg/")
        p.add_argument("--strict", action="store_true", help="treat warnings and bad reports as failure")
        p.add_argument("--no-cache", action="store_true", help=f"do not use or fill the build cache {CACHE_DIR}/")
        p.set_defaults(func=func)
        if name == "build":
            p.add_argument("--timings", action="store_true", help="print the time each step took")
        if name == "serve":
            p.add_argument("--port", type=int, default=8000)
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--open", action="store_true", help="open the site in a browser")
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so the writer removes its staging folder


def run() -> NoReturn:
    """The command line's entry point: exits without the interpreter's teardown. A build of 10,000 reports
    leaves millions of objects that Python would free one by one, 1.4 s for nothing (mypy exits the same
    way); so `args` keeps the build's data alive until os._exit. Every file is closed and every worker
    joined before the command returns.

    Nor does a command that ends collect garbage (its workers do): a build pauses collections while it
    makes its millions of objects, and the first collection after it walked them all, 1.7 s at 10,000
    reports. The live preview runs on, rebuild after rebuild: it collects."""
    args = make_parser().parse_args()
    if args.command != "serve":
        gc.disable()
    code = execute(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    return execute(make_parser().parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return args.func(args)
    except ReportsiteError as exc:
        print_problems(exc.problems)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; nothing was replaced", file=sys.stderr)
        return 130
