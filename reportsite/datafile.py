"""Editable YAML data files (site.yml, topics.yml, indicators.yml …): read safely, errors located."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import fail

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~4x faster, same result


def read_yaml(path: Path) -> Any:
    """A data file, safe-loaded (by libyaml where present); bad YAML is one `path:line: …; fix` error, never a
    traceback."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise fail(str(path), mark.line + 1 if mark else 1, f"not valid YAML ({getattr(exc, 'problem', exc)})",
                   "fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise fail(str(path), 1, "not UTF-8 text", "re-save the file as UTF-8") from None
