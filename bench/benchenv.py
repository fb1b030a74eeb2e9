"""The environment every in-process benchmark runs under: production-like settings (DEBUG off)
with the development keys that ``make demo`` and the city loader encrypt with (the data must
decrypt). Values already set in the environment win. And the helpers the benchmarks share:
:func:`log`, :func:`pct`, :func:`free_port`."""

from __future__ import annotations

import os
import socket
from pathlib import Path

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "gridsvc.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
    "GRIDSVC_FIELD_KEYS": "ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0wMDA=",
    "GRIDSVC_HASH_KEY": "dev-only-hash-key",
    "GRIDSVC_LOG_LEVEL": "WARNING",
    # synthetic data: published development keys allowed (never with GRIDSVC_ENV=production)
    "GRIDSVC_ALLOW_DEV_KEYS": "1",
}


def apply() -> None:
    # the demo's own keys when `make demo` made them (var/secrets.env): the same database
    secrets = Path(__file__).resolve().parent.parent / "var" / "secrets.env"
    if "GRIDSVC_FIELD_KEYS" not in os.environ and secrets.exists():
        for line in secrets.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip())
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)


def log(msg: str) -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear between the closest ranks); NaN for none."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
