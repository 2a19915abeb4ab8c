"""Fixtures for the pilot tests: a real HTTP server on 127.0.0.1 that
answers from Python callables, and the requests it received; an HTTP
storage element (GET/HEAD/PUT, the dq2 client tests' one); and a storage
that accepts connections but never answers.

The pilot imports no Django and these tests need no database.
"""

import json
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.client.conftest import http_storage  # noqa: F401 - a fixture for the HTTP mover tests


class RecordedRequest:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))


class StubServer:
    """Routes map a path to `handler(request) -> (status, body)`; a dict or
    list body is sent as JSON, bytes as they are."""

    def __init__(self):
        self.routes = {}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _handler_class(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._answer(b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, body):
                request = RecordedRequest(self.command, self.path, dict(self.headers), body)
                status, payload = stub.dispatch(request)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass  # keep test output quiet

        return Handler

    def dispatch(self, request):
        with self._lock:
            self.requests.append(request)
        handler = self.routes.get(request.path)
        if handler is None:
            return 404, {"error": f"no route {request.path}"}
        return handler(request)

    def requests_to(self, path):
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self):
        self._thread.start()
        return self

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def stub_server():
    server = StubServer().start()
    yield server
    server.close()


@pytest.fixture
def free_port():
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_storage():
    """The URL of an "HTTP storage" that accepts connections and never answers.

    Nobody calls accept(): the kernel completes the handshakes into the
    backlog, the client sends its request and waits for an answer that
    never comes: a storage that hangs.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/se"
    listener.close()
