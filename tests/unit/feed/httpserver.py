"""A real local HTTP server (``http.server`` in a thread) that answers from a script: slowly, with 429 +
Retry-After, 500s, truncated or garbled bodies, or fixture files."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False  # announce the full length, send a third, then drop the connection

    @classmethod
    def fixture(cls, name: str, **kw) -> Reply:
        ctype = "application/json" if name.endswith(".json") else "application/atom+xml"
        return cls(body=(FIXTURES / name).read_bytes(), headers={"Content-Type": ctype}, **kw)


Route = Callable[[dict[str, str]], Reply]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: float


class ScriptedServer:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Reply]] = {}
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(Seen(self.command, parts.path, query, body, time.monotonic()))
                reply = server.reply_for(parts.path, query)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.truncate:
                    self.wfile.write(reply.body[: len(reply.body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(reply.body)

            do_GET = _serve
            do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reply_for(self, path: str, query: dict[str, str]) -> Reply:
        queue = self.queues.get(path)
        if queue:
            return queue.popleft() if len(queue) > 1 else queue[0]
        if path in self.routes:
            return self.routes[path](query)
        return Reply(status=404, body=b'{"error": "not found"}')

    def script(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with these replies in order; the last one repeats."""
        self.queues[path] = deque(replies)

    def route(self, path: str, fn: Route) -> None:
        self.routes[path] = fn

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
