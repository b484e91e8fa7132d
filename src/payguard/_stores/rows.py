"""Lists of rows in one flat ``array('q')``: how a history keeps each of its lists, compact and in time order.

Every list is ``width`` int64 columns a row, time first, kept in time order. A list starts as the shared,
empty ``EMPTY`` array and gets an array of its own with its first row (``append``, ``owned``); ``EMPTY``
is never written.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Final

__all__ = [
    "EMPTY",
    "Rows",
    "append",
    "checked",
    "empty",
    "first_after",
    "flat",
    "insert",
    "owned",
    "prune",
    "row_of",
    "rows_in",
    "rows_of",
]

EMPTY: Final[array[int]] = array("q")
_BYTE_ORDER: Final = sys.byteorder

# the packer of a row of each width, by width (``append``)
_PACKERS: Final = tuple(struct.Struct(f"={width}q").pack for width in range(8))


def empty() -> array[int]:
    return EMPTY


def owned(entries: array[int]) -> array[int]:
    """``entries`` if it is an account's own array, else a new empty one to write into."""
    return array("q") if entries is EMPTY else entries


def append(entries: array[int], row: tuple[int, ...]) -> array[int]:
    """``entries`` (an account's own array, or ``EMPTY``) with ``row`` appended; use the array returned.

    The row goes in as packed bytes, faster than int by int; a list with no rows gets an array of its size.
    """
    if not entries:
        return array("q", row)
    entries.frombytes(_PACKERS[len(row)](*row))
    return entries


def first_after(entries: array[int], width: int, time: int, low: int = 0) -> int:
    """The first row (from ``low``) whose time is later than ``time``; rows are in time order."""
    high = len(entries) // width
    while low < high:
        middle = (low + high) // 2
        if entries[middle * width] <= time:
            low = middle + 1
        else:
            high = middle
    return low


def rows_in(entries: array[int], width: int, start: int, end: int) -> tuple[int, int]:
    """The rows ``[low, high)`` with ``start < time <= end``."""
    low = first_after(entries, width, start)
    return low, first_after(entries, width, end, low)


class Rows:
    """The rows of one list of a history whose times lie in ``(start, end]``, read by named column."""

    def __init__(self, entries: array[int], width: int, start: int, end: int) -> None:
        self.entries = entries
        self.width = width
        self.low, self.high = rows_in(entries, width, start, end)

    def count(self) -> int:
        return self.high - self.low

    def total(self, column: int) -> int:
        entries, width = self.entries, self.width
        return sum(entries[row * width + column] for row in range(self.low, self.high))

    def distinct(self, column: int) -> set[int]:
        entries, width = self.entries, self.width
        return {entries[row * width + column] for row in range(self.low, self.high)}

    def flagged(self, column: int, flag: int) -> list[int]:
        """The values of ``column`` in the rows whose ``flag`` column is set, oldest first."""
        entries, width = self.entries, self.width
        return [
            entries[row * width + column] for row in range(self.low, self.high) if entries[row * width + flag]
        ]

    def matching(self, column: int, value: int) -> int:
        """How many rows hold ``value`` in ``column``."""
        entries, width = self.entries, self.width
        return sum(1 for row in range(self.low, self.high) if entries[row * width + column] == value)

    def total_where(self, column: int, key: int, value: int) -> int:
        """The sum of ``column`` over the rows that hold ``value`` in ``key``."""
        entries, width = self.entries, self.width
        return sum(
            entries[row * width + column]
            for row in range(self.low, self.high)
            if entries[row * width + key] == value
        )

    def flagged_all(self, column: int, flags: tuple[int, ...], unflagged: int = -1) -> list[int]:
        """The values of ``column`` in the rows whose ``flags`` columns are all set (and, if given, whose
        ``unflagged`` column is not), oldest first."""
        entries, width = self.entries, self.width
        found = []
        for row in range(self.low, self.high):
            at = row * width
            if all(entries[at + flag] for flag in flags) and (unflagged < 0 or not entries[at + unflagged]):
                found.append(entries[at + column])
        return found

    def first_known(self, column: int) -> int | None:
        """The oldest value of ``column`` that is known (stored as -1 when it is not)."""
        entries, width = self.entries, self.width
        for row in range(self.low, self.high):
            value = entries[row * width + column]
            if value >= 0:
                return value
        return None

    def first_known_time(self, column: int) -> int | None:
        """The time of the oldest row whose ``column`` is known (not -1)."""
        entries, width = self.entries, self.width
        for row in range(self.low, self.high):
            if entries[row * width + column] >= 0:
                return entries[row * width]
        return None

    def last(self, column: int) -> int | None:
        """The value of ``column`` in the newest row."""
        if self.high == self.low:
            return None
        return self.entries[(self.high - 1) * self.width + column]


def insert(entries: array[int], width: int, row: tuple[int, ...]) -> array[int]:
    """``entries`` with ``row`` inserted in time order (after equal times); late events land in place."""
    if not entries or entries[len(entries) - width] <= row[0]:
        return append(entries, row)
    at = first_after(entries, width, row[0]) * width
    entries[at:at] = array("q", row)
    return entries


def prune(entries: array[int], width: int, oldest: int) -> None:
    """Drop the rows older than ``oldest``."""
    if entries and entries[0] < oldest:
        del entries[: first_after(entries, width, oldest - 1) * width]


def rows_of(entries: array[int], width: int) -> list[list[int]]:
    return [list(entries[i : i + width]) for i in range(0, len(entries), width)]


def checked(rows: list[list[int]], width: int) -> list[list[int]]:
    """Rows read back from JSON; ``ValueError`` if one is not ``width`` numbers (its columns would shift)."""
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} numbers where there are {width} columns")
    return rows


def flat(rows: list[list[int]], width: int) -> array[int]:
    return array("q", [value for row in checked(rows, width) for value in row]) if rows else EMPTY


def row_of(entries: array[int], width: int, key: int) -> int:
    """The row whose first word is ``key`` among rows of ``width`` words, or -1.

    Searched as bytes: a string search over a copy of the array beats reading it word by word.
    """
    if not entries:
        return -1
    data, size = entries.tobytes(), width * 8
    needle = key.to_bytes(8, _BYTE_ORDER, signed=True)
    at = data.find(needle)
    while at >= 0:
        if at % size == 0:
            return at // size
        at = data.find(needle, at + 1)  # another column, or bytes across two words, that equal the key
    return -1
