#!/usr/bin/env python3
"""Live-preview benchmark (issue 5): save an edited report -> the page reloaded in the browser.

    python3 bench/serve_bench.py [--n 1000] [--runs 7] [--work bench/out/serve]

Generates N reports with ../shared/bench/make_corpus.py and imports them; times a cold `build`
(no cache) and the start-up of `serve` (cold, no cache: until the page is served); then opens a
report page in Chromium (Playwright, /usr/bin/chromium) and, `--runs` times, saves the report with a
new sentence and measures until the sentence is visible in the open page (no manual reload). Prints
each run, the median (target <= 500 ms at 1,000 reports) and start-up vs cold build (target: start-up
<= cold build + 1 s). Not a test: timings vary with the machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from build_bench import make_corpus, run  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def prepare(n: int, work: Path) -> Path:
    raw, content = work / "raw", work / "content"
    make_corpus(n, raw, "txt")
    if not (content / "reports").exists() or not any((content / "reports").iterdir()):
        shutil.rmtree(content, ignore_errors=True)
        shutil.copytree(ROOT / "content", content, ignore=shutil.ignore_patterns("reports"))
        subprocess.run([sys.executable, str(ROOT / "build.py"), "import", str(raw), "--content", str(content)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return content


def start_serve(content: Path, work: Path, lines: list[str]) -> tuple[subprocess.Popen[str], str, float]:
    """Start `serve`; its output lines are appended to `lines` as they come."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "serve", "--port", "0", "--content",
                                str(content), "--no-cache"], cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        match = re.search(r"serving (http://\S+/)", line)
        if match:
            threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()  # type: ignore[arg-type]
            return process, match.group(1), time.perf_counter() - started
    sys.exit("serve did not start:\n" + "".join(lines))


def wait_idle(lines: list[str], saves: int, timeout: float = 300) -> None:
    """Until the server has finished the work of every save so far (it prints "up to date" then, the
    rest of the site and the search index included): an editor saves again seconds later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for x in lines if x.startswith("up to date")) >= saves:
            return
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "serve"))
    args = parser.parse_args()
    work = Path(args.work).resolve() / str(args.n)
    work.mkdir(parents=True, exist_ok=True)
    content = prepare(args.n, work)
    reports = sorted((content / "reports").glob("*.md"))
    cold, _, _ = run([sys.executable, str(ROOT / "build.py"), "build", "--no-cache", "--content", str(content),
                      "--out", str(work / "site")], work)

    from playwright.sync_api import sync_playwright

    lines: list[str] = []
    process, url, startup = start_serve(content, work, lines)
    latencies: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            target = reports[len(reports) // 2]
            slug = re.search(r"^slug: (\S+)", target.read_text(encoding="utf-8"), re.M)
            page_url = url + f"reports/{slug.group(1) if slug else target.stem}/"
            sent: list[str] = []
            page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
            page.goto(page_url)
            for run_number in range(args.runs):
                wait_idle(lines, run_number + 1)  # the start-up's "up to date", then one per save
                deadline = time.monotonic() + 30
                while not any('"info"' in f for f in sent[-3:]) and time.monotonic() < deadline:
                    page.wait_for_timeout(20)  # the client (re)connected after the last reload
                sent.clear()
                sentence = f"基准测试第{run_number + 1}次修改{time.time_ns()}"
                text = target.read_text(encoding="utf-8")
                at = text.index("\n## ") if "\n## " in text else len(text)
                saved = time.perf_counter()
                target.write_text(text[:at] + f"\n\n{sentence}。\n" + text[at:], encoding="utf-8")
                page.get_by_text(sentence).wait_for(timeout=120_000)
                latencies.append(time.perf_counter() - saved)
                print(f"run {run_number + 1}: saved -> visible in {latencies[-1] * 1000:,.0f} ms", flush=True)
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    output = "".join(lines)
    quick = [float(x) for x in re.findall(r"rebuilt edited report pages in ([\d.]+) s", output)]
    rebuilds = [float(x) for x in re.findall(r"rebuilt in ([\d.]+) s", output)]
    searches = [float(x) for x in re.findall(r"search index updated in ([\d.]+) s", output)]
    print(f"\n{len(reports):,} reports ({args.n:,} generated)")
    print(f"edit -> page reloaded: median {statistics.median(latencies) * 1000:,.0f} ms over {len(latencies)} runs "
          f"(min {min(latencies) * 1000:,.0f}, max {max(latencies) * 1000:,.0f}; target <= 500 ms)")
    if quick:
        print(f"  of which the edited page's render in the server: median {statistics.median(quick) * 1000:,.0f} ms")
    if rebuilds:
        print(f"  then, after the reload, the rest of the site: median {statistics.median(rebuilds) * 1000:,.0f} ms")
    if searches:
        print(f"  then, after the reload, the search index: median {statistics.median(searches) * 1000:,.0f} ms")
    print(f"serve start-up (cold, no cache): {startup:.2f} s; cold build: {cold:.2f} s "
          f"(target: start-up <= build + 1 s = {cold + 1:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
