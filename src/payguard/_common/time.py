"""Time: IANA zones, epoch seconds, local hours and RFC 3339 text, all in event time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from .cache import remember

__all__ = ["DAY", "HOUR", "epoch_seconds", "isoformat", "local_hour", "zone"]

HOUR: Final = 3600
DAY: Final = 86400


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; cached because zone lookups read files."""
    return ZoneInfo(name)


_TWO_DIGITS: Final = tuple(f"{n:02d}" for n in range(100))
# "+08:00" for a UTC offset of 28,800 seconds; filled as offsets are seen (a handful of zones in practice)
_OFFSET_TEXT: Final[dict[int, str]] = {}


def isoformat(moment: datetime, offset: timedelta | None = None) -> str:
    """``moment.isoformat()`` for the aware datetimes of decisions and audit records, assembled from
    two-digit strings (CPython's own formats through ``sprintf``); ``offset`` is ``moment``'s UTC offset
    when the caller already has it. Anything unusual (a naive datetime, a year before 1000, an offset with
    seconds) goes to ``isoformat`` itself."""
    year = moment.year
    if year < 1000:
        return moment.isoformat()
    if moment.tzinfo is UTC:  # evaluated_at
        suffix = "+00:00"
    else:
        if offset is None:
            offset = moment.utcoffset()
        if offset is None:
            return moment.isoformat()
        seconds = offset.days * 86400 + offset.seconds
        found = _OFFSET_TEXT.get(seconds)
        if found is None:
            if seconds % 60 or offset.microseconds:
                return moment.isoformat()
            minutes = abs(seconds) // 60
            found = f"{'-' if seconds < 0 else '+'}{_TWO_DIGITS[minutes // 60]}:{_TWO_DIGITS[minutes % 60]}"
            _OFFSET_TEXT[seconds] = found
        suffix = found
    two = _TWO_DIGITS
    micro = moment.microsecond
    fraction = f".{two[micro // 10000]}{two[micro // 100 % 100]}{two[micro % 100]}" if micro else ""
    return (
        f"{year}-{two[moment.month]}-{two[moment.day]}T{two[moment.hour]}:{two[moment.minute]}:"
        f"{two[moment.second]}{fraction}{suffix}"
    )


# The UTC offset of a time zone during one hour of event time, keyed by (zone, hours since the epoch):
# converting each event's time to local time costs more than all the other features of the event.
_OFFSETS: Final[dict[tuple[str, int], int]] = {}
_MAX_OFFSETS: Final = 4096


def _offset_at(time: int, tz: tzinfo) -> int:
    offset = datetime.fromtimestamp(time, tz).utcoffset()
    assert offset is not None
    return offset.days * DAY + offset.seconds


_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()


def epoch_seconds(moment: datetime, offset: timedelta) -> int:
    """Whole seconds from 1970-01-01 UTC to ``moment``, whose UTC offset is ``offset`` (rounded down), in
    integer arithmetic (``datetime.timestamp`` goes through a float)."""
    days = moment.toordinal() - _EPOCH_DAY
    seconds = days * DAY + moment.hour * HOUR + moment.minute * 60 + moment.second
    seconds -= offset.days * DAY + offset.seconds
    return seconds - 1 if moment.microsecond < offset.microseconds else seconds


def local_hour(time: int, zone_name: str) -> int:
    """The hour (0-23) on the clock of the IANA zone ``zone_name`` at ``time`` (epoch seconds).

    An hour whose offset is the same at its first and last second is taken to keep that offset
    throughout (time-zone rules never change twice within an hour); the offset is then remembered for the
    hour. An hour in which the zone's rules change is converted event by event.
    """
    hour = time // HOUR
    key = (zone_name, hour)
    offset = _OFFSETS.get(key)
    if offset is None:
        tz = zone(zone_name)
        offset = _offset_at(hour * HOUR, tz)
        if offset != _offset_at(hour * HOUR + HOUR - 1, tz):
            return (time + _offset_at(time, tz)) // HOUR % 24
        remember(_OFFSETS, key, offset, _MAX_OFFSETS)
    return (time + offset) // HOUR % 24
