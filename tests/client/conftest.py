"""Small real HTTP servers for the dq2 client's tests: a storage element and a scripted catalog.

They run in a thread of the test process on a free loopback port; nothing of
Django is involved (the client must work against any server speaking the
protocol).
"""

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest


class StorageHandler(BaseHTTPRequestHandler):
    """GET (with `Range: bytes=N-`), HEAD (with an adler32 `Digest`) and PUT under the server's root."""

    server: "StorageServer"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _path(self) -> Path:
        return self.server.root / urlsplit(self.path).path.lstrip("/")

    def do_HEAD(self):
        self.server.log.append(("HEAD", self.path, None))
        path = self._path()
        if not path.is_file():
            return self._status(404)
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        if self.server.send_digest:
            self.send_header("Digest", f"adler32={zlib.adler32(data):08x}")
        self.end_headers()

    def do_GET(self):
        self.server.log.append(("GET", self.path, self.headers.get("Range")))
        time.sleep(self.server.delay)
        path = self._path()
        if not path.is_file():
            return self._status(404)
        data = path.read_bytes()
        start = self._range_start()
        if start is not None and start >= len(data):
            return self._status(416)
        if start is None or self.server.ignore_range:
            self.send_response(200)
            start = 0
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.break_after is not None:
            # Promise the whole body, send part of it, hang up: a broken transfer.
            body, self.server.break_after = body[: self.server.break_after], None
            self.close_connection = True
        self.wfile.write(body)

    def do_PUT(self):
        self.server.log.append(("PUT", self.path, None))
        time.sleep(self.server.delay)
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._status(201)

    def _range_start(self):
        header = self.headers.get("Range")
        if not header or not header.startswith("bytes=") or not header.endswith("-"):
            return None
        return int(header[len("bytes=") : -1])

    def _status(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class StorageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), StorageHandler)
        self.root = root
        self.log: list[tuple[str, str, str | None]] = []
        self.ignore_range = False
        self.send_digest = True
        self.break_after: int | None = None
        self.delay = 0.0  # seconds before each GET and PUT is served: a slow storage element

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class CatalogHandler(BaseHTTPRequestHandler):
    """Answers from the server's route table: (method, path) -> list of (status, body, content_type).

    Each call takes the next answer of its route (the last one repeats), so a test can
    script "503, then 200". Requests are logged with their headers and JSON body.
    """

    server: "CatalogServer"

    def log_message(self, *args):
        pass

    def _answer(self, method):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.log.append({"method": method, "path": parts.path, "query": parse_qs(parts.query),
                                "headers": dict(self.headers), "body": body})  # fmt: skip
        answers = self.server.routes.get((method, parts.path))
        if not answers:
            status, payload, content_type = 404, {"error": f"no route {method} {parts.path}"}, "application/json"
        else:
            status, payload, content_type = answers.pop(0) if len(answers) > 1 else answers[0]
        if callable(payload):
            payload = payload(self.server.log[-1])
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        # Content type "truncated": promise more than is sent, then hang up (a connection lost mid-answer).
        promised = len(data) + (100 if content_type == "truncated" else 0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if content_type == "truncated" else content_type)
        self.send_header("Content-Length", str(promised))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = promised != len(data)

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def do_DELETE(self):
        self._answer("DELETE")


class CatalogServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CatalogHandler)
        self.routes: dict[tuple[str, str], list] = {}
        self.log: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, method, path, *answers, content_type="application/json"):
        """Script the answers of one route: each is (status, body) or (status, body, content_type)."""
        self.routes[(method, path)] = [a if len(a) == 3 else (*a, content_type) for a in answers]


def _serve(server):
    # A short poll interval: shutdown() waits for it at the end of every test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_storage(tmp_path):
    root = tmp_path / "http-se"
    root.mkdir()
    server = _serve(StorageServer(root))
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def catalog_server():
    server = _serve(CatalogServer())
    yield server
    server.shutdown()
    server.server_close()
