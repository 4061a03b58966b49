"""Ticket and NPS-comment texts: each drawn from one known topic, in a tone a lexicon reads.

A text is one sentence of its topic (the topic's own vocabulary) followed by a sentence of
its tone (generic words, shared by every topic), so a lexicon sentiment scorer reads the
tone and a theme finder has to find the topics from their vocabulary. Which topic a text
gets depends on the account's state: `problem` topics come with negative tones, `growth`
topics with seat pressure (demand over the licensed seats), `question` topics with neutral
ones. The true topic of every text goes to the side table `text_topics` (never read by the
product), so a test can score how well the themes recover the topics. The topic set is a
setting (`SimulationConfig.topics`), so a test can simulate a company with other words.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from features.simulate.arrow import table

TopicKind = Literal["problem", "growth", "question"]


class Topic(BaseModel):
    """One thing customers write about: its name, what brings it up, and its own words
    (noun phrases that fill the generic sentence frames of its kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kind: TopicKind
    terms: tuple[str, ...] = Field(min_length=4)


DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic(
        name="billing and invoices",
        kind="problem",
        terms=(
            "the invoice",
            "the billing contact",
            "a double charge",
            "the card payment",
            "the credit note",
            "the billing address",
            "the invoice total",
            "the VAT number",
        ),
    ),
    Topic(
        name="slow dashboards",
        kind="problem",
        terms=(
            "the dashboard",
            "page loading",
            "query timeouts",
            "chart rendering",
            "the dashboard filters",
            "slow searches",
            "load times",
            "the home dashboard",
        ),
    ),
    Topic(
        name="login and SSO",
        kind="problem",
        terms=(
            "SSO login",
            "the SAML certificate",
            "password resets",
            "two-factor codes",
            "the sign-in page",
            "login sessions",
            "the identity provider",
            "SSO users",
        ),
    ),
    Topic(
        name="CRM sync",
        kind="problem",
        terms=(
            "the Salesforce sync",
            "CRM records",
            "the nightly sync",
            "duplicate contacts",
            "field mapping",
            "the HubSpot connector",
            "synced deals",
            "CRM fields",
        ),
    ),
    Topic(
        name="more seats and plan upgrade",
        kind="growth",
        terms=(
            "more seats",
            "the seat limit",
            "a plan upgrade",
            "extra licences",
            "the Enterprise plan",
            "seat pricing",
            "the licence count",
            "the larger plan",
        ),
    ),
    Topic(
        name="API and automation",
        kind="growth",
        terms=(
            "the API",
            "webhooks",
            "API rate limits",
            "workflow automation",
            "API tokens",
            "automated approvals",
            "bulk API calls",
            "the automation builder",
        ),
    ),
    Topic(
        name="reports and exports",
        kind="question",
        terms=(
            "CSV exports",
            "the quarterly report",
            "PDF exports",
            "scheduled reports",
            "report filters",
            "the export button",
            "report columns",
            "Excel exports",
        ),
    ),
    Topic(
        name="onboarding and training",
        kind="question",
        terms=(
            "onboarding sessions",
            "admin training",
            "training material",
            "the onboarding call",
            "onboarding webinars",
            "training for new hires",
            "the onboarding plan",
            "a training session",
        ),
    ),
)

# Sentence frames by kind, filled with two terms of the topic ({a}, {b}): their own words
# are few and shared by every topic of the kind, as a support desk's phrasing is.
FRAMES: dict[TopicKind, tuple[str, ...]] = {
    "problem": (
        "{a} is broken again.",
        "We have a problem with {a} and {b}.",
        "{a} fails, and so does {b}.",
        "{a} stopped working after the update to {b}.",
        "Errors with {a} since {b} changed.",
        "{a} is not working, {b} either.",
    ),
    "growth": (
        "We would like {a} and {b}.",
        "What would {a} cost, with {b}?",
        "Can we get {a} for the rest of the company?",
        "Please send a quote for {a} and {b}.",
        "We plan to roll out {a} and {b} next quarter.",
        "Interested in {a}.",
    ),
    "question": (
        "How do we set up {a} with {b}?",
        "Where do we find {a}?",
        "Is there documentation on {a} and {b}?",
        "Can you explain {a}?",
        "Question about {a} and {b}.",
        "How does {a} work with {b}?",
    ),
}

# Tone sentences: sentiment words only, no topic words, many of them so no single tone
# word ties texts together more strongly than their topic does.
TONE_SENTENCES: dict[int, tuple[str, ...]] = {
    -1: (
        "This is unacceptable and we are very frustrated.",
        "Terrible experience, nobody has fixed it yet.",
        "We are angry, this is a serious problem.",
        "Awful week, our team is disappointed.",
        "Horrible, we are considering other options.",
        "Still broken, this is the worst.",
        "Really annoyed that this keeps happening.",
        "Fed up, please escalate urgently.",
    ),
    0: (
        "Please advise.",
        "Can you check?",
        "Any documentation would help.",
        "Let us know the next steps.",
        "Thanks in advance.",
        "Waiting for your reply.",
        "Not urgent.",
        "Please confirm.",
    ),
    1: (
        "Thanks for the quick help, great support as always!",
        "Love the product, excellent work.",
        "Happy with everything else, wonderful team.",
        "Great job, thank you so much.",
        "Really appreciate your help, awesome service.",
        "Fantastic support, thanks again!",
    ),
}

# How strongly each kind of topic is drawn by tone (-1, 0, +1) and by seat pressure.
KIND_TONE_WEIGHT: dict[TopicKind, tuple[float, float, float]] = {
    "problem": (4.0, 0.6, 0.4),
    "growth": (0.3, 0.8, 1.5),
    "question": (0.6, 1.6, 1.0),
}
PRESSURE_WEIGHT: dict[TopicKind, float] = {"problem": 1.0, "growth": 5.0, "question": 1.0}
NPS_COMMENT_SHARE = 0.35


def draw_topics(
    tone: np.ndarray, pressure: np.ndarray, topics: tuple[Topic, ...], rng: np.random.Generator
) -> np.ndarray:
    """Index into `topics` per text, weighted by its tone and its account's seat pressure."""
    kinds = [t.kind for t in topics]
    weight = np.empty((tone.size, len(topics)))
    for j, kind in enumerate(kinds):
        by_tone = np.asarray(KIND_TONE_WEIGHT[kind])[np.asarray(tone, dtype=np.int64) + 1]
        weight[:, j] = by_tone * np.where(pressure, PRESSURE_WEIGHT[kind], 1.0)
    cum = np.cumsum(weight, axis=1)
    u = rng.random(tone.size) * cum[:, -1]
    return (u[:, None] >= cum).sum(axis=1).astype(np.int64)


def compose(
    tone: np.ndarray, topic: np.ndarray, topics: tuple[Topic, ...], rng: np.random.Generator
) -> np.ndarray:
    """The text of each (tone, topic): a frame of the topic's kind filled with two of its
    terms, then a sentence of the tone."""
    tone = np.asarray(tone, dtype=np.int64)
    out = np.empty(tone.size, dtype=object)
    for j, spec in enumerate(topics):
        rows = np.flatnonzero(topic == j)
        frames = FRAMES[spec.kind]
        k = len(spec.terms)
        frame = rng.integers(0, len(frames), rows.size)
        a = rng.integers(0, k, rows.size)
        b = (a + rng.integers(1, k, rows.size)) % k  # another term than a
        # 840 is a multiple of every pool size, so each closing of a pool is equally likely
        pick = rng.integers(0, 840, rows.size)
        closing = [
            TONE_SENTENCES[int(v)][i % len(TONE_SENTENCES[int(v)])]
            for v, i in zip(tone[rows], pick, strict=True)
        ]
        for i, row in enumerate(rows):
            text = frames[frame[i]].format(a=spec.terms[a[i]], b=spec.terms[b[i]])
            out[row] = f"{text[0].upper()}{text[1:]} {closing[i]}"
    return out


def render(
    tone: np.ndarray,
    rng: np.random.Generator,
    *,
    pressure: np.ndarray | None = None,
    topics: tuple[Topic, ...] = DEFAULT_TOPICS,
) -> tuple[np.ndarray, np.ndarray]:
    """Ticket texts for tones -1 / 0 / +1, and the index of each text's true topic."""
    tone = np.asarray(tone, dtype=np.int64)
    pressure = np.zeros(tone.size, dtype=bool) if pressure is None else np.asarray(pressure)
    topic = draw_topics(tone, pressure, topics, rng)
    return compose(tone, topic, topics, rng), topic


def nps_tone(score: np.ndarray) -> np.ndarray:
    """Detractors (0-6) -1, passives (7-8) 0, promoters (9-10) +1."""
    score = np.asarray(score)
    return np.where(score < 7, -1, np.where(score < 9, 0, 1)).astype(np.int64)


def nps_comment(
    score: np.ndarray,
    rng: np.random.Generator,
    *,
    pressure: np.ndarray | None = None,
    topics: tuple[Topic, ...] = DEFAULT_TOPICS,
) -> tuple[np.ndarray, np.ndarray]:
    """Optional comments (about a third of answers) in the score's tone; topic -1 = none."""
    has = rng.random(np.asarray(score).size) < NPS_COMMENT_SHARE
    out = np.full(has.size, None, dtype=object)
    topic = np.full(has.size, -1, dtype=np.int64)
    rows = np.flatnonzero(has)
    sub = None if pressure is None else np.asarray(pressure)[rows]
    out[rows], topic[rows] = render(nps_tone(score)[rows], rng, pressure=sub, topics=topics)
    return out, topic


def topic_table(
    texts: pa.Table, source: str, at: str, topic: np.ndarray, topics: tuple[Topic, ...]
) -> pa.Table:
    """The side table `text_topics`: which topic each text of `texts` was drawn from."""
    keep = np.flatnonzero(np.asarray(topic) >= 0)
    ids = texts.column("ticket_id") if "ticket_id" in texts.column_names else None
    names = np.array([t.name for t in topics], dtype=object)
    return table(
        "text_topics",
        {
            "source": np.full(keep.size, source, dtype=object),
            "account_id": texts.column("account_id").take(keep),
            "ticket_id": ids.take(keep) if ids is not None else pa.nulls(keep.size, pa.string()),
            "at": texts.column(at).take(keep),
            "topic": names[np.asarray(topic)[keep]],
        },
    )
