"""Read a paginated JSON API incrementally, with timeouts and bounded retries.

Two pagination styles cover most APIs: "next_link" follows a URL the body names (``{"data": [...], "next": URL}``)
until it is empty, "page_number" asks for page 1, 2, ... until a page is empty or a last-page field says it was
the last. The stored watermark is sent as a query parameter, and the highest value of the records' watermark field
becomes the next one. Rate limits and server errors are retried with exponential backoff, honouring Retry-After.
"""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests

from analytics_pipeline.ingestion.reader import as_text
from analytics_pipeline.ingestion.records import Page

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Pagination = Literal["next_link", "page_number"]


class ApiError(RuntimeError):
    """The API could not be read; the message names the URL and the last status or error."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to read. Dotted field names reach into nested objects; "" as records_field means the body
    itself is the list of records. The token is sent as a Bearer header, only to the endpoint's own origin."""

    url: str
    pagination: Pagination
    records_field: str
    next_field: str
    page_param: str
    last_page_field: str
    params: Mapping[str, str]
    watermark_param: str
    watermark_field: str
    timeout_seconds: float
    max_retries: int
    backoff_seconds: float
    token: str | None = field(default=None, repr=False)

    @contextmanager
    def pages(self, since: str | None) -> Iterator[Iterator[Page]]:
        with requests.Session() as session:
            session.headers["Accept"] = "application/json"
            if self.token:
                session.headers["Authorization"] = f"Bearer {self.token}"
            yield self._pages(session, since)

    def _pages(self, session: requests.Session, since: str | None) -> Iterator[Page]:
        params: dict[str, Any] = {**self.params, **({self.watermark_param: since} if since is not None else {})}
        url, number, watermark, followed = self.url, 1, since, set()
        while url:
            if self.pagination == "page_number":
                params[self.page_param] = number
            body = self._get(session, url, params)
            records = _field(body, self.records_field)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise ApiError(f"GET {url}: expected a list of JSON objects under {self.records_field or 'the body'!r}")
            watermark = _highest(watermark, (r.get(self.watermark_field) for r in records))
            yield Page(records, watermark)
            if self.pagination == "page_number":
                last = _field(body, self.last_page_field) if self.last_page_field else None
                finished = not records or (last is not None and number >= int(last))
                url, number = None if finished else url, number + 1
            else:
                link = _field(body, self.next_field)
                url, params = self._follow(url, link, followed) if link else None, {}  # the link holds its query

    def _follow(self, current: str, link: str, followed: set[str]) -> str:
        url = urljoin(current, link)
        if urlsplit(url)[:2] != urlsplit(self.url)[:2]:
            raise ApiError(f"next link {url} leaves {self.url}: not followed, so the token goes nowhere else")
        if url in followed:
            raise ApiError(f"next link {url} was already followed: the API's pagination loops")
        followed.add(url)
        return url

    def _get(self, session: requests.Session, url: str, params: Mapping[str, Any]) -> Any:
        """One page, retried on 429/5xx, timeouts and dropped connections: waits Retry-After when the server sends
        it, else backoff_seconds x 1, 2, 4, ... After the last attempt the error names the URL and what failed."""
        full_url = requests.Request("GET", url, params=params).prepare().url
        for attempt in range(1, self.max_retries + 2):
            try:
                response = session.get(url, params=params, timeout=self.timeout_seconds)
            except (requests.ConnectionError, requests.Timeout) as error:
                failure, wait = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code not in RETRY_STATUSES:
                    break
                failure, wait = f"HTTP {response.status_code}", _retry_after(response)
            if attempt > self.max_retries:
                raise ApiError(f"GET {full_url} failed after {attempt} attempts: {failure}")
            time.sleep(wait if wait is not None else self.backoff_seconds * 2 ** (attempt - 1))
        if not response.ok:
            raise ApiError(f"GET {full_url} returned HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(f"GET {full_url} did not return JSON: {error}") from error


def _field(body: Any, path: str) -> Any:
    for name in filter(None, path.split(".")):
        body = body.get(name) if isinstance(body, dict) else None
    return body


def _retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait: Retry-After is either a number of seconds or an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _highest(current: str | None, values) -> str | None:
    """The later of the current watermark and the page's values, as text."""
    texts = [as_text(v) for v in values if v is not None]
    return max([t for t in (current, *texts) if t is not None], key=_order, default=None)


def _order(text: str) -> tuple:
    """What "later" means for a watermark: numbers by value, ISO timestamps by instant, anything else as text."""
    try:
        return (0, float(text), "")
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (2, 0.0, text)
    return (1, (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp(), "")
