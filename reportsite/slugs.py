"""ASCII slugs for URLs: GB/T 2260 code + year, or pinyin where a name has no code."""

from __future__ import annotations

import re

OWN_NAME_LEVELS = ("department", "town", "street", "other")


def pinyin_slug(text: str, max_words: int = 6) -> str:
    from pypinyin import lazy_pinyin  # here: 0.1 s to import, and most builds need no pinyin

    words = (re.sub(r"[^a-z0-9]+", "", w.lower()) for w in lazy_pinyin(text, errors=lambda s: list(s)))
    return "-".join([w for w in words if w][:max_words])


def default_slug(*, adcode: str | None, name: str, level: str, city: str | None, county: str | None,
                 year: int | None, issuer: str | None) -> str:
    """130502-2023; departments, towns and zones add their own name in pinyin: 370214-sifaju-2024."""
    base = adcode or pinyin_slug(name, 8)
    if level in OWN_NAME_LEVELS:
        own = issuer if level == "department" and issuer else name
        for prefix in (city or "", county or "", name):
            if level == "department" and prefix and own.startswith(prefix):
                own = own[len(prefix):]
        base = f"{base}-{pinyin_slug(own, 8).replace('-', '')}"
    return f"{base}-{year}" if year else base
