"""render.py: the plain-paragraph path gives exactly the HTML Python-Markdown gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reportsite.model import load_content
from reportsite.render import make_markdown, markdown_to_html, plain_markdown_html, sanitized

from .conftest import CONTENT_DIR

MD = make_markdown()


def python_markdown_html(text: str) -> str:
    MD.reset()
    return sanitized(MD.convert(text))


def test_every_section_of_the_samples_takes_the_plain_path_with_python_markdowns_html() -> None:
    sections = [s for r in load_content(CONTENT_DIR).reports for s in r.sections if s.body_md]
    assert len(sections) > 40
    plain = [s for s in sections if plain_markdown_html(s.body_md) is not None]
    assert len(plain) == len(sections)  # the importer's Markdown: paragraphs, lead-ins, the closing block
    for section in sections:
        assert markdown_to_html(MD, section.body_md) == python_markdown_html(section.body_md), section.id
    assert any("<strong>" in markdown_to_html(MD, s.body_md) for s in sections)
    assert any('<p class="closing">' in markdown_to_html(MD, s.body_md) for s in sections)


def test_markdown_beyond_plain_paragraphs_goes_to_python_markdown() -> None:
    for text in ("- 一项\n- 二项", "见[通知](https://example.org/)。", "1. 第一\n2. 第二", "*强调*", "a ** b ** c",
                 "行一\n行二", "`代码`", "<b>粗</b>", "&copy; 版权"):
        assert plain_markdown_html(text) is None, text
        assert markdown_to_html(MD, text) == python_markdown_html(text)


PIECES = ["一是", "加强", "。", "，", "2024", "1", ".", " ", "*", "**", "\\", "\\*", "\\[", "_", "[", "]", "(", ")",
          "<", ">", "&", "&lt;", "&amp;", "&#65;", "#", "-", "+", "!", "`", "{", "}", "|", "\n", "\n\n", "  \n",
          "\n{: .closing }", "\t", "\r", "\x02", "\x03", "\u3000", "\xa0", "&nbsp;", "　"]


@settings(max_examples=600)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_any_text_renders_as_python_markdown_renders_it(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert markdown_to_html(MD, text) == python_markdown_html(text)
