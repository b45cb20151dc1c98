"""cli.py: the command line's entry point `run`, as build.py and the `reportsite` script call it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

# `run` with the command's work replaced by a report of the process's state, in a fresh interpreter
REPORT_STATE = """
import gc, sys
from reportsite import cli
cli.execute = lambda args: print(args.command, "collects" if gc.isenabled() else "does not collect") or 3
sys.argv = ["reportsite", *sys.argv[1:]]
cli.run()
"""


@pytest.mark.parametrize(("command", "state"), [("build", "does not collect"), ("check", "does not collect"),
                                                ("serve", "collects")])
def test_a_command_that_ends_collects_no_garbage_and_the_live_preview_does(command: str, state: str) -> None:
    result = subprocess.run([sys.executable, "-c", REPORT_STATE, command], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == f"{command} {state}"
    assert result.returncode == 3  # the command's exit status, through os._exit
