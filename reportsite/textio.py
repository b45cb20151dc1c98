"""Raw bytes to text: encoding detection and line-end normalisation for scraped report files."""

from __future__ import annotations

import codecs
import re
import unicodedata

from .errors import fail

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _looks_like_utf16(data: bytes) -> str | None:
    """UTF-16 without BOM: CJK and ASCII text has a NUL in every other byte for ASCII characters."""
    if len(data) < 4 or len(data) % 2:
        return None
    even_nuls = data[0::2].count(0)
    odd_nuls = data[1::2].count(0)
    half = len(data) // 2
    if odd_nuls > half * 0.2 and even_nuls == 0:
        return "utf-16-le"
    if even_nuls > half * 0.2 and odd_nuls == 0:
        return "utf-16-be"
    return None


def detect_encoding(data: bytes) -> str | None:
    """Return the codec that decodes `data` strictly, or None when no candidate does."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    utf16 = _looks_like_utf16(data)
    for codec in ([utf16] if utf16 else []) + ["utf-8", "gb18030"]:
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            continue
        return codec
    return None


def _control_ratio(text: str) -> float:
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t\f")
    return controls / max(len(text), 1)


def decode_report(data: bytes, path: str) -> tuple[str, str]:
    """Decode raw report bytes to text with `\\n` line ends; return (text, encoding).

    Raises ReportsiteError for empty, binary or undecodable input.
    """
    if not data.strip():
        raise fail(path, 1, "the file is empty", "remove it or replace it with the report text")
    codec = detect_encoding(data)
    if codec is None and b"\x00" in data:
        raise fail(path, 1, "this is a binary file, not report text",
                   "import the plain text of the report (copy it from the web page)")
    if codec is None:
        line = data[: _first_bad_offset(data)].count(b"\n") + 1
        raise fail(path, line, "bytes are neither UTF-8, UTF-16 nor GB18030",
                   "re-save the file as UTF-8 and import it again")
    text = data.decode(codec)
    if "\x00" in text or _control_ratio(text) > 0.01:
        raise fail(path, 1, "this is a binary file, not report text",
                   "import the plain text of the report (copy it from the web page)")
    return normalise_line_ends(text), codec


def _first_bad_offset(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return 0


def normalise_line_ends(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


_CONTROLS = {c: " " for c in range(32) if chr(c) not in "\n\t"} | {0x7F: " "}


_CONTROL_CHARACTER = re.compile("[" + re.escape("".join(map(chr, sorted(_CONTROLS)))) + "]")


def blank_control_characters(text: str) -> tuple[str, int]:
    """Control characters (BEL, ESC …) are invalid in HTML and YAML text: they become spaces. (text,
    how many); one quick scan for the usual text that has none."""
    if not _CONTROL_CHARACTER.search(text):
        return text, 0
    return _CONTROL_CHARACTER.subn(" ", text)
