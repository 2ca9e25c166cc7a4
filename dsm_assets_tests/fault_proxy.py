"""An HTTP proxy in front of moto's S3 server that injects S3 faults: moto has no fault hooks of its own.

    proxy = FaultProxy(moto_url); proxy.start()
    proxy.inject(503, "SlowDown", times=2, method="PUT", path_contains="/files/")
    S3Remote(..., endpoint_url=proxy.url)

A fault answers the next `times` matching requests with an S3 XML error instead of forwarding them. With
`after=True` the request is forwarded first and only its reply is replaced: the write happened, the client
never heard (a reply lost to a timeout or a dropped connection), which is what a retry must survive.
`log` keeps (method, path, status) for every request, so tests can count the retries."""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "content-length"}


@dataclass
class Fault:
    status: int
    code: str
    times: int
    method: str | None
    path_contains: str | None
    after: bool

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method)
                and (self.path_contains is None or self.path_contains in path))


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, status: int, code: str, *, times: int = 1, method: str | None = None,
               path_contains: str | None = None, after: bool = False) -> None:
        with self._lock:
            self.faults.append(Fault(status, code, times, method, path_contains, after))

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.log.append((method, path, status))


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and `Expect: 100-continue` answered by the base class

        def log_message(self, *_args) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "expect":
                        conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                reply = conn.getresponse()
                return reply.status, reply.getheaders(), reply.read()
            finally:
                conn.close()

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            length = str(len(body))
            for name, value in headers:
                if name.lower() == "content-length" and self.command == "HEAD":
                    length = value  # a HEAD reply has no body but tells the object's size
                elif name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = self._body()
            fault = proxy.take_fault(self.command, self.path)
            if fault is None or fault.after:
                status, headers, payload = self._forward(body)
            if fault is not None:
                status, headers = fault.status, [("Content-Type", "application/xml")]
                payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                           f"<Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
                           ).encode()
            proxy.record(self.command, self.path, status)
            self._reply(status, headers, payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
