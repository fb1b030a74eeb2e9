"""Outgoing notifications (SMS or webhook) behind one interface.

``settings.GRIDSVC_NOTIFIER`` (or the environment variable of that name) names the sender class: the logging sender for development
(default), the webhook sender for a street's own SMS gateway or messaging bot. Senders are
called by the background worker, never on a request path.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger("gridsvc.notify")


class Sender(Protocol):
    def send(
        self, recipient: dict[str, Any], title: str, body: str, data: dict[str, Any] | None = None
    ) -> bool: ...


class LoggingSender:
    """Writes each notification to the log (development)."""

    sent: list[dict[str, Any]] = []

    def send(
        self, recipient: dict[str, Any], title: str, body: str, data: dict[str, Any] | None = None
    ) -> bool:
        message = {"to": recipient, "title": title, "body": body, "data": data or {}}
        LoggingSender.sent.append(message)
        log.info("notify %s", json.dumps(message, ensure_ascii=False, default=str))
        return True


class WebhookSender:
    """POSTs JSON to ``settings.GRIDSVC_NOTIFY_WEBHOOK`` (an SMS gateway or a bot)."""

    def send(
        self, recipient: dict[str, Any], title: str, body: str, data: dict[str, Any] | None = None
    ) -> bool:
        import requests

        url = getattr(settings, "GRIDSVC_NOTIFY_WEBHOOK", "") or os.environ.get(
            "GRIDSVC_NOTIFY_WEBHOOK", ""
        )
        if not url:
            log.warning("GRIDSVC_NOTIFY_WEBHOOK is not set: dropping %s", title)
            return False
        r = requests.post(
            url,
            json={"to": recipient, "title": title, "body": body, "data": data or {}},
            timeout=10,
        )
        return 200 <= r.status_code < 300


def sender() -> Sender:
    path = (
        getattr(settings, "GRIDSVC_NOTIFIER", "")
        or os.environ.get("GRIDSVC_NOTIFIER", "")
        or "gridsvc.supervision.notify.LoggingSender"
    )
    chosen: Sender = import_string(path)()
    return chosen
