"""The project's one error type: every problem a user can cause is reported as `path:line: what; fix`."""

from __future__ import annotations

import sys
from typing import NamedTuple


class Problem(NamedTuple):
    """One located problem with a hint on how to fix it. (A named tuple: a build of 10,000 reports may keep
    5,000 warnings, which a rebuild reads back and keeps again; as a frozen dataclass they took 2.3 times
    as long to read, and 5 times as long to keep.)"""

    path: str
    line: int
    message: str
    hint: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}; {self.hint}"


class ReportsiteError(Exception):
    """Raised for bad input; carries one or more problems, printed one per line, never a traceback."""

    def __init__(self, problems: Problem | list[Problem]):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type, tuple[list[Problem]]]:  # raised in a worker process, shown by the parent
        return ReportsiteError, (self.problems,)


def fail(path: str, line: int, message: str, hint: str) -> ReportsiteError:
    return ReportsiteError(Problem(str(path), line, message, hint))


WARNINGS_SHOWN = 20  # a big import repeats the same warning thousands of times; errors are always all shown


def print_problems(problems: list[Problem] | tuple[Problem, ...], warnings_shown: int | None = WARNINGS_SHOWN) -> None:
    """One line per problem on stderr; beyond `warnings_shown` warnings, a count instead."""
    warnings = 0
    for problem in problems:
        if problem.severity == "warning":
            warnings += 1
            if warnings_shown is not None and warnings > warnings_shown:
                continue
        prefix = "warning: " if problem.severity == "warning" else ""
        print(f"{prefix}{problem}", file=sys.stderr)
    if warnings_shown is not None and warnings > warnings_shown:
        print(f"warning: {warnings - warnings_shown:,} more warning(s) not shown; "
              "`python3 build.py check` lists them all", file=sys.stderr)
