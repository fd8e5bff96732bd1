"""A small file server on 127.0.0.1 for the staging tests: HTTP/1.1 with byte ranges
(``Range``, ``If-Range`` against an ETag, 206/416 answers), and behaviours a download must
survive, chosen by the URL path:

* ``/files/<name>``        normal, ranges honoured
* ``/cut/<name>``          the first request of each file sends half the body, then closes the
                           connection (Content-Length announces the whole); later ones are normal
* ``/norange/<name>``      like ``cut``, but later requests ignore ``Range`` (200, whole file)
* ``/flaky/<name>``        the first request answers 503
* anything else            404

Every request is recorded (path and Range header) so that tests can see what was asked.
"""

from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-$")


class FileServer:
    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self._first_done: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, mode: str, name: str) -> str:
        return f"{self.base}/{mode}/{name}"

    @staticmethod
    def etag(data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._first_done.clear()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = h.path.split("/")
        mode, name = (parts[1], "/".join(parts[2:])) if len(parts) >= 3 else ("", "")
        range_header = h.headers.get("Range")
        with self._lock:
            self.requests.append((h.path, range_header))
            first = (mode, name) not in self._first_done
            self._first_done.add((mode, name))
        data = self.files.get(name)
        if data is None or mode not in ("files", "cut", "norange", "flaky"):
            self._send(h, 404, b"not found", {})
            return
        if mode == "flaky" and first:
            self._send(h, 503, b"try later", {})
            return
        etag = self.etag(data)
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        start = 0
        m = _RANGE.match(range_header or "")
        honour = m is not None and not (mode == "norange" and not first)
        if_range = h.headers.get("If-Range")
        if honour and (if_range is None or if_range == etag):
            start = int(m.group(1))
            if start >= len(data):
                self._send(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        status = 206 if start else 200
        if mode in ("cut", "norange") and first:
            # announce the whole body, send half, hang up
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body)), "Connection": "close"}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        self._send(h, status, body, headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
        h.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body)), "Connection": "close"}.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True
