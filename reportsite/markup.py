"""Plain report text <-> the Markdown we write, and the way back (for the lossless check).

Import turns numbered headings into ATX headings, bolds 一是/二是 lead-ins, marks the closing
signature block, and escapes whatever Markdown would otherwise read as markup. `strip_markup` undoes
exactly that, so `strip_markup(to_markdown(text))` equals `text` modulo whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CN_DIGITS = "一二三四五六七八九十"
_H2 = re.compile(rf"^([{CN_DIGITS}]{{1,3}})\s*[、.．]")
_H3 = re.compile(rf"^[(（]\s*([{CN_DIGITS}]{{1,3}})\s*[)）]")
_H4 = re.compile(r"^(?:([0-9０-９]{1,2})\s*[.．、](?![0-9０-９])|[(（]\s*([0-9０-９]{1,2})\s*[)）])")
_SENTENCE_END = re.compile(r"[。！？；]")
_DATE_LINE = re.compile(r"^[0-9〇零一二三四五六七八九十○Ｏ０-９]{4}\s*年\s*[0-9一二三四五六七八九十０-９]{1,3}\s*月"
                        r"\s*[0-9一二三四五六七八九十０-９]{1,3}\s*日$")
_LEAD_IN = re.compile(rf"(^|(?<=[。；]))([{CN_DIGITS}]{{1,3}}是)")
HEADING_MAX = 80
CLOSING_CLASS = "{: .closing }"


_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CN_DIGIT_VALUES = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "○": 0, "Ｏ": 0}


def _cn_digit(char: str) -> int:
    try:
        return _CN_DIGIT_VALUES[char]
    except KeyError:
        raise ValueError(f"not a Chinese numeral: {char!r}") from None


def cn_int(text: str) -> int:
    """二〇二四 -> 2024, 十二 -> 12, 二十 -> 20, ２３ -> 23 (the numbers of headings and dates)."""
    text = text.strip().translate(_FULL_WIDTH_DIGITS)
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_cn_digit(tens) if tens else 1) * 10 + (_cn_digit(ones) if ones else 0)
    if not text:
        raise ValueError("empty numeral")
    return int("".join(str(_cn_digit(c)) for c in text))


@dataclass(frozen=True)
class HeadingMatch:
    level: int  # 2, 3 or 4
    number: str  # 一, 二 ... or 1, 2 ...


def match_heading(line: str) -> HeadingMatch | None:
    for level, pattern in ((2, _H2), (3, _H3), (4, _H4)):
        m = pattern.match(line)
        if m:
            return HeadingMatch(level, next(g for g in m.groups() if g))
    return None


def split_heading(line: str) -> tuple[str, str] | None:
    """(heading, rest) when a numbered line opens a section; None when it is a numbered paragraph.

    Scraped reports often run a heading and its first paragraph together: `(一)标题。一是……`.
    """
    if len(line) <= HEADING_MAX and not _SENTENCE_END.search(line[:-1]):
        return line, ""
    m = _SENTENCE_END.search(line)
    if m and m.end() <= HEADING_MAX:
        return line[: m.end()], line[m.end():].strip()
    return None


def is_date_line(line: str) -> bool:
    return bool(_DATE_LINE.match(line.strip()))


# --- escaping ---------------------------------------------------------------------------------------

_INLINE_SPECIALS = re.compile(r"([\\`*_\[\]{}])")
_ENTITY_LIKE = re.compile(r"&(?=#?\w+;)")
_LINE_START_SPECIALS = re.compile(r"^(#|>|[-+=](?=\s|$)|\d+(?=[.)]\s))")


def escape_text(text: str) -> str:
    """Escape a plain-text line so Python-Markdown renders it literally."""
    text = _INLINE_SPECIALS.sub(r"\\\1", text)
    text = _ENTITY_LIKE.sub("&amp;", text)
    text = text.replace("<", "&lt;")
    m = _LINE_START_SPECIALS.match(text)
    if m and m.group(1).isdigit():
        text = m.group(1) + "\\" + text[m.end():]
    elif m:
        text = "\\" + text
    return text


_UNESCAPE = re.compile(r"\\(.)|\*\*|&lt;|&amp;|^#{1,6}[ \t]+|[ \t]*\{[:#][^}\n]*\}[ \t]*$", re.MULTILINE)


def strip_markup(markdown: str) -> str:
    """The plain text of Markdown written by `to_markdown` (also fine for simple hand edits)."""

    def replace(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return m.group(1)
        return {"&lt;": "<", "&amp;": "&"}.get(m.group(0), "")

    return _UNESCAPE.sub(replace, markdown)


def bold_lead_ins(escaped: str) -> str:
    """**一是强化责任体系。**…: bold each 一是/二是 lead-in up to the end of its first clause."""
    out: list[str] = []
    pos = 0
    for m in _LEAD_IN.finditer(escaped):
        start = m.start(2)
        end_m = _SENTENCE_END.search(escaped, m.end(2))
        end = end_m.end() if end_m and end_m.end() - start <= 40 else m.end(2)
        if start < pos:
            continue
        out.append(escaped[pos:start])
        out.append(f"**{escaped[start:end]}**")
        pos = end
    out.append(escaped[pos:])
    return "".join(out)


# --- text to Markdown ---------------------------------------------------------------------------------

_LINE_ENDS_SENTENCE = re.compile(r"[。！？；：:”」』）)]$")


def _join_broken_lines(lines: list[str]) -> list[str]:
    """A line cut mid-sentence (`纳入中青年干部` / `培训班…`) continues in the next line."""
    joined: list[str] = []
    for line in lines:
        if (joined and joined[-1] and line and not _LINE_ENDS_SENTENCE.search(joined[-1])
                and not match_heading(line) and not match_heading(joined[-1])
                and not is_date_line(line) and len(joined[-1]) > HEADING_MAX):
            joined[-1] += line
        else:
            joined.append(line)
    return joined


def _closing_block(lines: list[str]) -> int:
    """Index where the closing signature + date block starts, or len(lines) when there is none."""
    body = [i for i, line in enumerate(lines) if line]
    if not body or not is_date_line(lines[body[-1]]):
        return len(lines)
    start = body[-1]
    for i in reversed(body[:-1][-2:]):
        line = lines[i]
        if len(line) <= 30 and not _SENTENCE_END.search(line) and not match_heading(line):
            start = i
        else:
            break
    return start


def to_markdown(lines: list[str]) -> str:
    """Body lines (chrome and title already removed, stripped) to Markdown."""
    lines = _join_broken_lines(lines)
    closing_at = _closing_block(lines)
    blocks: list[str] = []
    for line in lines[:closing_at]:
        if not line:
            continue
        heading = match_heading(line)
        split = split_heading(line) if heading else None
        if heading and split:
            head, rest = split
            blocks.append("#" * heading.level + " " + escape_text(head))
            if rest:
                blocks.append(bold_lead_ins(escape_text(rest)))
        else:
            blocks.append(bold_lead_ins(escape_text(line)))
    closing = [escape_text(line) for line in lines[closing_at:] if line]
    if closing:
        blocks.append("  \n".join(closing) + "\n" + CLOSING_CLASS)
    return "\n\n".join(blocks) + "\n"
