"""Clients of the paper sources. Each returns :class:`~headatlas.literature.feed.model.Entry` objects."""

from .arxiv import ArxivClient, parse_arxiv_feed
from .daily import DailyPapersClient, parse_daily_papers
from .http import Fetcher
from .semantic_scholar import SemanticScholarClient

__all__ = [
    "ArxivClient",
    "DailyPapersClient",
    "Fetcher",
    "SemanticScholarClient",
    "parse_arxiv_feed",
    "parse_daily_papers",
]
