"""Secrets out of text that is stored or shown: error messages of providers (an LLM API, a REST source, a database)
echo what they were sent, including the API key and the Authorization header, and what is stored in metadata, logs
or Postgres is readable by anyone with the UI or a BI login."""

import re
from collections.abc import Iterable

MASK = "***"
MAX_ERROR_CHARS = 300  # of a provider's error kept in metadata
_MIN_SECRET_LENGTH = 4  # shorter "secrets" (an empty or test value) would mask ordinary words

# Credentials after the word that announces them: "Bearer <token>", "Authorization: <anything>",
# "api_key=<value>", "x-api-key: <value>", "token": "<value>", "password=<value>".
_ANNOUNCED = re.compile(
    r"(?P<keep>\b(?:bearer|basic|token)\s+"
    r"|\b(?:authorization|proxy-authorization|x-api-key|api[_-]?key|access[_-]?token|token|secret|password)"
    r"['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<secret>(?:bearer\s+|basic\s+)?[^\s'\",;}&]+)",
    re.I,
)
# Tokens shaped like keys whatever surrounds them: OpenAI's sk-..., GitHub's ghp_..., Slack's xox?-..., AWS access
# key ids, and any 32+ character run of letters and digits with both in it (hex digests, opaque tokens).
_KEY_LIKE = re.compile(
    r"\b(?:sk-[\w*.-]{6,}|gh[pousr]_\w{10,}|xox[abpr]-[\w-]{10,}|AKIA[0-9A-Z]{16})"
    r"|\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{32,}\b"
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the given secret values, anything announced as a credential and key-like tokens masked."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, MASK)
    text = _ANNOUNCED.sub(lambda match: match["keep"] + MASK, text)
    return _KEY_LIKE.sub(MASK, text)


def error_text(error: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """A provider's error as it may be stored: its type and message, redacted, then cut to MAX_ERROR_CHARS (after
    redacting, so a cut never splits a secret in two)."""
    return redact(f"{type(error).__name__}: {error}", secrets)[:MAX_ERROR_CHARS]
