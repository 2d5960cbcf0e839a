"""A local HTTP server that speaks the OpenAI chat-completions and embeddings protocols.

The real OpenAI client is pointed at it with a base URL, so the tests exercise the client, dagster-openai's usage
accounting, timeouts, retries and fallback as they run in production, without a network or a monkeypatch.
"""

import array
import base64
import json
import math
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from analytics_pipeline_tests.http_server import Request, Response, serve

Reply = Callable[[dict], tuple[int, str]]  # request body -> (HTTP status, assistant text or error message)
# embeddings request body -> (HTTP status, one vector per input, or an error message)
Embed = Callable[[dict], tuple[int, list[list[float]] | str]]
WORD_VECTOR_DIMENSIONS = 64


def word_vector(text: str) -> list[float]:
    """A deterministic stand-in for an embedding model: each lower-case word counted into one of 64 buckets (by a
    CRC of the word), then scaled to length 1. Texts sharing words are near, as with a real model."""
    counts = [0.0] * WORD_VECTOR_DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        counts[zlib.crc32(word.encode()) % WORD_VECTOR_DIMENSIONS] += 1
    norm = math.sqrt(sum(c * c for c in counts)) or 1.0
    return [c / norm for c in counts]


def inputs(body: dict) -> list[str]:
    """The texts of an embeddings request (one text or a list)."""
    return body["input"] if isinstance(body["input"], list) else [body["input"]]


def word_vectors(body: dict) -> tuple[int, list[list[float]]]:
    return 200, [word_vector(text) for text in inputs(body)]


def _embeddings(body: dict, embed: Embed) -> tuple[int, dict]:
    status, vectors = embed(body)
    if status != 200:
        return status, {"error": {"message": vectors, "type": "server_error", "code": None}}
    # The client asks for base64 (little-endian float32) unless told otherwise, as OpenAI's API answers it.
    encode = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i,
         "embedding": base64.b64encode(array.array("f", v).tobytes()).decode() if encode else v}
        for i, v in enumerate(vectors)
    ]
    tokens = sum(len(text.split()) for text in inputs(body))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}


@contextmanager
def chat_server(reply: Reply, embed: Embed = word_vectors) -> Iterator[tuple[str, list[dict]]]:
    """Serve on a free loopback port; yields the base URL and the list of request bodies received (chat requests
    have "messages", embeddings requests "input")."""
    received: list[dict] = []

    def respond(request: Request) -> Response:
        body = json.loads(request.body)
        received.append(body)
        if request.path.endswith("/embeddings"):
            status, payload = _embeddings(body, embed)
            return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()
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
