#!/usr/bin/env python3
"""reportsite command line: import, check, build, serve. See README.md."""

from reportsite.cli import run

if __name__ == "__main__":
    run()
