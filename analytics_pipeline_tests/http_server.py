"""A local HTTP server on a free loopback port that answers each request with a function of it.

Real clients (the OpenAI SDK, requests) are pointed at it by URL, so tests exercise their timeouts, retries and
parsing as they run in production, without a network or a monkeypatch.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()


Response = tuple[int, dict[str, str], bytes]  # status, headers, body


@contextmanager
def serve(respond: Callable[[Request], Response]) -> Iterator[tuple[str, list[Request]]]:
    """Yields the base URL (http://127.0.0.1:<port>) and the list of requests received so far."""
    received: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(
                self.command, url.path, dict(parse_qsl(url.query)), dict(self.headers), body, time.monotonic()
            )
            received.append(request)
            status, headers, payload = respond(request)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped waiting: what a timeout test asks for

        do_GET = do_POST = answer  # noqa: N815 (http.server's naming)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()
