"""HTTP side of the pilot protocol: getJob, updateJob, getStatus, and the storage space report.

Every protocol call is a form-encoded POST to `{server}/server/panda/<method>`
that asks for JSON. Transient failures (5xx, connection errors, timeouts)
are retried with capped exponential backoff and jitter; a refused credential
is fatal; a bad request is never repeated.

The space report is a JSON POST to `{server}/api/v1/sites/<site>/space`,
sent once: it is repeated after every job anyway, and a server without the
endpoint must not slow the pilot down.
"""

import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from pilot import __version__

logger = logging.getLogger(__name__)

# jobdispatcher/Protocol.py status codes
SC_SUCCESS = 0
SC_TIMEOUT = 10
SC_NO_JOBS = 20
SC_FAILED = 30
SC_INVALID = 50
SC_ROLE = 60
SC_PERMS = 70

USER_AGENT = f"pandamon-pilot/{__version__}"


class ClientError(Exception):
    """Base class of everything the client raises."""


class CredentialRefused(ClientError):
    """The server refused our credential (403 / StatusCode 70): fatal."""


class BadRequest(ClientError):
    """The server rejected the request itself (400 / StatusCode 50)."""


class ProtocolError(ClientError):
    """The server answered something that is not the pilot protocol."""


class ServerUnreachable(ClientError):
    """Transient failures went on until the retries were used up."""


class RequestAborted(ClientError):
    """The caller asked to stop while we were waiting to retry."""


class ReportFailed(ClientError):
    """A one-shot report (storage space) did not get a 2xx answer."""


class _TransientError(ClientError):
    """Worth another try after a pause."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET and forward our
    # Authorization header to wherever the redirect points; refuse instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Delay before retry number `attempt` (1-based): base, 2x, 4x ... capped.

    The jitter only shortens the delay (80-100 %), so the cap holds and
    pilots that failed together do not all come back in the same second.
    """
    capped = min(max_delay, base_delay * (2 ** (attempt - 1)))
    return capped * random.uniform(0.8, 1.0)


def error_dialog(answer: dict) -> str:
    return str(answer.get("errorDialog") or answer.get("message") or answer)


class PandaClient:
    """Talks to one PanDA-compatible server on behalf of one pilot."""

    def __init__(
        self,
        server: str,
        credential: str | None = None,
        max_tries: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.server = server.rstrip("/")
        self.base_url = self.server + "/server/panda/"
        self._credential = credential
        self.max_tries = max(1, max_tries)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect())

    # -- protocol calls -------------------------------------------------

    def get_job(self, form: dict, abort: threading.Event | None = None) -> dict:
        return self.call("getJob", form, abort=abort)

    def update_job(
        self, form: dict, tries: int | None = None, abort: threading.Event | None = None, insist: bool = False
    ) -> dict:
        """Send one updateJob.

        insist: also retry answers whose StatusCode is not 0 (the final
        update must reach the server; a heartbeat can wait for the next one).
        """
        retry_answer = _is_not_success if insist else None
        return self.call("updateJob", form, tries=tries, abort=abort, retry_answer=retry_answer)

    def get_status(self, panda_ids: list[int]) -> dict[int, tuple[str, str]]:
        """Map each PandaID to (status, attemptNr) as the server reports them."""
        answer = self.call("getStatus", {"ids": ",".join(str(i) for i in panda_ids)})
        statuses = str(answer.get("status", "")).split("+")
        attempts = str(answer.get("attemptNr", "")).split("+")

        def nth(items: list[str], index: int) -> str:
            return items[index] if index < len(items) else ""

        return {panda_id: (nth(statuses, index), nth(attempts, index)) for index, panda_id in enumerate(panda_ids)}

    def report_space(self, site: str, space: dict) -> dict:
        """POST `space` ({"used_bytes", "free_bytes", "total_bytes"}) for `site`, one try.

        Returns the server's JSON answer; raises ReportFailed on any HTTP
        error, connection error or timeout (the caller only logs it).
        """
        url = f"{self.server}/api/v1/sites/{urllib.parse.quote(site, safe='')}/space"
        request = urllib.request.Request(
            url, data=json.dumps(space).encode(), headers=self._headers("application/json"), method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise ReportFailed(f"space report: HTTP {exc.code}: {_http_error_detail(exc)}") from exc
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            raise ReportFailed(f"space report: {type(exc).__name__}: {exc}") from exc
        try:
            answer = json.loads(body) if body else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReportFailed(f"space report: answer is not JSON: {body[:200]!r}") from exc
        return answer if isinstance(answer, dict) else {"answer": answer}

    # -- transport ------------------------------------------------------

    def call(
        self,
        method: str,
        form: dict,
        tries: int | None = None,
        abort: threading.Event | None = None,
        retry_answer: Callable[[dict], bool] | None = None,
    ) -> dict:
        """POST `form` to `method`, retrying transient failures."""
        tries = tries or self.max_tries
        last_error: Exception | None = None
        for attempt in range(1, tries + 1):
            try:
                answer = self._post_once(method, form)
                if retry_answer is None or not retry_answer(answer):
                    return answer
                last_error = _TransientError(f"StatusCode {answer.get('StatusCode')}: {error_dialog(answer)}")
            except _TransientError as exc:
                last_error = exc
            if attempt == tries:
                break
            delay = backoff_delay(attempt, self.base_delay, self.max_delay)
            logger.warning("%s failed (try %d/%d): %s; retrying in %.1f s", method, attempt, tries, last_error, delay)
            self._wait(delay, abort)
        raise ServerUnreachable(f"{method}: gave up after {tries} tries: {last_error}")

    def _wait(self, delay: float, abort: threading.Event | None) -> None:
        if abort is None:
            self._sleep(delay)
        elif abort.wait(delay):
            raise RequestAborted("stopped while waiting to retry")

    def _post_once(self, method: str, form: dict) -> dict:
        request = self._build_request(method, form)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            _raise_for_http_error(method, exc)
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
        return _check_answer(method, _decode_json(method, body))

    def _build_request(self, method: str, form: dict) -> urllib.request.Request:
        data = urllib.parse.urlencode({k: _form_value(v) for k, v in form.items()})
        headers = self._headers("application/x-www-form-urlencoded")
        return urllib.request.Request(self.base_url + method, data=data.encode(), headers=headers, method="POST")

    def _headers(self, content_type: str) -> dict:
        headers = {"Content-Type": content_type, "Accept": "application/json", "User-Agent": USER_AGENT}
        if self._credential:
            headers["Authorization"] = f"Bearer {self._credential}"
        return headers


def _form_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _is_not_success(answer: dict) -> bool:
    return answer.get("StatusCode") != SC_SUCCESS


def _decode_json(method: str, body: bytes) -> dict:
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{method}: answer is not JSON: {body[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise ProtocolError(f"{method}: answer is not a JSON object: {body[:200]!r}")
    return answer


def _check_answer(method: str, answer: dict) -> dict:
    """Normalise StatusCode to an int and raise for the fatal ones."""
    try:
        answer["StatusCode"] = int(answer.get("StatusCode"))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{method}: answer has no StatusCode: {answer}") from exc
    if answer["StatusCode"] in (SC_PERMS, SC_ROLE):
        raise CredentialRefused(f"{method}: {error_dialog(answer)}")
    return answer


def _http_error_detail(exc: urllib.error.HTTPError) -> str:
    """The `detail` of a JSON error answer (the API's style), else the start of the body."""
    body = exc.read() or b""
    try:
        answer = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body[:200].decode("utf-8", "replace") or str(exc.reason)
    if isinstance(answer, dict):
        return str(answer.get("detail") or answer)
    return str(answer)


def _raise_for_http_error(method: str, exc: urllib.error.HTTPError):
    body = exc.read() or b""
    try:
        dialog = error_dialog(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError):
        dialog = body[:200].decode("utf-8", "replace") or exc.reason
    message = f"{method}: HTTP {exc.code}: {dialog}"
    if exc.code in (401, 403):
        raise CredentialRefused(message) from exc
    if exc.code == 400:
        raise BadRequest(message) from exc
    if exc.code >= 500 or exc.code in (408, 429):
        raise _TransientError(message) from exc
    raise ProtocolError(message) from exc
