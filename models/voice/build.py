"""From a data source to the theme report: texts, themes, figures, correlations."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from features.config import SnapshotConfig
from features.source import DataSource
from models.voice.corpus import load_corpus
from models.voice.correlation import (
    CorrelationSettings,
    labelled_months,
    mentions,
    theme_correlation,
)
from models.voice.summary import WINDOW_DAYS, ThemeReport, add_correlation, theme_rows
from models.voice.themes import ThemeSettings, find_themes


def theme_report(
    source: DataSource,
    *,
    settings: ThemeSettings | None = None,
    correlation: CorrelationSettings | None = None,
    config: SnapshotConfig | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> ThemeReport:
    """Themes of every ticket text and NPS comment of `source`, with their figures."""
    settings = settings or ThemeSettings()
    correlation = correlation or CorrelationSettings()
    config = config or SnapshotConfig()
    step("reading ticket texts and NPS comments")
    corpus = load_corpus(source)
    step(f"finding themes in {len(corpus):,} texts")
    model = find_themes(corpus["text"], settings)
    corpus = corpus.assign(theme=model.theme, share=model.share)
    end = source.data_end
    themes = theme_rows(
        corpus,
        names=model.names,
        terms=model.terms,
        data_end=end,
        quotes=settings.quotes,
    )
    step("churn and expansion correlation over labelled month starts")
    rows = labelled_months(source, correlation, config)
    said = mentions(rows, corpus, model.k, correlation.lookback_days)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a theme nobody churned after
        table = theme_correlation(rows, said, correlation)
    return ThemeReport(
        data_end=end,
        window_days=WINDOW_DAYS,
        texts=len(corpus),
        themes=add_correlation(themes, table),
        overlap=model.overlap,
        correlation_rows=len(rows),
    )
