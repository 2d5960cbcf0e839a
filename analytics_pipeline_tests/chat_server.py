"""A small local HTTP server that speaks the OpenAI chat-completions protocol.

The real OpenAI client is pointed at it with a base URL, so the tests exercise the client, dagster-openai's usage
accounting, timeouts, retries and fallback as they run in production, without a network or a monkeypatch.
"""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[dict], tuple[int, str]]  # request body -> (HTTP status, assistant text or error message)


@contextmanager
def chat_server(reply: Reply) -> Iterator[tuple[str, list[dict]]]:
    """Serve on a free loopback port; yields the base URL and the list of requests received."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            status, text = reply(body)
            if status == 200:
                payload = {
                    "id": f"chatcmpl-test-{len(received)}",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
                }
            else:
                payload = {"error": {"message": text, "type": "server_error", "code": None}}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", received
    finally:
        httpd.shutdown()
        httpd.server_close()
