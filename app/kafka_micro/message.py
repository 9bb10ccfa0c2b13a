"""Wire format of a kafka-micro message value.

A value is a fixed big-endian header, the producer id (UTF-8), then zero padding::

    magic u8 | id length u8 | sequence u64 | send time ns u64 | producer id | padding

The key stays empty so the partitioner spreads one producer's messages over all
partitions. One ``struct.pack`` call builds a whole value, padding included.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import Final, Literal

MAGIC: Final = 0xA1
HEADER: Final = struct.Struct("!BBQQ")
MAX_PRODUCER_ID_BYTES: Final = 255
# Where the producer id starts, right after the header; its length is the value's second byte.
ID_OFFSET: Final = HEADER.size

MalformedReason = Literal[
    "no-value",
    "empty-value",
    "too-short",
    "too-large",
    "wrong-magic",
    "producer-id-overrun",
    "producer-id-not-utf8",
]
"""Why a value is not a kafka-micro message, in words that stay the same from release to release
(the dead-letter topic's ``reason`` header and the metrics' ``reason`` label carry them)."""

Decoded = tuple[bytes, int, int]
"""Producer id (valid UTF-8), sequence, send time in ns."""
Decoder = Callable[[bytes | None], Decoded]


class MalformedMessageError(ValueError):
    """A message value that is not in the kafka-micro format; ``reason`` says which way."""

    def __init__(self, reason: MalformedReason, text: str) -> None:
        super().__init__(text)
        self.reason: MalformedReason = reason


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


def value_decoder(max_value_bytes: int = sys.maxsize) -> Decoder:
    """Return ``decode(value) -> (producer id, sequence, send time ns)``.

    ``decode`` raises MalformedMessageError for a value not in the format or longer than
    ``max_value_bytes``; the producer id it returns is valid UTF-8. A good value costs one
    length check, one unpack and, for an id not in ASCII, its UTF-8 decoding; why a bad one is
    bad is worked out only once it failed them.
    """
    header_size = HEADER.size
    unpack = HEADER.unpack_from

    def decode(value: bytes | None) -> Decoded:
        if value is None or not header_size <= (size := len(value)) <= max_value_bytes:
            raise _wrong_size(value, max_value_bytes)
        magic, id_length, sequence, send_time_ns = unpack(value)
        if magic != MAGIC:
            raise MalformedMessageError(
                "wrong-magic", f"the value starts with byte {magic:#04x}, not {MAGIC:#04x}"
            )
        id_end = header_size + id_length
        if id_end > size:
            raise MalformedMessageError(
                "producer-id-overrun",
                f"the header announces a {id_length}-byte producer id but the value is "
                f"{size} bytes",
            )
        producer_id = value[header_size:id_end]
        # An ASCII id, as ids usually are, is UTF-8 already: the check is far cheaper.
        if not producer_id.isascii():
            _check_utf8(producer_id)
        return producer_id, sequence, send_time_ns

    return decode


def send_time_ns(value: bytes) -> int:
    """The send time of a value ``decode`` accepted (read twice per batch, not per message)."""
    sent: int = HEADER.unpack_from(value)[3]
    return sent


def _check_utf8(producer_id: bytes) -> None:
    try:
        producer_id.decode()
    except UnicodeDecodeError as error:
        raise MalformedMessageError(
            "producer-id-not-utf8",
            f"the producer id is not UTF-8: byte {producer_id[error.start]:#04x} at "
            f"{error.start}: {error.reason}",
        ) from None


def _wrong_size(value: bytes | None, max_value_bytes: int) -> MalformedMessageError:
    if value is None:
        return MalformedMessageError("no-value", "the message has no value (null)")
    if not value:
        return MalformedMessageError("empty-value", "the value is empty (0 bytes)")
    if len(value) < HEADER.size:
        return MalformedMessageError(
            "too-short",
            f"the value is {len(value)} bytes, shorter than the {HEADER.size}-byte header",
        )
    return MalformedMessageError(
        "too-large",
        f"the value is {len(value)} bytes, more than consumer.max_value_bytes={max_value_bytes}",
    )
