"""Topic assignment: assign_topics (keywords looked for once per section) gives what match_section gives."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reportsite.model import Report, Section, load_content
from reportsite.topics import Topic, TopicRules, assign_topics, load_topics, match_section

from .conftest import CONTENT_DIR


@pytest.fixture(scope="module")
def reports() -> tuple[Report, ...]:
    return load_content(CONTENT_DIR).reports


def one_section_at_a_time(report: Report, rules: TopicRules) -> dict[str, tuple]:
    """The definition: every topic's match_section for every section, best first."""
    assigned = {}
    for section in report.sections:
        matches = [m for t in rules.topics if (m := match_section(section, t, rules))]
        if matches:
            assigned[section.id] = tuple(sorted(matches, key=lambda m: -m.score))
    return assigned


@pytest.mark.parametrize("change", [
    {},
    {"min_score": 0},  # every topic matches every section, with or without a keyword
    {"min_score": 1, "body_cap": 1},
    {"heading_weight": 0, "min_score": 2},
])
def test_assignment_is_match_section_for_every_section_and_topic(reports, change) -> None:
    rules = dataclasses.replace(load_topics(CONTENT_DIR), **change)
    assigned = {r.slug: assign_topics(r, rules) for r in reports}
    assert assigned == {r.slug: one_section_at_a_time(r, rules) for r in reports}
    assert any(assigned.values())


def test_a_keyword_in_two_topics_and_in_both_lists_counts_for_each(reports) -> None:
    rules = load_topics(CONTENT_DIR)
    first = rules.topics[0]
    shared = dataclasses.replace(rules.topics[1], heading_keywords=first.keywords[:2],
                                 keywords=(*rules.topics[1].keywords, *first.keywords))
    rules = dataclasses.replace(rules, topics=(first, shared, *rules.topics[2:]))
    assigned = {r.slug: assign_topics(r, rules) for r in reports}
    assert assigned == {r.slug: one_section_at_a_time(r, rules) for r in reports}
    assert any(m.topic == shared.slug for found in assigned.values() for ms in found.values() for m in ms)


# Few letters, so words overlap and repeat; now and then an empty word or a control character.
WORDS = st.text(alphabet="法治政", min_size=1, max_size=3) | st.sampled_from(["", "\x00", "法\x00治"])


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(alphabet="法治政\x00 。", max_size=30), min_size=1, max_size=5),
       keywords=st.lists(st.lists(WORDS, max_size=4), min_size=1, max_size=4), min_score=st.integers(0, 3))
@example(texts=["法法法 法法", "政"], keywords=[["法法"]], min_score=1)  # str.count counts without overlaps
@example(texts=["治法", "法治"], keywords=[["法法"], ["法"]], min_score=1)  # no word across two sections
def test_any_sections_and_keywords_match_as_match_section_says(reports, texts, keywords, min_score) -> None:
    sections = tuple(Section(f"s{i}", 2, text[:6], text, i, None) for i, text in enumerate(texts))
    report = dataclasses.replace(reports[0], sections=sections)
    topics = tuple(Topic(f"t{i}", "名", "", tuple(words), tuple(words[:1])) for i, words in enumerate(keywords))
    rules = TopicRules(topics, heading_weight=2, body_cap=3, min_score=min_score)
    assert assign_topics(report, rules) == one_section_at_a_time(report, rules)


def test_a_match_names_the_words_that_made_it_and_how_often(reports) -> None:
    """What the report page and topic pages show as 匹配依据: each word of the heading, each word of the text
    with its occurrences (up to body_cap), and nothing else; the score is theirs."""
    import re

    rules = load_topics(CONTENT_DIR)
    topics = {t.slug: t for t in rules.topics}
    checked = 0
    for report in reports:
        sections = {s.id: s for s in report.sections}
        for section_id, matches in assign_topics(report, rules).items():
            section = sections[section_id]
            for match in matches:
                topic = topics[match.topic]
                heading = re.findall(r"标题含“([^”]+)”", match.reason)
                body = [(w, int(n)) for w, n in re.findall(r"正文“([^”]+)”×(\d+)", match.reason)]
                assert len(heading) + len(body) == match.reason.count("；") + 1
                assert heading == [w for w in (*topic.heading_keywords, *topic.keywords) if w in section.title]
                assert body == [(w, min(section.text.count(w), rules.body_cap)) for w in topic.keywords
                                if w in section.text]
                assert match.score == rules.heading_weight * len(heading) + sum(n for _, n in body)
                checked += 1
    assert checked > 20
