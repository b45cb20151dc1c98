"""Derived view: which sections are about which topic (rules in content/topics.yml).

Assignment is explainable: every match keeps the words that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .datafile import read_yaml
from .errors import fail
from .model import SLUG_RE, Report, Section


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str
    description: str
    keywords: tuple[str, ...]
    heading_keywords: tuple[str, ...]


@dataclass(frozen=True)
class TopicRules:
    topics: tuple[Topic, ...]
    heading_weight: int = 4
    body_cap: int = 3
    min_score: int = 4


class TopicMatch(NamedTuple):
    """A section's match with a topic. A named tuple, not a dataclass, and its words as the one string
    pages show: a site of 10,000 reports has 176,000 matches, and they took 106 MB as objects with a tuple
    of words and a tuple of (word, count) pairs each."""

    topic: str  # slug
    score: int
    reason: str  # the words that matched, as pages show them: 标题含“行政复议”；正文“复议”×2


def match_reason(heading_words: Iterable[str], body_words: Iterable[tuple[str, int]]) -> str:
    return "；".join([*(f"标题含“{w}”" for w in heading_words), *(f"正文“{w}”×{n}" for w, n in body_words)])


def load_topics(content_dir: Path) -> TopicRules:
    path = content_dir / "topics.yml"
    if not path.exists():
        return TopicRules(())
    data = read_yaml(path) or {}
    topics, seen = [], set()
    raw_topics = data.get("topics") if isinstance(data, dict) else None
    if not isinstance(raw_topics, list):
        raise fail(str(path), 1, "`topics:` must be a list", "see the comment at the top of topics.yml")
    for i, raw in enumerate(raw_topics):
        line = _line_of(path, i)
        if not isinstance(raw, dict) or not raw.get("slug") or not raw.get("name"):
            raise fail(str(path), line, f"topic #{i + 1} needs `slug` and `name`", "add both fields")
        slug = str(raw["slug"])
        if not SLUG_RE.match(slug) or slug in seen:
            raise fail(str(path), line, f"topic slug {slug!r} is not unique lower-case ASCII",
                       "use letters, digits and hyphens, once each")
        seen.add(slug)
        topics.append(Topic(slug, str(raw["name"]), str(raw.get("description", "")),
                            tuple(str(w) for w in raw.get("keywords") or ()),
                            tuple(str(w) for w in raw.get("heading_keywords") or ())))
    return TopicRules(tuple(topics), int(data.get("heading_weight", 4)), int(data.get("body_cap", 3)),
                      int(data.get("min_score", 4)))


def _line_of(path: Path, index: int) -> int:
    """Line of the index-th `- slug:` entry, for error messages."""
    count = -1
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("- "):
            count += 1
            if count == index:
                return n
    return 1


def match_section(section: Section, topic: Topic, rules: TopicRules) -> TopicMatch | None:
    heading_words = tuple(w for w in (*topic.heading_keywords, *topic.keywords) if w in section.title)
    text = section.text
    body_words = tuple((w, min(text.count(w), rules.body_cap)) for w in topic.keywords if w in text)
    score = rules.heading_weight * len(heading_words) + sum(n for _, n in body_words)
    if score < rules.min_score:
        return None
    return TopicMatch(topic.slug, score, match_reason(heading_words, body_words))


def assign_topics(report: Report, rules: TopicRules) -> dict[str, tuple[TopicMatch, ...]]:
    """section id -> its topic matches, best first. The same as `match_section` for every section and
    topic, but each keyword is looked for once per section, and only topics that have one are scored."""
    assigned: dict[str, tuple[TopicMatch, ...]] = {}
    topics = rules.topics
    body_keywords = tuple(dict.fromkeys(w for t in topics for w in t.keywords))
    title_keywords = tuple(dict.fromkeys(w for t in topics for w in (*t.heading_keywords, *t.keywords)))
    topics_of: dict[str, list[int]] = {}  # keyword -> indexes of the topics that list it
    for i, topic in enumerate(topics):
        for w in (*topic.heading_keywords, *topic.keywords):
            topics_of.setdefault(w, []).append(i)
    every_topic = range(len(topics))
    weight, cap, min_score = rules.heading_weight, rules.body_cap, rules.min_score
    for section in report.sections:
        title, text = section.title, section.text
        in_title = {w for w in title_keywords if w in title}
        counts = {w: min(text.count(w), cap) for w in body_keywords if w in text}
        if min_score > 0:  # a topic none of whose words is here scores 0: it cannot match
            touched = {i for w in (*in_title, *counts) for i in topics_of[w]}
            if not touched:
                continue
            candidates = sorted(touched)
        else:
            candidates = every_topic
        matches = []
        for i in candidates:
            topic = topics[i]
            heading_words = tuple(w for w in (*topic.heading_keywords, *topic.keywords) if w in in_title)
            body_words = tuple((w, counts[w]) for w in topic.keywords if w in counts)
            score = weight * len(heading_words) + sum(n for _, n in body_words)
            if score >= min_score:
                matches.append(TopicMatch(topic.slug, score, match_reason(heading_words, body_words)))
        if matches:
            assigned[section.id] = tuple(sorted(matches, key=lambda m: -m.score))
    return assigned
