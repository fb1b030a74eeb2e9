"""Schemathesis hooks of the fuzzing run (tests/test_fuzz_api.py), loaded by the schemathesis
process itself (``SCHEMATHESIS_HOOKS``); not a test module.

- Each generated request is a request of its own: a valid ``Idempotency-Key`` that the
  generator repeats (the coverage phase sends one value with every case of an operation) is
  replaced by a fresh one, so the request reaches the view. Repeated, every case after an
  operation's first was answered by the idempotency middleware (422
  ``idempotency_key_reused``) and its body never tested. Cases about the key itself keep the
  generated value, and so does an invalid key. Two operations that then answered 500 keep
  the old behaviour until their views are fixed (:data:`KNOWN_SERVER_ERRORS`).
- ``X-Device-Time`` and ``X-App-Version`` on a safe request are read by the middleware only,
  before any view and the same way on every path (the request clock is used by the views that
  write: visits, community records, case actions). They stay declared on every unsafe
  operation and on the phone's sync reads (:data:`PROTOCOL_HEADER_READS`); on the other safe
  operations their boundary and wrong-type values (about 17 requests per operation) only
  repeated the same middleware, so they are left out of those operations' schema here.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import uuid
from typing import Any

import schemathesis

IDEMPOTENCY_KEY = "Idempotency-Key"
#: a key the middleware accepts (api/schema.py: printable ASCII, 1-255 characters)
VALID_KEY = re.compile(r"[!-~]{1,255}")
#: headers read by the middleware alone on a safe request (gridsvc/sync/middleware.py)
MIDDLEWARE_READ_HEADERS = frozenset({"X-Device-Time", "X-App-Version"})
SAFE_METHODS = frozenset({"get", "head", "options"})
#: safe operations that keep those headers: the phone's sync reads and its first call
PROTOCOL_HEADER_READS = ("/api/v1/sync/", "/api/v1/me/")

#: Operations that answer 500 to a body that reaches their view, each with its reproduction
#: (found when the fresh keys below let the coverage phase's bodies through; to be fixed by
#: the views' owners, then removed from here). Until then their cases keep the generated key,
#: as every operation's did before: after an operation's first case the idempotency
#: middleware answers (422 idempotency_key_reused) and the body is not tested.
KNOWN_SERVER_ERRORS: set[tuple[str, str]] = set()  # none now (the two found were fixed)

#: what the hooks did, written at exit to ``$GRIDSVC_FUZZ_HOOKS_REPORT`` (the test reads it:
#: hooks that silently stopped applying would fail it)
DONE = {"operations_trimmed": 0, "keys_replaced": 0, "keys_kept": 0, "known_server_errors": 0}


@atexit.register
def _report() -> None:
    path = os.environ.get("GRIDSVC_FUZZ_HOOKS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(DONE, out)


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:  # noqa: ARG001
    for path, operations in (raw_schema.get("paths") or {}).items():
        if path.startswith(PROTOCOL_HEADER_READS):
            continue
        for method, operation in operations.items():
            if method not in SAFE_METHODS or not isinstance(operation, dict):
                continue
            parameters = operation.get("parameters") or []
            kept = [
                p
                for p in parameters
                if not (p.get("in") == "header" and p.get("name") in MIDDLEWARE_READ_HEADERS)
            ]
            if len(kept) < len(parameters):
                operation["parameters"] = kept
                DONE["operations_trimmed"] += 1


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:  # noqa: ARG001
    headers = case.headers
    if not headers or IDEMPOTENCY_KEY not in headers:
        return
    if (case.operation.method.upper(), case.operation.path) in KNOWN_SERVER_ERRORS:
        DONE["known_server_errors"] += 1
        return
    about_the_key = case.meta is not None and case.meta.phase.data.parameter == IDEMPOTENCY_KEY
    key = headers[IDEMPOTENCY_KEY]
    if about_the_key or not (isinstance(key, str) and VALID_KEY.fullmatch(key)):
        DONE["keys_kept"] += 1  # the case is about the key: its boundary or wrong value
        return
    headers[IDEMPOTENCY_KEY] = str(uuid.uuid4())
    DONE["keys_replaced"] += 1
