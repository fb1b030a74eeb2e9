"""A light HTTP/1.1 client for the benchmarks: one socket, kept open while the server keeps
it (gunicorn's sync workers close after every answer: then the next call connects again, as
any client must), no retries, no cookie jar, no proxy or redirect logic — ~0.05 ms per call
where ``requests`` adds 0.5–2 ms on a busy machine, which would be counted as the service's.
"""

from __future__ import annotations

import gzip
import json as jsonlib
import socket
from typing import Any

from requests.structures import CaseInsensitiveDict


def parse_head(head: bytes) -> tuple[int, CaseInsensitiveDict]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: CaseInsensitiveDict = CaseInsensitiveDict()
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().decode("latin-1")] = value.strip().decode("latin-1")
    if lines[0].startswith(b"HTTP/1.0") and "connection" not in headers:
        headers["Connection"] = "close"
    return status, headers


class Response:
    """What the benchmarks read of an answer (the names ``requests`` uses)."""

    def __init__(self, status: int, headers: CaseInsensitiveDict, raw: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.raw = raw

    @property
    def content(self) -> bytes:
        if self.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(self.raw)
        return self.raw

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client:
    def __init__(self, port: int, token: str | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.headers: dict[str, str] = {}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> Response:
        hdrs = {**self.headers, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        data = head.encode() + b"\r\n" + body
        fresh = self.sock is None
        if fresh:
            self._connect()
        try:
            self.sock.sendall(data)  # type: ignore[union-attr]
            resp = self._read(method)
        except (ConnectionError, OSError):
            if fresh:
                raise
            self._connect()  # the server closed an idle keep-alive connection: once more
            self.sock.sendall(data)  # type: ignore[union-attr]
            resp = self._read(method)
        if resp.headers.get("Connection", "").lower() == "close":
            self.close()
        return resp

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Response:
        return self.request("POST", path, json=json, headers=headers)

    def _recv(self) -> None:
        chunk = self.sock.recv(262144)  # type: ignore[union-attr]
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def _read(self, method: str) -> Response:
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, headers = parse_head(head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b"")
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                while b"\r\n" not in self.buf:
                    self._recv()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._recv()
                out += self.buf[:size]
                self.buf = self.buf[size + 2 :]
                if size == 0:
                    return Response(status, headers, bytes(out))
        if "Content-Length" in headers:
            length = int(headers["Content-Length"])
            while len(self.buf) < length:
                self._recv()
            raw, self.buf = self.buf[:length], self.buf[length:]
            return Response(status, headers, raw)
        while True:  # until the server closes
            try:
                self._recv()
            except ConnectionError:
                break
        raw, self.buf = self.buf, b""
        headers["Connection"] = "close"
        return Response(status, headers, raw)
