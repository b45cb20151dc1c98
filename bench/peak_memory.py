#!/usr/bin/env python3
"""Where a command's memory is at its peak: each process of its tree at that moment.

    python3 bench/peak_memory.py [--every 0.1] -- python3 build.py build

Runs the command (its output hidden), reads the PSS of the command's process and of every process
below it (`/proc/PID/smaps_rollup`, as build_bench.py does) every `--every` seconds, and prints the
largest total, when it came, the wall time, and each process's PSS at that moment, indented under its
parent. A build's tree: the build, the search index's child, and that child's workers. For one edit:
change a report, then run this. Not a test: it reads what the machine shows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_bench import tree_pss_kb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak: tuple[int, float, list[tuple[int, int, int]]] = (0, 0.0, [])
    while process.poll() is None:
        tree = tree_pss_kb(process.pid)
        total = sum(kb for _, _, kb in tree)
        if total > peak[0]:
            peak = (total, time.perf_counter() - started, tree)
        time.sleep(args.every)
    wall = time.perf_counter() - started
    print(f"peak {peak[0] / 1024:,.0f} MB (PSS, all processes) at {peak[1]:.1f} s; wall {wall:.1f} s; "
          f"exit {process.returncode}")
    for pid, depth, kb in peak[2]:
        print(f"  {'  ' * depth}{pid}: {kb / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
