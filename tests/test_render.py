"""render.py: the plain-paragraph path gives exactly the HTML Python-Markdown gives; relative links resolve."""

from __future__ import annotations

import posixpath

from hypothesis import given, settings
from hypothesis import strategies as st

from reportsite.model import load_content
from reportsite.render import (
    MarkdownOnDemand,
    excerpt,
    make_markdown,
    markdown_to_html,
    plain_markdown_html,
    relative_url,
    sanitized,
)

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


def test_python_markdown_is_made_only_for_a_text_that_needs_it() -> None:
    """A report page's converter (MarkdownOnDemand) makes Python-Markdown when a text first goes beyond plain
    paragraphs, configured as by the extensions' names (make_markdown passes them as objects)."""
    import markdown

    by_name = markdown.Markdown(extensions=["attr_list", "sane_lists"], output_format="html")
    md = MarkdownOnDemand()
    plain = "一是加强**组织领导**。\n\n二是完善制度。"
    assert markdown_to_html(md, plain) == python_markdown_html(plain) and md._md is None
    for text in ("- 一项\n- 二项", "1. 第一\n2. 第二", "段落\n{: .closing }", "见[通知](https://example.org/)。"):
        by_name.reset()
        assert markdown_to_html(md, text) == python_markdown_html(text) == sanitized(by_name.convert(text))
    assert md._md is not None


PIECES = ["一是", "加强", "。", "，", "2024", "1", ".", " ", "*", "**", "\\", "\\*", "\\[", "_", "[", "]", "(", ")",
          "<", ">", "&", "&lt;", "&amp;", "&#65;", "#", "-", "+", "!", "`", "{", "}", "|", "\n", "\n\n", "  \n",
          "\n{: .closing }", "\t", "\r", "\x02", "\x03", "\u3000", "\xa0", "&nbsp;", "　",
          "\x7f", "\x85", "\u2028", "\ufeff", "\U0001f600"]  # characters the sanitizer might spell otherwise


@settings(max_examples=600)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_any_text_renders_as_python_markdown_renders_it(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert markdown_to_html(MD, text) == python_markdown_html(text)


@settings(max_examples=1000)
@given(st.text(alphabet=st.sampled_from(["法", "治", "a", " ", "\n", "\t", "\u3000", "\xa0"]), max_size=600),
       st.integers(0, 200))
def test_an_excerpt_is_the_texts_head_without_spaces(text: str, length: int) -> None:
    whole = "".join(text.split())  # the text without spaces of any kind, as \s+ finds them
    shown = excerpt(text, length)
    assert shown == (whole if len(whole) <= length else whole[:length] + "…")


def test_a_sections_excerpt_on_the_samples() -> None:
    texts = [s.text for r in load_content(CONTENT_DIR).reports for s in r.sections if len(s.text) > 400]
    assert texts
    for text in texts:
        assert excerpt(text, 160).endswith("…") and len(excerpt(text, 160)) == 161
        assert excerpt(text, 160)[:-1] == "".join(text.split())[:160]


SEGMENTS = st.sampled_from(["reports", "130502-2023", "topics", "index.html", "assets", "site.css", "regions"])


@given(st.lists(SEGMENTS, max_size=3), st.booleans(), st.lists(SEGMENTS, max_size=3), st.booleans(),
       st.sampled_from(["", "#s2-1"]))
def test_relative_links_lead_back_to_their_target(page_parts: list[str], page_is_dir: bool, target_parts: list[str],
                                                   target_is_dir: bool, anchor: str) -> None:
    page = "/".join(page_parts) + ("/" if page_is_dir and page_parts else "")
    target = "/".join(target_parts) + ("/" if target_is_dir and target_parts else "")
    link = relative_url(page, target + anchor)
    if not target and anchor:
        assert link == anchor  # on the same page
        return
    assert link.endswith(anchor) and not link.startswith("/")
    path = link[: len(link) - len(anchor)]
    folder = page.rstrip("/") if page.endswith("/") else posixpath.dirname(page)
    assert posixpath.normpath(posixpath.join(folder, path)) == posixpath.normpath(target or ".")  # "": the root
    assert path.endswith("/") == (target.endswith("/") or not target)
