"""Deterministic arXiv-shaped test data: many entries and Atom answer pages in the API's documented shape.

Used by the ingest benchmark and by tests that need more entries than the recorded fixtures hold. Titles and
abstracts are assembled from templates (half about named heads, half not), so nothing here is a real paper.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date, timedelta

from .model import Entry

ATOM = "http://www.w3.org/2005/Atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
ARXIV = "http://arxiv.org/schemas/atom"

_HEADS = ("retrieval", "induction", "successor", "copy suppression", "name mover", "previous token", "safety")
_MODELS = ("GPT-2 small", "Pythia-1.4B", "Llama-2-7B", "Mistral-7B", "Gemma-2B", "Qwen2-7B")
_TOPICS = ("protein folding", "image segmentation", "speech recognition", "graph learning", "robot control")


def make_entries(n: int, *, seed: int = 0, start_day: date = date(2024, 11, 1)) -> list[Entry]:
    """``n`` distinct entries with ids ``2411.<seed><index>``; even indices are about heads."""
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        day = start_day - timedelta(days=i % 60)
        model = rng.choice(_MODELS)
        if i % 2 == 0:
            head = rng.choice(_HEADS)
            title = f"How {head.title()} Heads Shape Behaviour {i} in {model}"
            abstract = (
                f"We identify {head} heads in {model} with activation patching and attention scores. "
                f"Ablating these attention heads removes behaviour {i} while random heads do not matter. "
                f"The heads reappear across {rng.randint(2, 9)} model sizes."
            )
        else:
            topic = rng.choice(_TOPICS)
            title = f"Scaling {topic.title()} Study {i}"
            abstract = (
                f"We train larger networks for {topic} on a new dataset and report a {rng.randint(2, 30)} point gain. "
                f"Training is {rng.randint(2, 5)}x faster with mixed precision."
            )
        entries.append(
            Entry(
                source="arxiv",
                title=title,
                abstract=abstract,
                arxiv_id=f"2411.{seed % 10}{i:04d}",
                version=1 + (i % 3 == 0),
                authors=(f"Author {i % 97}", f"Author {(i * 7) % 97}"),
                published=day.isoformat(),
                updated=day.isoformat(),
                categories=("cs.CL", "cs.LG"),
                url=f"http://arxiv.org/abs/2411.{seed % 10}{i:04d}v1",
            )
        )
    return entries


def atom_page(entries: Sequence[Entry], *, total: int, start: int) -> bytes:
    """An arXiv API answer (Atom 1.0 with opensearch counts) holding ``entries``."""
    ET.register_namespace("", ATOM)
    ET.register_namespace("opensearch", OPENSEARCH)
    ET.register_namespace("arxiv", ARXIV)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = "ArXiv Query: synthetic"
    ET.SubElement(feed, f"{{{ATOM}}}id").text = "http://arxiv.org/api/synthetic"
    ET.SubElement(feed, f"{{{OPENSEARCH}}}totalResults").text = str(total)
    ET.SubElement(feed, f"{{{OPENSEARCH}}}startIndex").text = str(start)
    ET.SubElement(feed, f"{{{OPENSEARCH}}}itemsPerPage").text = str(len(entries))
    for e in entries:
        node = ET.SubElement(feed, f"{{{ATOM}}}entry")
        version = f"v{e.version}" if e.version else ""
        ET.SubElement(node, f"{{{ATOM}}}id").text = f"http://arxiv.org/abs/{e.arxiv_id}{version}"
        ET.SubElement(node, f"{{{ATOM}}}updated").text = f"{e.updated or e.published}T12:00:00Z"
        ET.SubElement(node, f"{{{ATOM}}}published").text = f"{e.published}T12:00:00Z"
        ET.SubElement(node, f"{{{ATOM}}}title").text = e.title
        ET.SubElement(node, f"{{{ATOM}}}summary").text = e.abstract
        for name in e.authors:
            author = ET.SubElement(node, f"{{{ATOM}}}author")
            ET.SubElement(author, f"{{{ATOM}}}name").text = name
        ET.SubElement(node, f"{{{ATOM}}}link", href=f"http://arxiv.org/abs/{e.arxiv_id}{version}", rel="alternate")
        if e.categories:
            ET.SubElement(node, f"{{{ARXIV}}}primary_category", term=e.categories[0])
        for c in e.categories:
            ET.SubElement(node, f"{{{ATOM}}}category", term=c)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed)
