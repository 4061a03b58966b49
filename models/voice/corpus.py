"""The customer texts of a data source: ticket texts and NPS comments, with their account,
time, sentiment, segment and the account's ARR at the time of writing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sentiment import score_texts
from features.source import DataSource

CORPUS_COLUMNS = ("source", "account_id", "at", "text", "sentiment", "segment", "arr")


class NoTexts(ValueError):
    """The source has no ticket text and no NPS comment."""


def _ticket_query(source: DataSource) -> str | None:
    if not source.has("tickets", "text"):
        return None
    # load_source scores the sentiment from the text when the export has none
    sentiment = "t.sentiment" if source.has("tickets", "sentiment") else "NULL"
    return f"""SELECT 'tickets' AS source, t.account_id, t.created_at AS at, t.text,
                      CAST({sentiment} AS DOUBLE) AS sentiment
               FROM tickets t WHERE t.text IS NOT NULL AND length(trim(t.text)) > 0"""


def _nps_query(source: DataSource) -> str | None:
    if not source.has("nps_responses", "comment"):
        return None
    return """SELECT 'nps_responses' AS source, n.account_id, n.responded_at AS at,
                     n.comment AS text, CAST(NULL AS DOUBLE) AS sentiment
              FROM nps_responses n
              WHERE n.comment IS NOT NULL AND length(trim(n.comment)) > 0"""


def load_corpus(source: DataSource) -> pd.DataFrame:
    """Every ticket text and NPS comment (CORPUS_COLUMNS), oldest first."""
    parts = [q for q in (_ticket_query(source), _nps_query(source)) if q is not None]
    if not parts:
        raise NoTexts("no texts: neither tickets.text nor nps_responses.comment is in the data")
    texts = " UNION ALL ".join(f"({q})" for q in parts)
    # ARR of the paid period in force when the text was written (0 between periods)
    frame = source.sql(
        f"""SELECT x.*, a.segment,
                   COALESCE((SELECT MAX(s.arr) FROM subscriptions s
                             WHERE s.account_id = x.account_id AND s.start_at <= x.at
                               AND (s.end_at IS NULL OR s.end_at > x.at)), 0.0) AS arr
            FROM ({texts}) x LEFT JOIN accounts a ON a.account_id = x.account_id
            ORDER BY x.at, x.source, x.account_id"""
    )
    if frame.empty:
        raise NoTexts("no texts: every ticket text and NPS comment is empty")
    frame["at"] = pd.to_datetime(frame["at"], utc=True).dt.tz_localize(None)
    missing = frame["sentiment"].isna().to_numpy()
    if missing.any():
        frame.loc[missing, "sentiment"] = score_texts(frame.loc[missing, "text"].tolist())
    frame["segment"] = frame["segment"].fillna("unknown").astype(str)
    frame["arr"] = frame["arr"].astype(np.float64)
    return frame.loc[:, list(CORPUS_COLUMNS)].reset_index(drop=True)
