"""Email digest of accepted papers: subscriptions with head-type filters, keywords and negative keywords.

A subscriber gets each accepted paper at most once: ``digest_sent`` records (subscriber, entry) only after the
SMTP server accepted that subscriber's message, in the same transaction for the whole message. A failed send
records nothing, so the papers go out next time.
"""

from __future__ import annotations

import html
import re
import smtplib
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ...errors import InvalidSettingError, SourceError
from .. import store as paper_store
from ..vocabulary import Vocabulary
from .store import (
    FeedEntry,
    Subscriber,
    delete_subscriber,
    get_subscriber,
    list_entries,
    record_sent,
    save_subscriber,
    sent_entry_ids,
    subscribers,
)

__all__ = [
    "SendReport",
    "Subscriber",
    "compose",
    "due",
    "get_subscriber",
    "parse_smtp",
    "send_digest",
    "subscribe",
    "subscribers",
    "unsubscribe",
    "validate_email",
]

# a deliberately plain address check: one @, a dotted domain, no spaces or angle brackets
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def validate_email(address: str) -> str:
    address = address.strip()
    if len(address) > 254 or not _EMAIL.match(address) or ".." in address:
        raise InvalidSettingError(f"invalid email address {address!r}")
    return address


def subscribe(
    conn: sqlite3.Connection,
    email: str,
    *,
    head_types: Sequence[str] = (),
    keywords: Sequence[str] = (),
    exclude: Sequence[str] = (),
    vocab: Vocabulary | None = None,
) -> Subscriber:
    """Create or replace a subscription; head types may be given by any alias and are stored as ids."""
    address = validate_email(email)
    if vocab is None:  # the store's vocabulary: shipped head types plus those curators added
        paper_store.ensure_seeded(conn)
        vocab = paper_store.store_vocabulary(conn)
    ids = tuple(dict.fromkeys(vocab.resolve(h) for h in head_types))
    clean = [tuple(dict.fromkeys(w.strip() for w in words if w.strip())) for words in (keywords, exclude)]
    return save_subscriber(conn, address, head_types=ids, keywords=clean[0], exclude=clean[1])


def unsubscribe(conn: sqlite3.Connection, email: str) -> bool:
    return delete_subscriber(conn, email.strip())


def due(conn: sqlite3.Connection, subscriber: Subscriber) -> list[FeedEntry]:
    """Accepted entries this subscriber wants and has not been sent."""
    sent = sent_entry_ids(conn, subscriber.id)
    return [e for e in list_entries(conn, "accepted") if e.id not in sent and subscriber.wants(e)]


def compose(subscriber: Subscriber, entries: Sequence[FeedEntry], *, sender: str) -> EmailMessage:
    """A multipart/alternative message: plain text and HTML, each ending with the unsubscribe line."""
    msg = EmailMessage()
    msg["Subject"] = f"headatlas digest: {len(entries)} new attention-head paper{'s' * (len(entries) != 1)}"
    msg["From"] = sender
    msg["To"] = subscriber.email
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="headatlas.invalid")
    unsubscribe_line = f"To unsubscribe, run: headatlas digest unsubscribe {subscriber.email}"
    msg["List-Unsubscribe"] = f"<mailto:{sender}?subject=unsubscribe%20{subscriber.email}>"
    lines = []
    blocks = []
    for e in entries:
        link = f"https://arxiv.org/abs/{e.arxiv_id}" if e.arxiv_id else (e.url or "")
        heads = ", ".join(e.head_types) or "-"
        s = e.summary
        lines.append(
            f"* {e.title}\n  {link}\n  Heads: {heads}\n  - Innovation: {s.get('innovation', '')}\n"
            f"  - Tasks: {s.get('tasks', '')}\n  - Significant Result: {s.get('result', '')}\n"
        )
        blocks.append(
            f'<li><a href="{html.escape(link, quote=True)}">{html.escape(e.title)}</a>'
            f" <small>({html.escape(heads)})</small><ul>"
            f"<li>Innovation: {html.escape(s.get('innovation', ''))}</li>"
            f"<li>Tasks: {html.escape(s.get('tasks', ''))}</li>"
            f"<li>Significant Result: {html.escape(s.get('result', ''))}</li></ul></li>"
        )
    msg.set_content("New papers about attention heads:\n\n" + "\n".join(lines) + f"\n--\n{unsubscribe_line}\n")
    msg.add_alternative(
        "<html><body><p>New papers about attention heads:</p><ul>"
        + "".join(blocks)
        + f"</ul><hr><p>{html.escape(unsubscribe_line)}</p></body></html>\n",
        subtype="html",
    )
    return msg


@dataclass(frozen=True)
class SendReport:
    sent: dict[str, int]  # email -> papers sent
    failed: dict[str, str]  # email -> reason


def parse_smtp(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidSettingError(f"--smtp must be HOST:PORT, got {value!r}")
    return host, int(port)


class _DeadlineSMTP(smtplib.SMTP):
    """SMTP whose every read and write also respects one overall deadline (``time.monotonic()`` seconds).

    smtplib's ``timeout`` bounds each socket operation only: a server that sends a ``220-`` continuation line every
    few seconds keeps one reply going forever. Here each operation gets the smaller of ``timeout`` and the time
    left, and past the deadline a ``TimeoutError`` names it.
    """

    def __init__(self, host: str, port: int, *, timeout: float, deadline: float, total: float) -> None:
        self._deadline = deadline
        self._total = total
        self._op_timeout = timeout
        super().__init__(host, port, timeout=min(timeout, max(0.001, deadline - time.monotonic())))

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"SMTP send exceeded its overall deadline of {self._total:g} s")
        return min(self._op_timeout, left)

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _DeadlineFile(self.sock.makefile("rb"), self)
        return super().getreply()

    def send(self, s: str | bytes) -> None:  # type: ignore[override]
        if self.sock is not None:
            self.sock.settimeout(self._left())
        super().send(s)


class _DeadlineFile:
    """The reply reader of :class:`_DeadlineSMTP`: each line read is bounded by the time left."""

    def __init__(self, raw: Any, client: _DeadlineSMTP) -> None:
        self._raw = raw
        self._client = client

    def readline(self, size: int = -1) -> bytes:
        if self._client.sock is not None:
            self._client.sock.settimeout(self._client._left())
        try:
            line: bytes = self._raw.readline(size)
        except TimeoutError:
            self._client._left()  # raises the deadline's message when that is what ran out
            raise TimeoutError(f"no answer within {self._client._op_timeout:g} s") from None
        return line

    def close(self) -> None:
        self._raw.close()


def send_digest(
    conn: sqlite3.Connection,
    smtp: str,
    *,
    sender: str = "headatlas@localhost",
    timeout: float = 10.0,
    deadline: float = 120.0,
    dry_run: bool = False,
) -> SendReport:
    """Send each subscriber the papers due to them; record what the server accepted, nothing else.

    ``timeout`` bounds each connect, read and write; ``deadline`` the whole send (a server that keeps a reply
    trickling in is cut off). If the server cannot be reached at all, :class:`SourceError` is raised and nothing
    is recorded; a subscriber whose message failed is in ``failed`` (and gets the papers next time).
    """
    if not (0 < timeout <= 3600 and 0 < deadline <= 86400):
        raise InvalidSettingError(f"SMTP timeout and deadline must be positive seconds, got {timeout}, {deadline}")
    host, port = parse_smtp(smtp)
    if sender.count("@") != 1 or any(c.isspace() or c in "<>" for c in sender):
        raise InvalidSettingError(f"invalid sender address {sender!r}")
    plans = [(s, due(conn, s)) for s in subscribers(conn)]
    plans = [(s, entries) for s, entries in plans if entries]
    sent: dict[str, int] = {}
    failed: dict[str, str] = {}
    if not plans or dry_run:
        return SendReport({s.email: len(e) for s, e in plans} if dry_run else {}, {})
    end = time.monotonic() + deadline
    try:
        client = _DeadlineSMTP(host, port, timeout=timeout, deadline=end, total=deadline)
    except (OSError, smtplib.SMTPException) as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError) and "deadline" not in reason:
            reason = f"timed out after {timeout:g} s"
        raise SourceError(f"SMTP server {host}:{port} unreachable: {reason}") from None
    try:
        for subscriber, entries in plans:
            try:
                client.send_message(compose(subscriber, entries, sender=sender))
            except (OSError, smtplib.SMTPException) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, TimeoutError) and "deadline" not in reason:
                    reason = f"timed out after {timeout:g} s"
                failed[subscriber.email] = reason
                if isinstance(exc, (TimeoutError, smtplib.SMTPServerDisconnected)):
                    # the connection is unusable: the rest fail the same way, quickly
                    for rest, _ in plans[len(sent) + len(failed) :]:
                        failed[rest.email] = f"not tried: {reason}"
                    break
                continue
            record_sent(conn, subscriber.id, [e.id for e in entries])
            sent[subscriber.email] = len(entries)
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return SendReport(sent, failed)
