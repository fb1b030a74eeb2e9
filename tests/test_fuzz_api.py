"""Fuzzing: schemathesis runs against the OpenAPI schema of the running server (bounded
examples) and must find no 5xx and no response that violates the schema.

The server is gunicorn, as in production, on a database of its own copied from the demo
template (tests/conftest.py): one worker keeps its database connection between requests
(CONN_MAX_AGE), where Django's live server opened a new connection for every request, which
made this run about twice as long; and the test needs neither the session's database nor a
flush afterwards, so it starts first and runs beside the rest under pytest-xdist.
The same command run against a small API with a known 500 and a known wrong answer must fail:
the bounds (examples per operation, phases) still find real faults. Schemathesis runs with the
hooks of tests/fuzz_hooks.py: every request its own Idempotency-Key (a repeated key had the
idempotency middleware answer the coverage phase's bodies before any view saw them), and the
middleware-only protocol headers fuzzed on the unsafe operations and the sync reads, not again
on every other read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = int(os.environ.get("GRIDSVC_FUZZ_EXAMPLES", "5"))


def schemathesis_command(schema_url: str, headers: list[str]) -> list[str]:
    """The one schemathesis invocation: every operation of the schema, examples + coverage
    (boundary and invalid values of every parameter and body field) + fuzzing with
    ``MAX_EXAMPLES`` generated cases per operation, checking for 5xx and for answers that do
    not match the schema's response definitions."""
    st = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(st),
        "run",
        schema_url,
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--seed",
        "20261124",
        # revoking the fuzzer's own device or grants would only sign the fuzzer out
        "--exclude-path-regex",
        "revoke",
    ]
    for header in headers:
        cmd += ["--header", header]
    return cmd


def schemathesis_env(hooks_report: Path) -> dict[str, str]:
    """The schemathesis process's environment: the hooks of tests/fuzz_hooks.py, which write
    what they did to ``hooks_report``."""
    return {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(ROOT / "tests" / "fuzz_hooks.py"),
        "GRIDSVC_FUZZ_HOOKS_REPORT": str(hooks_report),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_server(demo_database) -> Iterator[str]:
    """gunicorn (one sync worker) serving a copy of the demo database; its base URL."""
    from django.conf import settings

    from tests.conftest import database_url

    db_url = database_url(settings.DATABASES["default"], demo_database)
    env = {**os.environ, "GRIDSVC_TESTING": "1", "DATABASE_URL": db_url}
    env.pop("DATABASE_REPLICA_URL", None)
    log = Path("test-artifacts/fuzz-gunicorn.log")
    log.parent.mkdir(exist_ok=True)
    proc = None
    try:
        for _attempt in range(3):  # the free port may be taken between the check and the bind
            port = _free_port()
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [str(ROOT / ".venv/bin/gunicorn"), "gridsvc.wsgi", "-b", f"127.0.0.1:{port}",
                     "-w", "1", "--timeout", "120", "--no-control-socket"],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            if _answers(proc, f"{base}/health", within=120):
                break
            _stop(proc)
        else:
            pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
        yield base
    finally:
        if proc is not None:
            _stop(proc)


def _answers(proc: subprocess.Popen, url: str, within: float) -> bool:
    """Whether the server answers ``url`` before it exits or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            requests.get(url, timeout=30)
            return True
        except requests.RequestException:
            time.sleep(0.3)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.early  # the longest test, on a database of its own
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(gunicorn_server):
    token = requests.post(
        f"{gunicorn_server}/api/v1/auth/token/",
        json={"username": "street", "password": "gridsvc-demo", "device": "fuzzer"},
        timeout=30,
    ).json()["access"]
    report = Path("test-artifacts/schemathesis.txt")
    report.parent.mkdir(exist_ok=True)
    hooks_report = Path("test-artifacts/schemathesis-hooks.json")
    hooks_report.unlink(missing_ok=True)
    r = subprocess.run(
        schemathesis_command(f"{gunicorn_server}/api/schema/", [f"Authorization: Bearer {token}"]),
        capture_output=True,
        text=True,
        timeout=1500,
        env=schemathesis_env(hooks_report),
    )
    report.write_text(r.stdout + r.stderr)
    assert r.returncode == 0, f"schemathesis found problems (see {report}):\n" + r.stdout[-6000:]
    # the hooks applied: the unsafe operations' cases each had a key of their own, and the
    # protocol headers were left out of the plain reads
    done = json.loads(hooks_report.read_text())
    assert done["keys_replaced"] > 1000 and done["operations_trimmed"] > 100, done


# A small API with two faults a user would notice: listing with a long search term crashes
# (500), and one record is answered in a shape the schema does not promise.
FAULTY_SCHEMA = {
    "openapi": "3.0.3",
    "info": {"title": "faulty", "version": "1"},
    "paths": {
        "/notes/": {
            "get": {
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 40}}
                ],
                "responses": {
                    "200": {
                        "description": "notes",
                        "content": {"application/json": {"schema": {"type": "array"}}},
                    },
                    "400": {"description": "bad query"},
                },
            }
        },
        "/notes/{id}/": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "a note",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["text"],
                                    "properties": {"text": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "404": {"description": "no such note"},
                },
            }
        },
    },
}


class _FaultyHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if url.path == "/schema.json":
            self._answer(200, FAULTY_SCHEMA)
        elif parts == ["notes"]:
            q = parse_qs(url.query).get("q", [""])[0]
            if len(q) > 8:
                self._answer(500, {"detail": "search index overflow"})
            else:
                self._answer(200, [])
        elif len(parts) == 2 and parts[0] == "notes" and parts[1].lstrip("-").isdigit():
            # the text comes back as a number: not what the schema says
            self._answer(200, {"text": 7} if int(parts[1]) % 2 else {"text": "ok"})
        else:
            self._answer(404, {"detail": "not found"})


def test_the_same_fuzzing_finds_a_server_error_and_a_wrong_answer(tmp_path):
    """The bounded run is not blind: on an API that crashes for long search terms and answers
    one record in the wrong shape, it fails and names both."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = subprocess.run(
            schemathesis_command(f"http://127.0.0.1:{server.server_port}/schema.json", []),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=schemathesis_env(tmp_path / "hooks.json"),
        )
    finally:
        server.shutdown()
        server.server_close()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-4000:]
    assert "Server error" in out, out[-4000:]
    assert "Response violates schema" in out, out[-4000:]
