"""A binary, versioned form of ``AccountHistory`` for network stores: the flat int64 arrays as raw bytes.

A history is a few flat ``array('q')`` lists and a few integers, so its bytes are those arrays copied out
and back (a few microseconds; JSON costs five times more, and a network store pays it twice an event).
Layout, little-endian: the magic ``b"PGH"``, a format byte, the lengths of the ten lists (uint32 each,
in int64 words), eight int64 scalars, the lists' words, then the snoozes as JSON (usually ``[]``). Format 1
had eight lists (no ``names``), format 2 nine (no ``senders``); both are still read.
"""

from __future__ import annotations

import struct
import sys
from array import array
from operator import attrgetter
from typing import Final

import orjson

from .._errors import StoreError
from .history import AccountHistory
from .rows import EMPTY

__all__ = ["decode", "encode"]

_MAGIC: Final = b"PGH"
CODEC_FORMAT: Final = 3
_LISTS: Final = (
    "out",
    "payees",
    "sample",
    "maxima",
    "inbound",
    "loans",
    "deposits",
    "stops",
    "names",
    "senders",
)
# the header of each format, by format: 1 has no ``names``, 2 no ``senders``
_HEADERS: Final = {1: struct.Struct("<3sB8I8q"), 2: struct.Struct("<3sB9I8q"), 3: struct.Struct("<3sB10I8q")}
_HEADER: Final = _HEADERS[CODEC_FORMAT]
_NONE: Final = -(1 << 63)  # an optional time that is not set
_SWAP: Final = sys.byteorder != "little"
_lists_of: Final = attrgetter(*_LISTS)


def _little(entries: array[int]) -> array[int]:  # pragma: no cover (payguard runs on little-endian machines)
    swapped = array("q", entries)
    swapped.byteswap()
    return swapped


def encode(history: AccountHistory) -> bytes:
    """The bytes of ``history``."""
    lists: tuple[array[int], ...] = _lists_of(history)
    header = _HEADER.pack(
        _MAGIC,
        CODEC_FORMAT,
        *map(len, lists),
        _NONE if history.device_time is None else history.device_time,
        _NONE if history.vasp_time is None else history.vasp_time,
        history.seen,
        history.clock,
        history.pruned,
        history.woke,
        history.dormant,
        0,  # reserved
    )
    if _SWAP:  # pragma: no cover
        lists = tuple(map(_little, lists))
    snoozes = orjson.dumps([list(snooze) for snooze in history.snoozes]) if history.snoozes else b"[]"
    return b"".join((header, *map(array.tobytes, lists), snoozes))


def decode(data: bytes) -> AccountHistory:
    """The history ``encode`` wrote; ``StoreError`` if ``data`` is not one."""
    if len(data) < _HEADERS[1].size or data[:3] != _MAGIC:
        raise StoreError("not an account history in payguard's binary form")
    version = data[3]
    header = _HEADERS.get(version)
    if header is None:
        raise StoreError(f"an account history in binary format {version}: this payguard reads formats 1 to 3")
    if len(data) < header.size:
        raise StoreError("an account history in binary form is cut short")
    _magic, _version, *fields = header.unpack_from(data)
    count = len(_LISTS) - (CODEC_FORMAT - version)
    at, view = header.size, memoryview(data)
    lists: list[array[int]] = []
    for length in fields[:count]:
        if not length:
            lists.append(EMPTY)
            continue
        end = at + 8 * length
        if end > len(data):
            raise StoreError("an account history in binary form is cut short")
        entries = array("q")
        entries.frombytes(view[at:end])
        lists.append(_little(entries) if _SWAP else entries)
        at = end
    lists.extend(EMPTY for _ in range(len(_LISTS) - count))  # formats 1, 2: no names or senders remembered
    tail = data[at:]
    try:
        rows = () if tail == b"[]" else orjson.loads(tail)
        snoozes = tuple((str(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in rows)
    except (orjson.JSONDecodeError, TypeError, IndexError, ValueError) as exc:
        raise StoreError(f"an account history in binary form has damaged snoozes: {exc}") from exc
    device, vasp, seen, clock, pruned, woke, dormant, _ = fields[count:]
    # positional, in the order of _LISTS and the fields: a compiled call, where keywords cost a dict a call
    out, payees, sample, maxima, inbound, loans, deposits, stops, names, senders = lists
    return AccountHistory(
        out,
        payees,
        sample,
        maxima,
        inbound,
        loans,
        deposits,
        stops,
        names,
        senders,
        None if device == _NONE else device,
        None if vasp == _NONE else vasp,
        seen,
        clock,
        pruned,
        woke,
        dormant,
        snoozes,
    )
