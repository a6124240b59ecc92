"""A small client for the Greenlight REST API, as the CLI uses it.

One ``requests.Session`` with explicit ``(connect, read)`` timeouts and connect retries, and
one place (:func:`describe_http_error`) that turns any failure into a one-line message.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from scheduler.cli.errors import CliError

CONNECT_TIMEOUT_S = 3.05
DEFAULT_READ_TIMEOUT_S = 30.0
# Connection attempts that never reached the server are safe to retry for any method.
_RETRY = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.1)
_MAX_MESSAGE_CHARS = 300


class ApiClient:
    """Calls ``base_url`` with a bearer ``token``. Every method raises CliError on failure."""

    def __init__(
        self, base_url: str, token: str | None, *, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = (CONNECT_TIMEOUT_S, read_timeout_s)
        self._session = requests.Session()
        self._session.mount("http://", HTTPAdapter(max_retries=_RETRY))
        self._session.mount("https://", HTTPAdapter(max_retries=_RETRY))
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``path`` and return its JSON body."""
        return _json(self._request("GET", path, params=params))

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """GET ``path`` and return its body as text (CSV, HTML, plain text)."""
        return self._request("GET", path, params=params).text

    def post(self, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer."""
        return _json(self._request("POST", path, json=body, params=params))

    def close(self) -> None:
        self._session.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        if "params" in kwargs and kwargs["params"] is not None:
            kwargs["params"] = {k: v for k, v in kwargs["params"].items() if v is not None}
        try:
            response = self._session.request(method, url, timeout=self._timeout, **kwargs)
        except requests.exceptions.Timeout:
            raise CliError(
                f"the Greenlight API at {self.base_url} did not answer within "
                f"{self._timeout[1]:g} s"
            ) from None
        except requests.exceptions.ConnectionError:
            raise CliError(
                f"cannot reach the Greenlight API at {self.base_url} (is "
                "`greenlight serve` running? set --url or GREENLIGHT_URL)"
            ) from None
        except requests.exceptions.RequestException as e:
            raise CliError(f"request to {url} failed: {_one_line(str(e))}") from None
        if response.status_code >= 400:
            raise CliError(describe_http_error(response, has_token=bool(self._token)))
        return response


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CliError(
            f"{response.url} answered with something that is not JSON; is --url a Greenlight API?"
        ) from None


def describe_http_error(response: requests.Response, *, has_token: bool) -> str:
    """``"<status> <reason>: <what the server said>"`` on one line, with a hint for 401."""
    detail = _detail(response)
    message = f"{response.status_code} {response.reason or ''}".strip() + f": {detail}"
    if response.status_code == 401 and not has_token:
        message += " (set --token or GREENLIGHT_TOKEN)"
    return _one_line(message)


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or "no details"
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(_validation_item(item) for item in detail) or "invalid request"
    return str(detail) if detail is not None else str(body)


def _validation_item(item: Any) -> str:
    """``{"loc": ["body", "resources", "gpus"], "msg": ...}`` -> ``resources.gpus: ...``."""
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
    msg = str(item.get("msg", "invalid"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE_CHARS else flat[: _MAX_MESSAGE_CHARS - 1] + "…"
