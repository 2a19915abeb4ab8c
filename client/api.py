"""HTTP side of dq2: the catalog API (`/api/v1/`), its token, errors, pages and streams.

Reads (GET, and the bulk replica lookup, which is a POST that changes nothing)
are retried with capped exponential backoff on 5xx answers and connection
errors. Writes are retried only when the connection was refused, i.e. when
the request certainly never reached the server, so nothing is done twice.
"""

import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

from client import __version__
from client.errors import ConnectionProblem, NotFound, ServerError

USER_AGENT = f"dq2/{__version__}"
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
NDJSON = "application/x-ndjson"
# Errors and servers that cannot stream still answer JSON.
ACCEPT_STREAM = "application/x-ndjson, application/json;q=0.9"
TOKEN_HINT = "give a token with --token, $PANDA_TOKEN or ~/.panda/token"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would forward our Authorization header to wherever a redirect
    # points (and turn a POST into a GET); a catalog call never redirects.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class _Transient(Exception):
    """A failure worth another try after a pause."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def quote_name(name: str) -> str:
    """A dataset, file or site name as one URL path segment (names never contain '/')."""
    return urllib.parse.quote(name, safe=":+")


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Delay before retry `attempt` (1-based): base, 2x, 4x ... capped, minus up to 20 % jitter."""
    return min(max_delay, base_delay * 2 ** (attempt - 1)) * random.uniform(0.8, 1.0)


class Catalog:
    """One catalog server, called with one (optional) token."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        tries: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.server = server.rstrip("/")
        self.token = token
        self.tries = max(1, tries)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect())

    # -- calls ------------------------------------------------------------

    def get(self, path: str, params: dict | None = None) -> dict:
        return self._json("GET", self.url(path, params), retry_all=True)

    def post(self, path: str, body: dict | None = None, read_only: bool = False) -> dict:
        """POST a JSON body; read_only calls (lookups) are retried like a GET."""
        return self._json("POST", self.url(path), body=body or {}, retry_all=read_only)

    def upload(self, path: str, data: bytes) -> dict:
        """POST raw bytes (the script cache). It stores them under their SHA-256, so a repeat is harmless
        and the upload is retried like a read."""
        return self._json("POST", self.url(path), body=data, retry_all=True)

    def delete(self, path: str) -> dict:
        return self._json("DELETE", self.url(path))

    def pages(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a keyset-paged listing, following `next` page by page."""
        return self._pages_from(self.url(path, params))

    def records(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a listing read as an NDJSON stream (one object a line, memory stays flat).

        A server that answers a JSON page instead is followed page by page.
        """
        url = self.url(path, {**(params or {}), "stream": 1})
        response = self._open("GET", url, retry_all=True, accept=ACCEPT_STREAM)
        with response:
            if not response.headers.get("Content-Type", "").startswith(NDJSON):
                page = _decode(response.read(), url)
                yield from page.get("results", [])
                yield from self._pages_from(self._on_this_server(page.get("next")))
                return
            yield from _ndjson_lines(response, url)

    def _pages_from(self, url: str | None) -> Iterator[dict]:
        while url:
            page = self._json("GET", url, retry_all=True)
            yield from page.get("results", [])
            url = self._on_this_server(page.get("next"))

    # -- URLs -------------------------------------------------------------

    def url(self, path: str, params: dict | None = None) -> str:
        query = {key: value for key, value in (params or {}).items() if value not in (None, "")}
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return f"{self.server}{path}{suffix}"

    def _on_this_server(self, link: str | None) -> str | None:
        """A `next` link re-rooted on our server, so the token never goes to another host."""
        if not link:
            return None
        parts = urllib.parse.urlsplit(link)
        origin = urllib.parse.urlsplit(self.server)
        return urllib.parse.urlunsplit((origin.scheme, origin.netloc, parts.path, parts.query, ""))

    # -- transport --------------------------------------------------------

    def _json(self, method: str, url: str, body: dict | bytes | None = None, retry_all: bool = False) -> dict:
        def once():
            with self._open_once(method, url, body, "application/json", retry_all) as response:
                data = self._read_body(response, method, url, retry_all)
                return {} if response.status == 204 else _decode(data, url)  # 204: done, nothing to say

        return self._retrying(once)

    def _open(self, method, url, body=None, retry_all=False, accept="application/json"):
        """The open response of the first try that succeeds; raises a DQ2Error otherwise."""
        return self._retrying(lambda: self._open_once(method, url, body, accept, retry_all))

    def _retrying(self, once: Callable):
        last: Exception | None = None
        for attempt in range(1, self.tries + 1):
            try:
                return once()
            except _Transient as exc:
                last = exc.error
            if attempt < self.tries:
                self._sleep(backoff_delay(attempt, self.base_delay, self.max_delay))
        raise last  # the DQ2Error of the last try

    def _read_body(self, response, method: str, url: str, retry_all: bool) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:
            error = ConnectionProblem(f"the answer to {method} {_path(url)} broke off: {_reason(exc)}")
            if retry_all:
                raise _Transient(error) from exc
            raise error from exc

    def _open_once(self, method, url, body, accept, retry_all):
        request = self._request(method, url, body, accept)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            error = _server_error(exc, method, url, self.token)
            if retry_all and exc.code in TRANSIENT_STATUS:
                raise _Transient(error) from exc
            raise error from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            error = ConnectionProblem(f"cannot reach {self.server}: {_reason(exc)}")
            if retry_all or _refused(exc):
                raise _Transient(error) from exc
            raise error from exc

    def _request(self, method, url, body, accept) -> urllib.request.Request:
        headers = {"Accept": accept, "User-Agent": USER_AGENT}
        data = None
        if isinstance(body, bytes):
            data = body
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(url, data=data, headers=headers, method=method)


def _decode(body: bytes, url: str) -> dict:
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ServerError(f"the server's answer to {_path(url)} is not JSON: {body[:120]!r}") from None
    if not isinstance(answer, dict):
        raise ServerError(f"the server's answer to {_path(url)} is not a JSON object")
    return answer


def _ndjson_lines(response, url: str) -> Iterator[dict]:
    count = 0
    try:
        for line in response:
            if line.strip():
                count += 1
                yield _decode(line, url)
    except (OSError, http.client.HTTPException) as exc:
        # Retrying would repeat what was already printed: report where it broke.
        raise ConnectionProblem(f"the listing of {_path(url)} broke after {count} items: {_reason(exc)}") from exc


def _server_error(exc: urllib.error.HTTPError, method: str, url: str, token: str | None) -> ServerError:
    """The server's own one-line `error`, or a line naming the call and the status."""
    try:
        body = exc.read() or b""
    except (OSError, http.client.HTTPException):
        body = b""
    try:
        message = str(json.loads(body).get("error") or "")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        message = ""
    if exc.code in (301, 302, 303, 307, 308):
        message = f"the server redirected {method} {_path(url)} to {exc.headers.get('Location')}; check the server URL"
    message = message or f"HTTP {exc.code} {exc.reason} on {method} {_path(url)}"
    if exc.code == 401 and not token:
        message += f" ({TOKEN_HINT})"
    if exc.code >= 500:
        message = f"server error (HTTP {exc.code}) on {method} {_path(url)}: {message}"
    kind = NotFound if exc.code == 404 else ServerError
    return kind(" ".join(message.split()), status=exc.code)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    return str(reason) or type(reason).__name__


def _refused(exc: Exception) -> bool:
    return isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path
