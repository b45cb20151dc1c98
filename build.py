#!/usr/bin/env python3
"""reportsite command line: import, check, build, serve. See README.md."""

import sys

from reportsite.cli import main

if __name__ == "__main__":
    sys.exit(main())
