"""The phone's offline batches (离线批量) of people's services and of community records: one
envelope and one per-item loop, each app keeping only its kinds and how an item is stored
(and the two apps' change feeds' ``since``/``limit`` parameters: :func:`feed_limit`).

A batch is ``{"items": [{"kind", "client_uuid", "data"}, …]}`` (at most :data:`BATCH_MAX`);
the answer is one result per item, in order — ``accepted`` (stored now, ``id``),
``duplicate`` (that ``client_uuid`` was stored before, ``id``), ``rejected`` (``errors``) —
and a ``summary`` of the three counts. Each item is stored in its own savepoint, so one bad
item never loses the others; an item whose ``client_uuid`` was stored meanwhile (a concurrent
retry: the unique key fails) is tried once more and answers ``duplicate``.

The visits' batch (:mod:`api.visits.views`, ``{"visits": […]}`` up to 500) shares the
envelope's reading (:func:`read_items`) and the answer (:func:`answer`: the results in order
and the summary of their states, there with ``conflict``), not the per-item loop: its items are
judged and stored set-based (:func:`gridsvc.visits.ingest.record_visits`: a few queries and one
``INSERT … ON CONFLICT`` for the whole batch, a batch of 500 in ~83 ms), where a savepoint per
item would cost a round trip per item; its items' errors and results keep their own shape
(``index``, ``code``, one message per field), which phones and tests already read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

__all__ = [
    "BATCH_MAX",
    "FEED_PARAMETERS",
    "STATES",
    "answer",
    "batch_serializers",
    "feed_limit",
    "read_items",
    "run_batch",
]

BATCH_MAX = 200
#: an item's result states, in the summary's order
STATES = ("accepted", "duplicate", "rejected")
FEED_LIMIT = 500
#: a change feed's query parameters, for ``extend_schema(parameters=…)``
FEED_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.STR, description="the cursor of the last call"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="1–500, default 500"),
]

#: how an app stores one valid item: ``(kind, validated data, client_uuid) → (row, created)``
Store = Callable[[str, dict[str, Any], uuid.UUID], tuple[Model, bool]]
#: what a stored item's result adds: ``(kind, row) → extra fields``
Present = Callable[[str, Model], dict[str, Any]]
#: how an app reads one item's data: ``(kind, data, client_uuid) → an unvalidated serializer``
Parse = Callable[[str, dict[str, Any], uuid.UUID], serializers.Serializer]


def batch_serializers(
    prefix: str, kinds: Iterable[str], data_help: str
) -> tuple[type[serializers.Serializer], type[serializers.Serializer]]:
    """The request and the result serializer of an app's batch, named ``<prefix>Batch``
    (items: ``<prefix>BatchItem``, ``kind`` one of ``kinds``) and ``<prefix>BatchResult`` —
    the OpenAPI components."""
    item = type(
        f"{prefix}BatchItemSerializer",
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "kind": serializers.ChoiceField(choices=list(kinds)),
            "client_uuid": serializers.UUIDField(help_text="made on the phone when recorded"),
            "data": serializers.DictField(help_text=data_help),
        },
    )
    request = type(
        f"{prefix}BatchSerializer",
        (serializers.Serializer,),
        {"__module__": __name__, "items": item(many=True, help_text=f"up to {BATCH_MAX}")},
    )
    result = type(
        f"{prefix}BatchResultSerializer",
        (serializers.Serializer,),
        {
            "__module__": __name__,
            "summary": serializers.DictField(child=serializers.IntegerField()),
            "results": serializers.ListField(child=serializers.DictField()),
        },
    )
    return request, result


def run_batch(
    body: Any,
    request_serializer: type[serializers.Serializer],
    parse: Parse,
    store: Store,
    refused: type[Exception] | tuple[type[Exception], ...],
    present: Present | None = None,
) -> dict[str, Any]:
    """Validate the envelope (400 on a bad one or more than :data:`BATCH_MAX` items), then
    parse and store each item in its own savepoint: ``{"summary", "results"}``. ``refused``:
    the domain errors (with ``message`` and ``field``: ``AssistanceError``,
    ``CommunityError``) that reject one item; their ``code``, when the rule names its reason
    (``not_mediator`` …), is the rejected result's ``code``, as the single POST answers it.
    ``present(kind, row)``: what a stored (or duplicate) item's result adds (a venue visit's
    ``far_off``)."""
    items = read_items(body, request_serializer)
    results: list[dict[str, Any]] = []
    for item in items:
        kind, key = item["kind"], item["client_uuid"]
        ser = parse(kind, item["data"], key)
        if not ser.is_valid():
            results.append({"kind": kind, "status": "rejected", "errors": ser.errors})
            continue
        try:
            try:
                with transaction.atomic():
                    row, created = store(kind, ser.validated_data, key)
            except IntegrityError:  # the same client_uuid stored meanwhile: a duplicate
                with transaction.atomic():
                    row, created = store(kind, ser.validated_data, key)
        except refused as exc:
            field = getattr(exc, "field", None) or "non_field_errors"
            errors = {field: [str(getattr(exc, "message", exc))]}
            rejected = {"kind": kind, "status": "rejected", "errors": errors}
            code = getattr(exc, "code", None)
            if code and code != "invalid":  # the rule's reason, as its single POST says it
                rejected["code"] = code
            results.append(rejected)
            continue
        state = "accepted" if created else "duplicate"
        result = {"kind": kind, "status": state, "id": row.pk, "client_uuid": str(key)}
        if present is not None:
            result.update(present(kind, row))
        results.append(result)
    return answer(results)


def read_items(
    body: Any,
    request_serializer: type[serializers.Serializer],
    field: str = "items",
    limit: int | None = BATCH_MAX,
) -> list[Any]:
    """The batch's items (``body[field]``) as ``request_serializer`` validates the envelope:
    400 naming the field on a bad envelope, or on more than ``limit`` items (None: the
    serializer's own field bounds them, as the visits' does)."""
    envelope = request_serializer(data=body)
    envelope.is_valid(raise_exception=True)
    items = envelope.validated_data[field]
    if limit is not None and len(items) > limit:
        raise ValidationError({field: f"at most {limit} per batch"})
    return items


def answer(results: list[dict[str, Any]], states: Iterable[str] = STATES) -> dict[str, Any]:
    """A batch's answer: ``{"summary", "results"}`` — ``results`` (one per item, in order,
    each with its ``status``) and how many are in each of ``states`` (0 for none)."""
    summary = dict.fromkeys(states, 0)
    for result in results:
        summary[result["status"]] += 1
    return {"summary": summary, "results": results}


def feed_limit(query_params: Mapping[str, Any]) -> int:
    """A change feed's ``limit`` (rows per stream): 1–500, default 500; 400 otherwise."""
    raw = query_params.get("limit") or str(FEED_LIMIT)
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": "a whole number 1–500"}) from None
    if not 1 <= limit <= FEED_LIMIT:
        raise ValidationError({"limit": "a whole number 1–500"})
    return limit
