"""A binary, versioned form of ``AccountHistory`` for network stores: the flat int64 arrays as raw bytes.

A history is a few flat ``array('q')`` lists and a few integers, so its bytes are those arrays copied out
and back (a few microseconds; JSON costs five times more, and a network store pays it twice an event).
Layout, little-endian: the magic ``b"PGH"``, a format byte, the lengths of the eight lists (uint32 each,
in int64 words), eight int64 scalars, the lists' words, then the snoozes as JSON (usually ``[]``).
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import Final

import orjson

from .._errors import StoreError
from .history import AccountHistory
from .rows import EMPTY

__all__ = ["decode", "encode"]

_MAGIC: Final = b"PGH"
CODEC_FORMAT: Final = 1
_LISTS: Final = ("out", "payees", "sample", "maxima", "inbound", "loans", "deposits", "stops")
_HEADER: Final = struct.Struct("<3sB8I8q")
_NONE: Final = -(1 << 63)  # an optional time that is not set
_SWAP: Final = sys.byteorder != "little"


def encode(history: AccountHistory) -> bytes:
    """The bytes of ``history``."""
    lists = [getattr(history, name) for name in _LISTS]
    header = _HEADER.pack(
        _MAGIC,
        CODEC_FORMAT,
        *(len(entries) for entries in lists),
        _NONE if history.device_time is None else history.device_time,
        _NONE if history.vasp_time is None else history.vasp_time,
        history.seen,
        history.clock,
        history.pruned,
        history.woke,
        history.dormant,
        0,  # reserved
    )
    parts = [header]
    for entries in lists:
        if _SWAP:  # pragma: no cover (payguard runs on little-endian machines)
            swapped = array("q", entries)
            swapped.byteswap()
            entries = swapped  # noqa: PLW2901
        parts.append(entries.tobytes())
    parts.append(orjson.dumps([list(snooze) for snooze in history.snoozes]))
    return b"".join(parts)


def decode(data: bytes) -> AccountHistory:
    """The history ``encode`` wrote; ``StoreError`` if ``data`` is not one."""
    if len(data) < _HEADER.size or data[:3] != _MAGIC:
        raise StoreError("not an account history in payguard's binary form")
    _magic, version, *fields = _HEADER.unpack_from(data)
    if version != CODEC_FORMAT:
        raise StoreError(f"an account history in binary format {version}: this payguard reads format 1")
    lengths, scalars = fields[:8], fields[8:]
    at = _HEADER.size
    lists: dict[str, array[int]] = {}
    for name, length in zip(_LISTS, lengths, strict=True):
        end = at + 8 * length
        if end > len(data):
            raise StoreError("an account history in binary form is cut short")
        if length:
            entries = array("q")
            entries.frombytes(data[at:end])
            if _SWAP:  # pragma: no cover
                entries.byteswap()
            lists[name] = entries
        else:
            lists[name] = EMPTY
        at = end
    try:
        snoozes = tuple((str(r[0]), int(r[1]), int(r[2]), str(r[3])) for r in orjson.loads(data[at:]))
    except (orjson.JSONDecodeError, TypeError, IndexError, ValueError) as exc:
        raise StoreError(f"an account history in binary form has damaged snoozes: {exc}") from exc
    device, vasp, seen, clock, pruned, woke, dormant, _ = scalars
    return AccountHistory(
        **lists,
        device_time=None if device == _NONE else device,
        vasp_time=None if vasp == _NONE else vasp,
        seen=seen,
        clock=clock,
        pruned=pruned,
        woke=woke,
        dormant=dormant,
        snoozes=snoozes,
    )
