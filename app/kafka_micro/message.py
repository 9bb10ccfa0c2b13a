"""Wire format of a kafka-micro message value.

A value is a fixed big-endian header, the producer id, then zero padding::

    magic u8 | id length u8 | sequence u64 | send time ns u64 | producer id | padding

The key stays empty so the partitioner spreads one producer's messages over all
partitions. One ``struct.pack`` call builds a whole value, padding included.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

MAGIC: Final = 0xA1
HEADER: Final = struct.Struct("!BBQQ")
MAX_PRODUCER_ID_BYTES: Final = 255


class MalformedMessageError(ValueError):
    """A message value that is not in the kafka-micro format."""


def value_packer(producer_id: str, message_size: int) -> Callable[[int, int], bytes]:
    """Return ``pack(sequence, send_time_ns) -> value`` with the id and padding precomputed."""
    id_bytes = producer_id.encode()
    if len(id_bytes) > MAX_PRODUCER_ID_BYTES:
        raise ValueError(
            f"producer id {producer_id!r} is {len(id_bytes)} bytes in UTF-8; "
            f"at most {MAX_PRODUCER_ID_BYTES} are allowed"
        )
    padding = max(0, message_size - HEADER.size - len(id_bytes))
    layout = struct.Struct(f"!BBQQ{len(id_bytes)}s{padding}x")
    pack = layout.pack
    id_length = len(id_bytes)

    def pack_value(sequence: int, send_time_ns: int) -> bytes:
        return pack(MAGIC, id_length, sequence, send_time_ns, id_bytes)

    return pack_value


def decode(value: bytes | None) -> tuple[bytes, int, int]:
    """Return (producer id, sequence, send time ns) or raise MalformedMessageError."""
    if value is None:
        raise MalformedMessageError("the message has no value")
    if len(value) < HEADER.size:
        raise MalformedMessageError(
            f"the value is {len(value)} bytes, shorter than the {HEADER.size}-byte header"
        )
    magic, id_length, sequence, send_time_ns = HEADER.unpack_from(value)
    if magic != MAGIC:
        raise MalformedMessageError(f"the value starts with byte {magic:#04x}, not {MAGIC:#04x}")
    id_end = HEADER.size + id_length
    if id_end > len(value):
        raise MalformedMessageError(
            f"the header announces a {id_length}-byte producer id but the value is "
            f"{len(value)} bytes"
        )
    return value[HEADER.size : id_end], sequence, send_time_ns
