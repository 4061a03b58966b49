"""Ticket and NPS-comment texts by tone, so a lexicon sentiment scorer can read them."""

from __future__ import annotations

import numpy as np

TOPICS = ("dashboards", "reports", "the import", "the API", "workflows", "exports", "search")

NEGATIVE = (
    "{t} is broken again and this is unacceptable. We are very frustrated.",
    "Terrible experience: {t} keeps failing and nobody has fixed it. Awful.",
    "Still waiting on a fix for {t}. This is a serious problem for our team and we are angry.",
    "{t} is slow and buggy, the worst week we have had. Disappointed.",
    "We lost data in {t}. Horrible. Considering other options if this is not resolved.",
)
NEUTRAL = (
    "How do I configure {t} for a new team?",
    "Question about {t}: where is the setting for permissions?",
    "Can you send documentation on {t}?",
    "Requesting a change to our billing contact. Also a question about {t}.",
    "{t} shows a different number than last week, can you check?",
)
POSITIVE = (
    "Thanks for the quick help with {t}, great support as always!",
    "Love the new {t}. Small question on setup, otherwise excellent.",
    "{t} works great now, thank you. Could you enable it for another team?",
    "Happy with {t}. Wonderful job by your team, just one question.",
)
NPS_NEGATIVE = ("Too many bugs.", "Support is slow.", "Hard to use and expensive.", "Not worth it.")
NPS_NEUTRAL = ("It is fine.", "Does the job.", "Some features are missing.", "OK overall.")
NPS_POSITIVE = ("Great product!", "Love it, saves us hours.", "Excellent support.", "Very useful.")


def render(tone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ticket texts for tones -1 (negative), 0 (neutral), +1 (positive)."""
    out = np.empty(tone.size, dtype=object)
    topic = np.array(TOPICS, dtype=object)[rng.integers(0, len(TOPICS), tone.size)]
    for value, templates in ((-1, NEGATIVE), (0, NEUTRAL), (1, POSITIVE)):
        rows = np.flatnonzero(tone == value)
        pick = rng.integers(0, len(templates), rows.size)
        # a few dozen distinct strings: format each template once per topic
        for j, template in enumerate(templates):
            sel = rows[pick == j]
            for t in TOPICS:
                hit = sel[topic[sel] == t]
                if hit.size:
                    text = template.format(t=t)
                    out[hit] = text[0].upper() + text[1:]
    return out


def nps_comment(score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optional comments (about a third of answers) matching the score."""
    out = np.full(score.size, None, dtype=object)
    has = rng.random(score.size) < 0.35
    for lo, hi, texts in ((0, 7, NPS_NEGATIVE), (7, 9, NPS_NEUTRAL), (9, 11, NPS_POSITIVE)):
        rows = np.flatnonzero(has & (score >= lo) & (score < hi))
        out[rows] = np.array(texts, dtype=object)[rng.integers(0, len(texts), rows.size)]
    return out
