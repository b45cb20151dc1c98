#!/usr/bin/env python3
"""Search benchmark: our sharded index vs Pagefind (extended) on the same built site, in headless Chromium.

    python3 bench/search_bench.py --n 1000 [--work DIR] [--reuse] [--skip-pagefind]

Steps: make a synthetic corpus (../shared/bench/make_corpus.py, --n reports), import it with
`build.py import` into a fresh content folder (with content/topics.yml, site.yml, search.yml), build the site
(timing the search index separately), run `python3 -m pagefind --site …` over the report pages, serve the
site on 127.0.0.1, and measure in Chromium:
  - first query (fresh browser cache): requests and bytes as served gzipped (each file counted as
    min(raw, gzip -6), Pagefind's files being gzip already), for our search page and for Pagefind's JS API
    (search + data() of the first 5 results). Ours: the requests to answer the query are the index files
    it fetched (manifest, word lists, section texts) until the first 5 results show with their snippets;
    the page's two scripts (search.js, search-worker.js) are page load, counted apart, but their bytes
    are in the total. The same is measured for each of the QUERIES in a fresh browser;
  - warm query time (second run of each query; ours: time inside the worker; Pagefind: search + data());
  - result quality on QUERIES: a section is expected when its text (punctuation removed) contains every
    query word (a quoted phrase: the words in a row). We report precision of the first 10 results,
    recall within the first 10, and the number of hits each engine claims against the true number.
Not a test: prints a table (and writes results.json into the work folder).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reportsite import pipeline, search  # noqa: E402
from reportsite.model import load_content  # noqa: E402

MAKE_CORPUS = ROOT.parent / "shared" / "bench" / "make_corpus.py"
SEEDS = ROOT.parent / "shared" / "raw-reports"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
FIRST_QUERY = "行政复议 案件"  # the two-word first query
FIRST_RESULTS = 5  # results shown with their snippet on the first page (ours and Pagefind's UI)
QUERIES = [
    "行政复议", "复议", "法律明白人", "“放管服”", "放管服", "12345热线", "城事通", "网办率", "合法性审查",
    "重大行政决策", "行政执法 三项制度", "行政复议 案件", "法律顾问 覆盖率", "负责人出庭应诉", "规范性文件 备案审查",
    "营商环境", "一网通办", "跨省通办", "双随机一公开", "八五普法", "政务公开", "证明事项告知承诺", "包容审慎监管",
    "综合行政执法", "矛盾纠纷 化解", "行政復議", "2023年 普法", "人民调解", "公共法律服务", "法治督察", "首违不罚",
    "法治政府示范创建", "行政应诉", "府院联动", "\"行政复议 案件\"",
]
_KEEP = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff0-9a-z]")


# ------------------------------------------------------------------------------------------------------
# Corpus and builds


def run(cmd: list[str], check: bool = True, **kw) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=check, **kw)
    return time.perf_counter() - started


def make_content(work: Path, n: int) -> Path:
    raw, content = work / "raw", work / "content"
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(content, ignore_errors=True)
    run([sys.executable, str(MAKE_CORPUS), "--seeds", str(SEEDS), "--out", str(raw), "--n", str(n)],
        stdout=subprocess.DEVNULL)
    content.mkdir(parents=True)
    # exit status 1 is expected: reports of the same jurisdiction and year collide and are refused
    seconds = run([sys.executable, str(ROOT / "build.py"), "import", str(raw), "--content", str(content)],
                  check=False, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"imported {len(list((content / 'reports').glob('*.md')))} report files from {n} generated "
          f"in {seconds:.0f} s (same jurisdiction + year collide)")
    return content


def build_site(content: Path, site: Path) -> dict:
    timings: dict[str, float] = {}
    original = pipeline.build_search_files

    def timed(*args):
        started = time.perf_counter()
        files = original(*args)
        timings["index_s"] = time.perf_counter() - started
        return files

    pipeline.build_search_files = timed
    # the index made with the pages, in this process (and its workers), so that it can be timed: a big site's
    # build makes it in a child process (pipeline.search_apart)
    child_job_possible = pipeline.child_job_possible
    pipeline.child_job_possible = lambda: False
    try:
        started = time.perf_counter()
        result = pipeline.build(pipeline.BuildOptions(content, site, templates_dir=ROOT / "templates",
                                                      theme_dir=ROOT / "theme"))
        timings["build_s"] = time.perf_counter() - started
    finally:
        pipeline.build_search_files = original
        pipeline.child_job_possible = child_job_possible
    timings["reports"] = result.reports
    return timings


def directory_stats(folder: Path) -> dict:
    files = [p for p in folder.rglob("*") if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    return {"files": len(files), "bytes": raw, "gzip": sum(served_size(p) for p in files)}


@functools.cache
def served_size(path: Path) -> int:
    data = path.read_bytes()
    return min(len(data), len(gzip.compress(data, 6)))


def segmenter_check(content: Path, sample: int = 5000) -> tuple[int, int]:
    """rjieba vs jieba on distinct Han runs of the corpus (the build uses rjieba only if they agree)."""
    import jieba
    import rjieba

    runs: list[str] = []
    seen: set[str] = set()
    for path in sorted((content / "reports").glob("*.md"))[:400]:
        for run, _ in search.runs(path.read_text(encoding="utf-8")):
            if search.is_han(run) and run not in seen:
                seen.add(run)
                runs.append(run)
    runs = runs[:sample]
    differ = sum(1 for r in runs if list(rjieba.cut_for_search(r)) != list(jieba.cut_for_search(r)))
    return len(runs), differ


# ------------------------------------------------------------------------------------------------------
# Ground truth


def query_words(query: str) -> list[str]:
    """Expected-match words of a query: each word, or a quoted phrase as one word (punctuation dropped)."""
    text = search.normalise(query)
    phrases = re.findall(r"[\"“「](.+?)[\"”」]", text)
    rest = re.sub(r"[\"“「](.+?)[\"”」]", " ", text)
    words = ["".join(_KEEP.findall(p)) for p in phrases] + [r for r, _ in search.runs(rest)]
    t2s = dict(zip(*[iter(TRAD)] * 2, strict=False)) if TRAD else {}
    return ["".join(t2s.get(ch, ch) for ch in w) for w in words if w]


TRAD = ""


def expected_sections(content: Path) -> dict[str, set[tuple[str, str]]]:
    reports = load_content(content).reports
    texts = [(r.slug, s.id, "".join(_KEEP.findall(search.normalise(s.title + s.text))))
             for r in reports for s in r.sections]
    out = {}
    for q in QUERIES:
        words = query_words(q)
        out[q] = {(slug, sid) for slug, sid, text in texts if all(w in text for w in words)}
    return out


# ------------------------------------------------------------------------------------------------------
# Browser


def serve(site: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def slug_anchor(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s and s != "index.html"]
    return (segments[-1] if segments else ""), unquote(parts.fragment)


class Recorder:
    def __init__(self, page, site: Path, base: str, prefixes: tuple[str, ...]):
        self.files: list[str] = []
        self.site, self.base, self.prefixes = site, base, prefixes
        page.on("requestfinished", self.add)

    def add(self, request) -> None:
        path = unquote(urlsplit(request.url).path).lstrip("/")
        if path.startswith(self.prefixes):
            self.files.append(path)

    def totals(self) -> tuple[int, int]:
        return len(self.files), sum(served_size(self.site / f) for f in self.files if (self.site / f).is_file())


def cold_query(browser, site: Path, base: str, q: str) -> dict:
    """One query in a fresh browser (empty cache): what the search fetched, page scripts apart."""
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page, site, base, ("search/idx/", "assets/search"))
    page.goto(f"{base}search/?q={quote(q)}")
    wait(page, q)
    context.close()
    index = [f for f in recorder.files if f.startswith("search/idx/")]
    return {"requests": len(index), "bytes": recorder.totals()[1], "files": list(recorder.files),
            "scripts": len(recorder.files) - len(index),
            "index_bytes": sum(served_size(site / f) for f in index),
            "rank_requests": sum(1 for f in index if "/d/" not in f),
            "text_requests": sum(1 for f in index if "/d/" in f)}


def ours(browser, site: Path, base: str, expected: dict) -> dict:
    first = cold_query(browser, site, base, FIRST_QUERY)
    cold = {q: cold_query(browser, site, base, q) for q in QUERIES}
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}search/?q={quote(FIRST_QUERY)}")
    wait(page, FIRST_QUERY)
    per_query = {}
    for q in QUERIES:
        answer(page, q)
        results, total, ms = answer(page, q)  # second run: warm
        per_query[q] = {"results": results, "total": total, "ms": ms}
    context.close()
    return {"first": first, "cold": cold, "queries": per_query}


def wait(page, q: str) -> None:
    escaped = q.replace("\\", "\\\\").replace('"', '\\"')
    page.wait_for_selector(f'body[data-search-answered="{escaped}"]', state="attached", timeout=60000)


def answer(page, q: str):
    """(first 10 results, hits claimed, ms in the worker for the first page)."""
    page.evaluate("() => { delete document.body.dataset.searchAnswered; }")
    page.fill("#q", q)
    wait(page, q)
    body = page.locator("body")
    ms = float(body.get_attribute("data-search-ms") or 0)
    if page.is_visible("#search-more"):  # the page shows 5 first; quality is judged on 10
        page.evaluate("() => { delete document.body.dataset.searchAnswered; }")
        page.click("#search-more")
        wait(page, q)
    hrefs = page.eval_on_selector_all(".search-result-link", "ls => ls.map(a => a.href)")
    return [slug_anchor(h) for h in hrefs][:10], int(body.get_attribute("data-search-total") or 0), ms


PAGEFIND_JS = """async ([q, shown]) => {
  const t0 = performance.now();
  const pf = await import('/pagefind/pagefind.js');
  await pf.options({ excerptLength: 30 });
  const r = await pf.search(q);
  const data = await Promise.all(r.results.slice(0, shown).map((x) => x.data()));
  return { count: r.results.length, ms: performance.now() - t0,
           results: data.map((d) => ({ url: d.url, sub: (d.sub_results || []).map((s) => s.url) })) };
}"""


def pagefind(browser, site: Path, base: str) -> dict:
    context = browser.new_context()
    page = context.new_page()
    recorder = Recorder(page, site, base, ("pagefind/",))
    page.goto(base + "robots.txt")  # a same-origin page without our CSP (Pagefind needs WebAssembly)
    page.evaluate(PAGEFIND_JS, [FIRST_QUERY, FIRST_RESULTS])  # Pagefind's own UI also shows 5 first
    first = {"requests": recorder.totals()[0], "bytes": recorder.totals()[1], "files": list(recorder.files),
             "index_requests": sum(1 for f in recorder.files if "/fragment/" not in f and not f.endswith(".js"))}
    per_query = {}
    for q in QUERIES:
        page.evaluate(PAGEFIND_JS, [q, FIRST_RESULTS])
        warm = page.evaluate(PAGEFIND_JS, [q, FIRST_RESULTS])
        ranked = page.evaluate(PAGEFIND_JS, [q, 10])
        results = []
        for r in ranked["results"]:
            slug, _ = slug_anchor(r["url"])
            anchors = [slug_anchor(s)[1] for s in r["sub"]]
            results.append((slug, anchors[0] if anchors else ""))
        per_query[q] = {"results": results, "total": warm["count"], "ms": warm["ms"]}
    context.close()
    return {"first": first, "queries": per_query}


def quality(per_query: dict, expected: dict) -> dict:
    rows = {}
    for q, got in per_query.items():
        want = expected[q]
        want_reports = {slug for slug, _ in want}
        top = got["results"][:10]
        section_hits = sum(1 for r in top if tuple(r) in want)
        report_hits = sum(1 for r in top if r[0] in want_reports)
        rows[q] = {"expected": len(want), "expected_reports": len(want_reports), "claimed": got["total"],
                   "p10_section": section_hits / len(top) if top else (1.0 if not want else 0.0),
                   "p10_report": report_hits / len(top) if top else (1.0 if not want else 0.0),
                   "r10": (section_hits / min(10, len(want))) if want else (1.0 if not top else 0.0),
                   "ms": got["ms"]}
    return rows


# ------------------------------------------------------------------------------------------------------


def main() -> int:
    global TRAD
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="reports to generate (default 10000)")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse the imported corpus in --work")
    parser.add_argument("--reuse-site", action="store_true", help="also reuse the built site and Pagefind index")
    parser.add_argument("--skip-pagefind", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    content, site = work / "content", work / "site"
    figures: dict = {"n_generated": args.n}

    if not args.reuse or not (content / "reports").is_dir():
        content = make_content(work, args.n)
    for name in ("topics.yml", "site.yml", "search.yml"):  # the current settings, also for a reused corpus
        shutil.copy(ROOT / "content" / name, content / name)
    if not args.reuse_site or not (site / "search" / "idx" / "manifest.json").exists():
        shutil.rmtree(site / "pagefind", ignore_errors=True)
        timings = build_site(content, site)
        figures.update(timings)
        print(f"built {timings['reports']} reports in {timings['build_s']:.0f} s; "
              f"search index {timings['index_s']:.1f} s")
    figures["index"] = directory_stats(site / "search" / "idx")
    figures["segmenter_runs_checked"], figures["segmenter_runs_differ"] = segmenter_check(content)
    TRAD = json.loads((site / "search" / "idx" / "manifest.json").read_text(encoding="utf-8"))["t2s"]

    if not args.skip_pagefind and not (site / "pagefind").exists():
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        figures["pagefind_seconds"] = run([sys.executable, "-m", "pagefind", "--site", str(site), "--glob",
                                           "reports/**/*.html"], stdout=subprocess.DEVNULL)
        figures["pagefind_peak_mb"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    if (site / "pagefind").exists():
        figures["pagefind_index"] = directory_stats(site / "pagefind")

    expected = expected_sections(content)
    from playwright.sync_api import sync_playwright

    server, base = serve(site)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            measured = {"ours": ours(browser, site, base, expected)}
            if not args.skip_pagefind and (site / "pagefind").exists():
                measured["pagefind"] = pagefind(browser, site, base)
            browser.close()
    finally:
        server.shutdown()
    for name, m in measured.items():
        figures[name] = {"first": m["first"], "quality": quality(m["queries"], expected)}
        if "cold" in m:
            figures[name]["cold"] = m["cold"]
    (work / "results.json").write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    report(figures)
    print(f"\nwork folder: {work} (results.json)")
    return 0


def report(f: dict) -> None:
    idx = f["index"]
    print(f"\nreports built: {f.get('reports', '?')} (from {f['n_generated']} generated)")
    if "build_s" in f:
        print(f"site build: {f['build_s']:.1f} s, of which search index {f['index_s']:.1f} s")
    print(f"segmenter: rjieba and jieba differ on {f['segmenter_runs_differ']} of {f['segmenter_runs_checked']} runs")
    engines = [e for e in ("ours", "pagefind") if e in f]
    print("\n| measure | " + " | ".join(engines) + " |")
    print("|---|" + "---|" * len(engines))

    def row(label: str, values: list[str]) -> None:
        print(f"| {label} | " + " | ".join(values) + " |")

    def first(e: str, key: str) -> str:
        return str(f[e]["first"].get(key, "-"))

    row(f"first query “{FIRST_QUERY}”, {FIRST_RESULTS} results with snippets: requests to answer it",
        [first(e, "requests") for e in engines])
    row("  of which to rank / for snippet texts (ours: d/ files)",
        [f"{first(e, 'rank_requests')} / {first(e, 'text_requests')}" if e == "ours"
         else f"{first(e, 'index_requests')} / {int(first(e, 'requests')) - int(first(e, 'index_requests'))}"
         for e in engines])
    row("  plus page scripts (ours: search.js, search-worker.js; Pagefind: in the count above)",
        [first(e, "scripts") if e == "ours" else "-" for e in engines])
    row("first query: KB as served (gzip), scripts included", [f"{f[e]['first']['bytes'] / 1024:.0f}" for e in engines])
    if "cold" in f.get("ours", {}):
        cold = f["ours"]["cold"].values()
        reqs = sorted(c["requests"] for c in cold)
        kbs = sorted(c["bytes"] / 1024 for c in cold)
        row(f"each of the {len(reqs)} queries cold: requests median / max; KB median / max",
            [f"{statistics.median(reqs):.0f} / {reqs[-1]}; {statistics.median(kbs):.0f} / {kbs[-1]:.0f}"]
            + ["-"] * (len(engines) - 1))
        row("  queries within 5 requests / within 200 KB",
            [f"{sum(r <= 5 for r in reqs)} / {sum(k <= 200 for k in kbs)}"] + ["-"] * (len(engines) - 1))
    ms = {e: [q["ms"] for q in f[e]["quality"].values()] for e in engines}
    row("warm query ms: median / max", [f"{statistics.median(ms[e]):.1f} / {max(ms[e]):.1f}" for e in engines])
    sizes = [idx, f.get("pagefind_index")]
    row("index files", [str(s["files"]) if s else "-" for s in sizes[: len(engines)]])
    row("index size on disk MB (gzip MB)",
        [f"{s['bytes'] / 2**20:.1f} ({s['gzip'] / 2**20:.1f})" if s else "-" for s in sizes[: len(engines)]])
    row("index build s", [f"{f.get('index_s', 0):.1f}", f"{f.get('pagefind_seconds', 0):.1f}"][: len(engines)])
    for key, label in (("p10_section", "precision@10, section"), ("p10_report", "precision@10, report"),
                       ("r10", "recall within first 10")):
        row(f"mean {label}", [f"{statistics.mean(q[key] for q in f[e]['quality'].values()):.2f}" for e in engines])
    print("\n| query | expected sections (reports) | " + " | ".join(f"{e} claimed / P@10 sect / P@10 rep"
                                                          for e in engines) + " | ours cold: requests (d/), KB |")
    print("|---|---|" + "---|" * (len(engines) + 1))
    for q in QUERIES:
        exp = f[engines[0]]["quality"][q]
        cells = []
        for e in engines:
            r = f[e]["quality"][q]
            cells.append(f"{r['claimed']} / {r['p10_section']:.1f} / {r['p10_report']:.1f}")
        c = f.get("ours", {}).get("cold", {}).get(q)
        cells.append(f"{c['requests']} ({c['text_requests']}), {c['bytes'] / 1024:.0f}" if c else "-")
        print(f"| {q} | {exp['expected']} ({exp['expected_reports']}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
