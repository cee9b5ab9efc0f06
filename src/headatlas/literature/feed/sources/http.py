"""A polite HTTP fetcher: a minimum interval between calls, retries with exponential backoff on 429 / 5xx /
timeouts / dropped connections, and ``Retry-After`` honoured (arXiv asks for 3 s between calls; Semantic
Scholar for about one a second; the Hub allows 500 anonymous calls per 5 minutes)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import httpx

from ....errors import SourceError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HTTPStatusError(SourceError):
    """The server answered with a client error (4xx other than 429); ``status`` is the code."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class Fetcher:
    """GET/POST against one base URL with throttling and retries.

    ``min_interval`` seconds separate the start of consecutive calls; a failed call is retried up to
    ``retries`` times, waiting ``backoff * 2**attempt`` seconds (or the server's ``Retry-After``, capped at
    ``max_wait``). When every attempt fails a :class:`SourceError` names the URL and the last reason.
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        min_interval: float = 0.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if min_interval < 0 or retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("min_interval, retries and backoff must be >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.min_interval = min_interval
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.timeout = timeout
        self.calls = 0
        self._last_start: float | None = None
        self._client = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": "headatlas (https://github.com/headatlas)", **(headers or {})},
            follow_redirects=True,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _throttle(self) -> None:
        if self._last_start is not None and self.min_interval > 0:
            wait = self._last_start + self.min_interval - time.monotonic()
            if wait > 0:
                self.sleep(wait)
        self._last_start = time.monotonic()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        validate: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """The response (or ``validate(response)``, whose ``ValueError`` counts as a retryable broken body)."""
        url = f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url
        reason = "no attempt made"
        for attempt in range(self.retries + 1):
            self._throttle()
            self.calls += 1
            wait = self.backoff * (2**attempt)
            try:
                response = self._client.request(method, url, params=params, json=json)
            except httpx.TimeoutException:
                reason = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as exc:
                reason = f"connection failed ({type(exc).__name__})"
            else:
                if response.status_code in RETRY_STATUSES:
                    reason = f"HTTP {response.status_code}"
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if retry_after is not None:
                        wait = retry_after
                elif response.status_code >= 400:
                    status = response.status_code
                    raise HTTPStatusError(f"{self.name}: {url} answered HTTP {status}", status)
                elif validate is None:
                    return response
                else:
                    try:
                        return validate(response)
                    except ValueError as exc:
                        reason = f"unreadable answer ({exc})"
            if attempt < self.retries:
                wait = min(wait, self.max_wait)
                log.info("%s: %s on %s; retry %d in %.1fs", self.name, reason, url, attempt + 1, wait)
                self.sleep(wait)
        raise SourceError(f"{self.name}: {url} failed after {self.retries + 1} attempts: {reason}")
