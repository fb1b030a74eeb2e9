"""The environment every in-process benchmark runs under: production-like settings (DEBUG off)
with the development keys that ``make demo`` and the city loader encrypt with (the data must
decrypt). Values already set in the environment win."""

from __future__ import annotations

import os

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": "gridsvc.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
    "GRIDSVC_FIELD_KEYS": "ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0wMDA=",
    "GRIDSVC_HASH_KEY": "dev-only-hash-key",
    "GRIDSVC_LOG_LEVEL": "WARNING",
}


def apply() -> None:
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
