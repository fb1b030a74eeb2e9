"""What a date-time a client may send is (客户端时间), one definition for every input.

A client's clock and a typing hand both go wrong: a phone sent a visit in year 706, which
the server's time zone (Asia/Shanghai) renders with its local mean time, ``+08:05:43`` — no
RFC 3339 date-time carries that back. Every date-time a client sends (a deadline, a
hand-over's time, the moment a phone made an application, a date-time filter) is therefore
read by one rule, :func:`client_time_problem`: an ISO 8601 date-time (without an offset: the
server's time zone) from :data:`EARLIEST` (1970-01-01 UTC, the phones' epoch) up to, not
including, :data:`LATEST` (2100-01-01 UTC); anything else is a 400 naming the field. What is
accepted is an aware datetime in UTC (the same instant as sent).

:class:`ClientDateTimeField` is the rule as a DRF serializer field, :class:`ClientDateTimeFilter`
as a django-filter filter (query strings), :func:`client_time_param` for one query parameter
read by hand (the chain's ``at``), :func:`in_client_range` for inputs with a grammar of their
own that parse first (Open311's dates, the layers' days and OGC API intervals). Phone-recorded times (``client_time``) keep their
own field (:class:`api.visits.serializers.ClientTimeField`, kept as sent for the content hash)
and rule, :func:`from_1970`. Whether a time is acceptable for the domain (a deadline in the
future, a hand-over not ahead) is decided by the domain, after this.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from rest_framework import serializers

from gridsvc.sync.clock import EARLIEST as EARLIEST  # the range: one definition
from gridsvc.sync.clock import LATEST as LATEST
from gridsvc.sync.clock import in_range

#: The range in words, for messages and the schema's descriptions.
CLIENT_TIME_RANGE = "from 1970-01-01 to 2099-12-31 (UTC)"
CLIENT_TIME_MESSAGE = f"an ISO 8601 date-time {CLIENT_TIME_RANGE} is required"
#: the widest offset PostgreSQL's timestamptz takes (Python's reach ±23:59)
PG_MAX_OFFSET = timedelta(hours=15, minutes=59, seconds=59)


def client_time_problem(value: datetime) -> str | None:
    """Why an aware ``value`` is not a date-time a client may send (``None``: it is): the
    phone's clock range, :data:`EARLIEST` ≤ it < :data:`LATEST` (one definition,
    :func:`gridsvc.sync.clock.in_range`)."""
    return None if in_range(value) else CLIENT_TIME_MESSAGE


def _as_sent(value: datetime) -> datetime:
    """``value`` on the clock it was sent with, or in UTC where PostgreSQL cannot take that
    offset (past ±15:59, e.g. ``-23:54``: a 500 otherwise)."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > PG_MAX_OFFSET:
        return value.astimezone(UTC)
    return value


def in_client_range(value: datetime) -> datetime:
    """``value`` (aware) if it is a date-time a client may send, else a ValidationError
    (:data:`CLIENT_TIME_MESSAGE`) for the field or parameter being read: the one rule for
    inputs with a grammar of their own (a day alone, an OGC API interval's ends), which parse
    first and then ask this. It keeps its offset (an answer that echoes it is unchanged),
    unless PostgreSQL cannot take that offset: then it is in UTC."""
    if client_time_problem(value):
        raise serializers.ValidationError(CLIENT_TIME_MESSAGE)
    return _as_sent(value)


def client_time_param(raw: Any, name: str) -> datetime:
    """One query parameter ``name`` (e.g. the chain's ``at``) read by
    :class:`ClientDateTimeField`'s rule: an aware datetime on the clock it was sent with (see
    :func:`in_client_range`; without an offset: the server's time zone), or a ValidationError
    naming ``name`` (400)."""
    try:
        moment: datetime = ClientDateTimeField(as_sent=True).run_validation(raw)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({name: exc.detail}) from None
    return moment


def from_1970(value: Any) -> None:
    """A phone's time is from 1970 on (its clock's epoch); older times also had offsets in
    seconds here (Shanghai's local mean time, +08:05:43), which no ISO 8601 date-time can carry
    back (schemathesis). The one rule of every phone-recorded time."""
    if value is not None and value.year < 1970:
        raise serializers.ValidationError("a date-time from 1970 on is required")


def _with_range(help_text: str | None) -> str:
    return f"{help_text}; {CLIENT_TIME_RANGE}" if help_text else f"ISO 8601, {CLIENT_TIME_RANGE}"


class ClientDateTimeField(serializers.DateTimeField):
    """A date-time a client sends: ISO 8601 (without an offset: the server's time zone),
    :data:`EARLIEST` ≤ it < :data:`LATEST` (else 400 naming the field), read as an aware
    datetime in UTC (with ``as_sent``: on the clock it was sent with, see
    :func:`in_client_range`). The range is added to ``help_text`` (the schema's
    description)."""

    default_error_messages = {
        "overflow": CLIENT_TIME_MESSAGE,
        "range": CLIENT_TIME_MESSAGE,
    }

    def __init__(self, *, as_sent: bool = False, **kwargs: Any) -> None:
        self.as_sent = as_sent
        kwargs["help_text"] = _with_range(kwargs.get("help_text"))
        super().__init__(**kwargs)

    def enforce_timezone(self, value: datetime) -> datetime:
        if self.as_sent and value.tzinfo is not None and value.utcoffset() is not None:
            return value
        return super().enforce_timezone(value)  # type: ignore[no-any-return]

    def to_internal_value(self, value: Any) -> datetime:
        parsed: datetime = super().to_internal_value(value)
        if client_time_problem(parsed):
            self.fail("range")
        return _as_sent(parsed) if self.as_sent else parsed.astimezone(UTC)


class ClientIsoDateTimeFormField(IsoDateTimeField):
    """:class:`ClientDateTimeField`'s rule for a query string (django-filter's form field):
    handed to the database in UTC (PostgreSQL also refuses offsets past ±15:59 that Python
    accepts: ``2788-05-10T21:03:39-23:54`` was a 500)."""

    def to_python(self, value: Any) -> datetime | None:
        moment: datetime | None = super().to_python(value)
        if moment is None:
            return None
        problem = client_time_problem(moment)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        return moment.astimezone(UTC)


class ClientDateTimeFilter(filters.IsoDateTimeFilter):
    """A date-time query parameter a client sends (:class:`ClientIsoDateTimeFormField`); the
    range is added to ``help_text`` (the parameter's description)."""

    field_class = ClientIsoDateTimeFormField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["help_text"] = _with_range(kwargs.get("help_text"))
        super().__init__(*args, **kwargs)
