"""Parse a contribution (the list's plain-text template or a GitHub issue-form body) into a validated Paper.

Both forms carry the same fields (all required): Title, Published Date, Source (journal / conference / arXiv),
Head Name(s), Summary as ``- Innovation: … / - Tasks: … / - Significant Result: …`` (at most 60 words).
Optional: Link (an arXiv URL or id gives the paper's id), Code. Plain text uses ``Field: value`` lines; the issue
form renders ``### Field`` headings with the value below (``_No response_`` when left empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ..errors import CatalogueError
from ..fileio import has_surrogates
from .schema import STAGES, Paper, Provenance, Summary, is_arxiv_id, parse_date, slugify
from .vocabulary import HeadTerm, Vocabulary, new_term

MAX_SUMMARY_WORDS = 60

_FIELD_ALIASES = {
    "title": "title",
    "papertitle": "title",
    "publisheddate": "date",
    "date": "date",
    "publicationdate": "date",
    "published": "source",
    "source": "source",
    "venue": "source",
    "head": "heads",
    "heads": "heads",
    "headname": "heads",
    "headnames": "heads",
    "summary": "summary",
    "link": "link",
    "url": "link",
    "paper": "link",
    "arxiv": "link",
    "code": "code",
}
_DISPLAY = {"title": "Title", "date": "Published Date", "source": "Source", "heads": "Head Name", "summary": "Summary"}
_PLACEHOLDER = re.compile(r"^\[.*\]$")
_ARXIV_IN_TEXT = re.compile(r"(?:arxiv\.org/(?:abs|pdf)/)?(\d{4}\.\d{4,5})(?:v\d+)?", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_PARTS = {
    "innovation": "innovation",
    "tasks": "tasks",
    "task": "tasks",
    "significantresult": "result",
    "result": "result",
}


def _key(label: str) -> str | None:
    return _FIELD_ALIASES.get(re.sub(r"[^a-z]", "", label.lower()))


def _issue_form_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if current is not None:
            value = "\n".join(lines).strip()
            fields[current] = "" if value == "_No response_" else value

    for line in text.splitlines():
        heading = re.match(r"^#{2,4}\s+(.+?)\s*$", line)
        if heading:
            flush()
            current = _key(heading.group(1))
            lines = []
        elif current is not None:
            lines.append(line)
    flush()
    return fields


def _plain_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^([A-Za-z][A-Za-z _-]{0,30}):\s*(.*)$", line)
        key = _key(m.group(1)) if m and not line.startswith("-") else None
        if key is not None and m is not None:
            current = key
            fields[key] = m.group(2).strip()
        elif current is not None and line:
            fields[current] = (fields[current] + "\n" + line).strip()
    return fields


def parse_fields(text: str) -> dict[str, str]:
    """Field name -> raw value, from either form (issue form when it has ``###`` headings)."""
    if re.search(r"^#{2,4}\s+\S", text, flags=re.MULTILINE):
        return _issue_form_fields(text)
    return _plain_fields(text)


def _required(fields: dict[str, str], key: str) -> str:
    value = fields.get(key, "").strip()
    if not value:
        raise CatalogueError(f"contribution: field '{_DISPLAY[key]}' is missing or empty")
    if _PLACEHOLDER.match(value):
        raise CatalogueError(f"contribution: field '{_DISPLAY[key]}' is still the template placeholder {value!r}")
    return value


def parse_summary(text: str) -> Summary:
    """``- Innovation: … - Tasks: … - Significant Result: …`` (one per line, or run together)."""
    parts: dict[str, str] = {}
    pieces = re.split(r"(?:^|\s)-\s*(Innovation|Tasks?|Significant Result|Result)\s*:", text, flags=re.IGNORECASE)
    for label, value in zip(pieces[1::2], pieces[2::2], strict=True):
        name = _PARTS[re.sub(r"[^a-z]", "", label.lower())]
        parts[name] = " ".join(value.split())
    for name, shown in (("innovation", "Innovation"), ("tasks", "Tasks"), ("result", "Significant Result")):
        if not parts.get(name):
            raise CatalogueError(f"contribution: summary part '{shown}' is missing or empty")
    words = sum(len(v.split()) for v in parts.values())
    if words > MAX_SUMMARY_WORDS:
        raise CatalogueError(f"contribution: field 'Summary' has {words} words; the limit is {MAX_SUMMARY_WORDS}")
    return Summary(innovation=parts["innovation"], tasks=parts["tasks"], result=parts["result"])


def split_heads(value: str) -> list[str]:
    names = [n.strip(" .") for n in re.split(r"[,;\n]|\band\b", value) if n.strip(" .")]
    if not names:
        raise CatalogueError("contribution: field 'Head Name' lists no head")
    return names


@dataclass(frozen=True)
class Contribution:
    paper: Paper
    new_terms: tuple[HeadTerm, ...]  # head types created because of --new-head


def parse_contribution(
    text: str, vocab: Vocabulary, *, new_head: bool = False, today: date | None = None
) -> Contribution:
    """Validate a contribution form. Unknown head names are an error listing close matches unless ``new_head``."""
    day = today or date.today()
    if has_surrogates(text):
        raise CatalogueError("contribution: the form holds a lone surrogate (not valid Unicode text)")
    fields = parse_fields(text)
    title = " ".join(_required(fields, "title").split())
    source = _required(fields, "source")
    if "date" not in fields:
        found = _ISO_DATE.search(source)
        if found:  # "Published: arXiv, 2024-05-01"
            fields["date"] = found.group(1)
            source = (source[: found.start()] + source[found.end() :]).strip(" ,;-") or source
    published = parse_date(_required(fields, "date"), "contribution", today=day)
    summary = parse_summary(_required(fields, "summary"))
    names = split_heads(_required(fields, "heads"))

    head_types: list[str] = []
    created: list[HeadTerm] = []
    for name in names:
        found_id = vocab.find(name)
        if found_id is None:
            if not new_head:
                vocab.resolve(name)  # raises UnknownHeadNameError with close matches
            term = new_term(name)
            if term.id in vocab or any(t.id == term.id for t in created):
                raise CatalogueError(f"contribution: new head {name!r} would reuse the existing id {term.id!r}")
            created.append(term)
            found_id = term.id
        if found_id not in head_types:
            head_types.append(found_id)

    links: dict[str, str] = {}
    paper_id = None
    link = fields.get("link", "").strip()
    if link:
        arxiv = _ARXIV_IN_TEXT.search(link)
        if arxiv and is_arxiv_id(arxiv.group(1)):
            paper_id = arxiv.group(1)
            links["paper"] = f"https://arxiv.org/abs/{paper_id}"
        elif link.startswith(("https://", "http://")):
            links["paper"] = link
        else:
            raise CatalogueError(f"contribution: field 'Link' must be a URL or an arXiv id, got {link!r}")
    code = fields.get("code", "").strip()
    if code:
        if not code.startswith(("https://", "http://")):
            raise CatalogueError(f"contribution: field 'Code' must be a URL, got {code!r}")
        links["code"] = code
    if paper_id is None:
        arxiv = _ARXIV_IN_TEXT.fullmatch(source.replace("arXiv:", "").strip())
        paper_id = arxiv.group(1) if arxiv else slugify(title, published.year)

    stage_of = {t.id: t.stage for t in created}
    stages = {stage_of[h] if h in stage_of else vocab.get(h).stage for h in head_types}
    paper = Paper(
        id=paper_id,
        title=title,
        date=published,
        venue=source,
        summary=summary,
        tags=tuple(names),
        head_types=tuple(head_types),
        stages=tuple(s for s in STAGES if s in stages),
        links=links,
        provenance=Provenance(source="contribution", added=day, assigned=("stages",)),
    )
    return Contribution(paper, tuple(created))


def contribution_template() -> str:
    """The plain-text form, with the date line this catalogue requires."""
    return "\n".join(
        [
            "Title: [paper's title]",
            "Head: [head name1] (, [head name2] ...)",
            "Published: [arXiv / ACL / ICLR / NIPS / ...]",
            "Date: [YYYY-MM-DD]",
            "Link: [https://arxiv.org/abs/XXXX.XXXXX]",
            "Summary:",
            "- Innovation:",
            "- Tasks:",
            "- Significant Result:",
        ]
    )
