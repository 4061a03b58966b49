"""Themes found in ticket texts and NPS comments: TF-IDF + NMF, as many themes as stay
distinct, sentiment words and template sentences left out of the theme vocabulary.

Why NMF: a theme is a weighted list of words (its name is its top words) and every text
gets a weight per theme, so quotes are the texts a theme explains best. How many: themes
are added one at a time while they stay distinct: once one topic is cut in two, the
texts of each half carry much of their weight on the other half (their `overlap`), and the
search stops before that (docs/VOICE.md has the figures). Why no sentiment words: a theme
is what customers write about; how they feel about it is measured on its own
(features/sentiment.py), and tone words shared by every topic would otherwise make themes
of their own ("frustrated", "thanks"). Sentences repeated verbatim across many texts
(macros, greetings, sign-offs) are left out for the same reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.decomposition import NMF
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.utils.extmath import randomized_svd


@dataclass(frozen=True)
class ThemeSettings:
    """How themes are found; the defaults are what `nrr themes` uses."""

    min_themes: int = 3
    max_themes: int = 14
    fit_docs: int = 20_000  # texts sampled to fit the vocabulary and the final NMF
    max_overlap: float = 0.12  # themes whose texts share more weight than this are one
    min_df: int = 5  # a word used by fewer texts names no theme
    max_df: float = 0.3  # a word in more than this share of texts is boilerplate
    template_share: float = 0.01  # a sentence repeated verbatim in this share of texts
    name_terms: int = 3
    quotes: int = 3
    seed: int = 0


@dataclass(frozen=True)
class ThemeModel:
    """The fitted themes: names, top terms, each text's theme and its weight share."""

    names: tuple[str, ...]
    terms: tuple[tuple[str, ...], ...]
    theme: np.ndarray  # per text, index into names; -1 = no theme word at all
    share: np.ndarray  # per text, the weight of its theme / the sum of its weights
    overlap: dict[int, float] = field(default_factory=dict)  # per number of themes tried

    @property
    def k(self) -> int:
        return len(self.names)


class NotEnoughText(ValueError):
    """Too few texts (or words) to find themes in."""


TOKEN = r"(?u)\b[a-zA-Z][a-zA-Z0-9\-]+\b"  # words of 2+ characters starting with a letter


@lru_cache(maxsize=1)
def theme_stop_words() -> frozenset[str]:
    """English stop words and every word VADER scores as sentiment (its lexicon ships in
    the wheel; nothing is downloaded)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    words = set(ENGLISH_STOP_WORDS) | set(SentimentIntensityAnalyzer().lexicon)
    # as the vectorizer tokenizes ("fed up" -> "fed", "up"), or it warns and misses them
    return frozenset(t for w in words for t in re.findall(TOKEN, w.lower()))


_SENTENCE = r"(?<=[.!?])\s+"


def strip_templates(texts: pd.Series, share: float) -> pd.Series:
    """The texts without sentences that recur verbatim in at least `share` of them: macros,
    greetings and sign-offs say nothing about what a customer writes about."""
    sentences = texts.str.split(_SENTENCE, regex=True).explode()
    sentences = sentences[sentences.str.len() > 0]
    counts = sentences.str.lower().map(sentences.str.lower().value_counts())
    kept = sentences[counts < max(share * len(texts), 2)]
    return kept.groupby(level=0).agg(" ".join).reindex(texts.index, fill_value="")


def _vectorizer(settings: ThemeSettings, n_docs: int) -> TfidfVectorizer:
    return TfidfVectorizer(
        stop_words=sorted(theme_stop_words()),
        ngram_range=(1, 2),
        min_df=min(settings.min_df, max(1, n_docs // 50)),
        max_df=settings.max_df,
        sublinear_tf=True,
        token_pattern=TOKEN,
    )


@dataclass(frozen=True)
class _Svd:
    """One truncated SVD of the texts, shared by the NMF starts of every number of themes
    (the first k singular triplets are those of a rank-k SVD)."""

    x: sparse.csr_matrix
    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray

    @classmethod
    def of(cls, x: sparse.csr_matrix, k: int, seed: int) -> _Svd:
        u, s, vt = randomized_svd(x, k, random_state=seed)
        return cls(x, u, s, vt)

    def start(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """NNDSVDa (Boutsidis & Gallopoulos 2008, zeros filled with the mean): a
        deterministic start, so the same texts give the same themes."""
        w = np.zeros((self.u.shape[0], k))
        h = np.zeros((k, self.vt.shape[1]))
        for j in range(k):
            x, y = self.u[:, j], self.vt[j]
            xp, yp, xn, yn = (
                np.maximum(x, 0),
                np.maximum(y, 0),
                np.maximum(-x, 0),
                np.maximum(-y, 0),
            )
            mp = np.linalg.norm(xp) * np.linalg.norm(yp)
            mn = np.linalg.norm(xn) * np.linalg.norm(yn)
            a, b, sigma = (xp, yp, mp) if mp >= mn else (xn, yn, mn)
            scale = np.sqrt(self.s[j] * sigma)
            w[:, j] = scale * a / max(np.linalg.norm(a), 1e-12)
            h[j] = scale * b / max(np.linalg.norm(b), 1e-12)
        avg = float(self.x.mean())
        w[w == 0], h[h == 0] = avg, avg
        return w, h

    def fit(self, k: int, *, max_iter: int) -> NMF:
        w, h = self.start(k)
        model = NMF(k, init="custom", max_iter=max_iter, tol=1e-3)
        model.fit(self.x, W=w, H=h)
        return model


def find_themes(texts: pd.Series, settings: ThemeSettings | None = None) -> ThemeModel:
    """Themes of `texts` (one entry per text; None or blank texts get theme -1)."""
    settings = settings or ThemeSettings()
    clean = strip_templates(texts.fillna("").astype(str), settings.template_share).to_numpy()
    usable = np.flatnonzero(np.char.str_len(clean.astype(str)) > 0)
    if usable.size < 4 * settings.min_themes:
        raise NotEnoughText(f"{usable.size} texts: at least {4 * settings.min_themes} needed")
    rng = np.random.default_rng(settings.seed)
    fit_rows = np.sort(rng.permutation(usable)[: settings.fit_docs])
    vectorizer = _vectorizer(settings, fit_rows.size)
    try:
        x_fit = vectorizer.fit_transform(clean[fit_rows])
    except ValueError as exc:  # every word a stop word or too rare
        raise NotEnoughText(f"no theme words in the texts ({exc})") from exc
    vocab = np.asarray(vectorizer.get_feature_names_out())
    has_words = np.asarray(x_fit.sum(axis=1)).ravel() > 0
    x_fit = x_fit[has_words]
    top = min(settings.max_themes, x_fit.shape[0] // 4, x_fit.shape[1])
    if top < settings.min_themes:
        raise NotEnoughText(f"{x_fit.shape[0]} texts with theme words: too few for themes")
    model, overlaps = _choose(x_fit, settings, top)
    weights = model.transform(vectorizer.transform(clean))
    return _themes(model, vocab, weights, overlaps, settings)


def overlap(weights: np.ndarray) -> float:
    """The largest share of weight the texts of one theme carry on another (symmetrised)."""
    total = weights.sum(axis=1)
    rows = total > 0
    share = weights[rows] / total[rows, None]
    theme = share.argmax(axis=1)
    k = weights.shape[1]
    mean = np.vstack(
        [share[theme == a].mean(axis=0) if (theme == a).any() else np.zeros(k) for a in range(k)]
    )
    np.fill_diagonal(mean, 0.0)
    return float(np.maximum(mean, mean.T).max())


def _choose(
    x: sparse.csr_matrix, settings: ThemeSettings, top: int
) -> tuple[NMF, dict[int, float]]:
    """The NMF with the most themes before two of them first overlap, and every overlap."""
    svd = _Svd.of(x, top, settings.seed)
    overlaps: dict[int, float] = {}
    chosen: NMF | None = None
    for k in range(settings.min_themes, top + 1):
        model = svd.fit(k, max_iter=400)
        overlaps[k] = overlap(model.transform(x))
        if chosen is not None and overlaps[k] > settings.max_overlap:
            break
        chosen = model
    assert chosen is not None
    return chosen, overlaps


def _themes(
    model: NMF,
    vocab: np.ndarray,
    weights: np.ndarray,
    overlaps: dict[int, float],
    settings: ThemeSettings,
) -> ThemeModel:
    total = weights.sum(axis=1)
    theme = np.where(total > 0, weights.argmax(axis=1), -1)
    share = np.where(total > 0, weights.max(axis=1) / np.where(total > 0, total, 1.0), 0.0)
    terms = tuple(_top_terms(row, vocab, 8) for row in model.components_)
    names = tuple(" / ".join(t[: settings.name_terms]) for t in terms)
    return ThemeModel(names, terms, theme.astype(np.int64), share, overlaps)


def _top_terms(row: np.ndarray, vocab: np.ndarray, n: int) -> tuple[str, ...]:
    """The theme's heaviest words, a bigram replacing the single words it contains."""
    out: list[str] = []
    for j in np.argsort(-row):
        term = str(vocab[j])
        words = term.split()
        if len(words) == 1 and any(term in kept.split() for kept in out):
            continue
        out = [kept for kept in out if kept not in words]
        out.append(term)
        if len(out) >= n:
            break
    return tuple(out)


def purity(theme: np.ndarray, truth: np.ndarray) -> float:
    """Share of texts whose theme's most common true topic is their own (texts with a
    theme only): 1.0 when no theme mixes topics."""
    keep = np.asarray(theme) >= 0
    table = pd.crosstab(np.asarray(theme)[keep], np.asarray(truth)[keep])
    return float(table.max(axis=1).sum() / max(table.to_numpy().sum(), 1))
