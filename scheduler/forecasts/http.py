"""The one place where provider HTTP happens: timeouts, retries, and fault -> ProviderError.

Every vendor client sends its GETs through :class:`JsonHttpClient`, so a timeout, a refused
connection, a 5xx, a 429 or a body that is not JSON is handled the same way for all of them:

- connection refused/reset, timeouts, truncated bodies and 500/502/503/504 are retried (GETs
  are idempotent) with jittered exponential backoff, then raised as
  ``ProviderError(retryable=True)``;
- 429 is raised at once with the server's ``Retry-After`` (seconds) so the refresher, not a
  worker thread, waits it out;
- 401/403 raise :class:`ProviderAuthError` (not retryable) so a client holding a token can renew
  it; other 4xx (a zone the provider does not know, bad parameters) are not retryable;
- a 2xx body that is not valid JSON is a retryable ProviderError.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from scheduler.domain import ProviderError

logger = logging.getLogger(__name__)

Params = Mapping[str, str | Sequence[str]]

# Statuses worth another try: the server (or a gateway in front of it) failed transiently.
# 501 (the WebAPI's data source cannot forecast) and other 4xx/5xx will not heal by retrying.
RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
MAX_ERROR_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """Timeouts and retry budget for one provider's requests.

    ``read_timeout_s`` bounds each wait for bytes from the server, not the whole transfer.
    ``attempts`` counts tries of one GET for transient faults (1 = no retry).
    """

    connect_timeout_s: float = 3.05
    read_timeout_s: float = 10.0
    attempts: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 2.0
    pool_size: int = 4
    user_agent: str = "greenlight (carbon-aware scheduler)"


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (HTTP 401/403); a token holder may log in again.

    ``json_body`` is False when the refusal came as a non-JSON page (a gateway's HTML 403),
    which WattTime's own clients treat as an expired token.
    """

    def __init__(self, provider: str, message: str, *, status: int, json_body: bool) -> None:
        super().__init__(provider, message, retryable=False)
        self.status = status
        self.json_body = json_body


def path_segment(value: str) -> str:
    """``value`` quoted for use as one URL path segment (zone ids come from configuration)."""
    return quote(value, safe="")


class JsonHttpClient:
    """GETs JSON from one provider's base URL over a pooled ``requests.Session``.

    Thread-safe for concurrent GETs. Raises ProviderError (see the module docstring) and never
    returns anything but decoded JSON.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        settings: HttpSettings | None = None,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.settings = settings or HttpSettings()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._session = session or requests.Session()
        adapter = HTTPAdapter(
            pool_connections=self.settings.pool_size,
            pool_maxsize=self.settings.pool_size,
            max_retries=0,
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {
                "Accept": "application/json",
                "User-Agent": self.settings.user_agent,
            }
        )
        if headers:
            self._session.headers.update(headers)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def get_json(
        self,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        """GET ``base_url/path`` and decode its JSON body, retrying transient faults.

        Raises ProviderError (``ProviderAuthError`` for 401/403).
        """
        url = self.url(path)
        attempts = max(1, self.settings.attempts)
        for attempt in range(1, attempts + 1):
            try:
                return self._get_once(url, params, headers, auth)
            except ProviderError as error:
                if not error.retryable or error.retry_after_s is not None or attempt == attempts:
                    raise
                delay_s = self._backoff_s(attempt)
                logger.info(
                    "%s: GET %s failed (%s); retry %d/%d in %.2fs",
                    self.provider,
                    path,
                    error.message,
                    attempt,
                    attempts - 1,
                    delay_s,
                )
                self._sleep(delay_s)
        raise AssertionError("unreachable: the loop returns or raises")

    def close(self) -> None:
        self._session.close()

    def _backoff_s(self, attempt: int) -> float:
        ceiling_s = min(self.settings.max_backoff_s, self.settings.backoff_s * 2.0 ** (attempt - 1))
        # Jitter spreads retries from many regions hitting one provider at the same instant.
        return ceiling_s * self._rng.uniform(0.5, 1.0)

    def _get_once(
        self,
        url: str,
        params: Params | None,
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> Any:
        timeout = (self.settings.connect_timeout_s, self.settings.read_timeout_s)
        try:
            response = self._session.get(
                url,
                params=params,
                headers=headers,
                auth=auth,
                timeout=timeout,
            )
        except requests.Timeout as error:
            raise ProviderError(self.provider, f"timed out: {error}") from error
        except requests.ConnectionError as error:
            raise ProviderError(self.provider, f"unreachable: {error}") from error
        except requests.RequestException as error:
            # Truncated chunked bodies, invalid URLs and the like: the transfer failed.
            raise ProviderError(self.provider, f"request failed: {error}") from error
        return self._decode(response)

    def _decode(self, response: requests.Response) -> Any:
        status = response.status_code
        if status in AUTH_STATUSES:
            body, is_json = _error_excerpt(response)
            raise ProviderAuthError(
                self.provider,
                f"HTTP {status} (credentials refused): {body}",
                status=status,
                json_body=is_json,
            )
        if status == 429:
            raise ProviderError(
                self.provider,
                "HTTP 429 (rate limited)",
                retry_after_s=_retry_after_s(response),
                retryable=True,
            )
        if status >= 400:
            body, _ = _error_excerpt(response)
            raise ProviderError(
                self.provider,
                f"HTTP {status}: {body}",
                retryable=status in RETRYABLE_STATUSES,
                retry_after_s=_retry_after_s(response) if status == 503 else None,
            )
        if status == 204 or not response.content:
            raise ProviderError(self.provider, f"HTTP {status} with no data")
        try:
            return json.loads(response.content)
        except ValueError as error:
            raise ProviderError(
                self.provider,
                f"malformed JSON (HTTP {status}, {len(response.content)} bytes): {error}",
            ) from error


def _error_excerpt(response: requests.Response) -> tuple[str, bool]:
    """A short message from an error body, and whether the body was JSON."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text[:MAX_ERROR_EXCERPT_CHARS].strip() or response.reason or "", False
    if isinstance(body, Mapping):
        parts = [
            str(body[key])
            for key in ("error", "message", "msg", "title", "detail")
            if key in body and body[key] not in (None, "")
        ]
        if parts:
            return "; ".join(parts)[:MAX_ERROR_EXCERPT_CHARS], True
    return json.dumps(body)[:MAX_ERROR_EXCERPT_CHARS], True


def _retry_after_s(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), response.headers.get("Date"))


def parse_retry_after(value: str | None, date_header: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date).

    An HTTP-date is measured against the response's ``Date`` header when given, so the answer
    does not depend on this machine's clock being right. Unparseable values give None.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
        reference = parsedate_to_datetime(date_header) if date_header else datetime.now(UTC)
    except (TypeError, ValueError):
        return None
    if until.tzinfo is None or reference.tzinfo is None:
        return None
    return max(0.0, (until - reference).total_seconds())
