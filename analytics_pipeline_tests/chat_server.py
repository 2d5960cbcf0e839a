"""A local HTTP server that speaks the OpenAI chat-completions protocol.

The real OpenAI client is pointed at it with a base URL, so the tests exercise the client, dagster-openai's usage
accounting, timeouts, retries and fallback as they run in production, without a network or a monkeypatch.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from analytics_pipeline_tests.http_server import Request, Response, serve

Reply = Callable[[dict], tuple[int, str]]  # request body -> (HTTP status, assistant text or error message)


@contextmanager
def chat_server(reply: Reply) -> Iterator[tuple[str, list[dict]]]:
    """Serve on a free loopback port; yields the base URL and the list of request bodies received."""
    received: list[dict] = []

    def respond(request: Request) -> Response:
        body = json.loads(request.body)
        received.append(body)
        status, text = reply(body)
        if status == 200:
            payload = {
                "id": f"chatcmpl-test-{len(received)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
            }
        else:
            payload = {"error": {"message": text, "type": "server_error", "code": None}}
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    with serve(respond) as (base_url, _):
        yield f"{base_url}/v1", received
