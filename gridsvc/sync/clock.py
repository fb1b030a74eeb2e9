"""The phone's clock is not trusted (设备时钟不可信).

Every request may carry the phone's current clock in the ``X-Device-Time`` header (ISO 8601
with an offset, e.g. ``2026-12-01T14:30:05.120+08:00``, or epoch milliseconds), in the range
of every date-time a client sends (1970-01-01 ≤ it < 2100-01-01 UTC, as in
:mod:`api.fields`); anything else is a 400 ``bad_device_time``, not a clock to correct by. The
middleware records the receive time and the header for the request; visit ingestion reads
them with :func:`current` and

- estimates the phone's clock offset as ``device time − receive time`` (positive: the phone
  is fast). Upload latency makes it a slight underestimate, so offsets within
  :data:`CLOCK_TOLERANCE` are recorded but not applied;
- corrects each visit's ``client_time`` by that offset (assuming the phone's clock did not
  change between the visit and the upload);
- flags implausible times instead of refusing the visit (see
  :class:`gridsvc.sync.models.VisitClock.Flag`).

Every response carries the server's clock in ``X-Server-Time`` (ISO 8601, UTC, ms).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

DEVICE_TIME_HEADER = "X-Device-Time"
SERVER_TIME_HEADER = "X-Server-Time"
OFFSET_HEADER = "X-Clock-Offset-Ms"
CLOCK_TOLERANCE = timedelta(minutes=2)
# After correction a visit may lie this far after the receive time before it is "future".
FUTURE_TOLERANCE = timedelta(minutes=5)
# A visit more than this before the upload is flagged "too_old" (a phone reset to 1970/2000).
MAX_AGE = timedelta(days=366)
#: The range of a phone's clock (UTC), and of every date-time a client sends (:mod:`api.fields`
#: reads it from here): from the phones' epoch up to, not including, 2100.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_LATEST_MS = int(LATEST.timestamp()) * 1000


def in_range(value: datetime) -> bool:
    """Whether the aware ``value`` is within :data:`EARLIEST` ≤ it < :data:`LATEST` (UTC);
    False for one past the calendar in UTC (e.g. 9999-12-31T23:00-08:00)."""
    try:
        return EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:
        return False


class BadDeviceTime(ValueError):
    """The ``X-Device-Time`` header is neither ISO 8601 with an offset nor epoch ms, or it is
    outside :data:`EARLIEST` ≤ it < :data:`LATEST` (a clock at year 706 or 9999 is no clock
    to correct visit times by)."""


def parse_device_time(raw: str) -> datetime:
    """The phone's clock from ``X-Device-Time``: ISO 8601 (a naive value is taken as the
    server's time zone) or integer epoch milliseconds, from :data:`EARLIEST` up to, not
    including, :data:`LATEST` (UTC); else :class:`BadDeviceTime`. A phone reset to 2000 is in
    range: its visits are corrected by its offset (or flagged without the header)."""
    raw = raw.strip()
    if raw.isdigit():
        try:
            ms = int(raw)
        except ValueError:  # other digits than 0-9 ("²")
            raise BadDeviceTime(raw) from None
        if ms >= _LATEST_MS:  # epoch ms are never before 1970 (a sign is no digit)
            raise BadDeviceTime(raw)
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise BadDeviceTime(raw)
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if not in_range(value):
        raise BadDeviceTime(raw)
    return value


def format_server_time(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-01T06:40:00.123Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestClock:
    """The receive time of a request and the phone's clock as it said in the request."""

    received_at: datetime
    device_time: datetime | None = None

    @property
    def offset(self) -> timedelta | None:
        """Phone clock − server clock (positive: the phone is fast); None if not sent."""
        if self.device_time is None:
            return None
        return self.device_time - self.received_at

    @property
    def offset_ms(self) -> int | None:
        offset = self.offset
        return None if offset is None else round(offset / timedelta(milliseconds=1))

    def correct(self, phone_time: datetime) -> tuple[datetime, bool]:
        """(server-clock time, whether it was shifted) for a time read off the phone."""
        offset = self.offset
        if offset is None or abs(offset) <= CLOCK_TOLERANCE:
            return phone_time, False
        return phone_time - offset, True


_current: ContextVar[RequestClock | None] = ContextVar("gridsvc_request_clock", default=None)


def current() -> RequestClock:
    """The clock of the request being handled (set by the middleware); outside a request,
    now with no phone clock."""
    return _current.get() or RequestClock(received_at=timezone.now())


@contextmanager
def request_clock(clock: RequestClock) -> Iterator[RequestClock]:
    """Make ``clock`` the current request clock for the duration of the block."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)
