import re
import struct
import time

import pytest
from confluent_kafka import Message

from kafka_micro.message import HEADER, MAGIC, MalformedMessageError, value_decoder, value_packer
from kafka_micro.processing import ConsumeStats, StatsProcessor

decode = value_decoder()


def test_round_trip_keeps_producer_sequence_and_send_time():
    pack = value_packer("app1-4242", 512)
    sent = time.time_ns()
    value = pack(123456789, sent)
    assert len(value) == 512
    assert decode(value) == (b"app1-4242", 123456789, sent)


def test_unicode_producer_id_round_trips():
    value = value_packer("höst-1", 0)(0, 1)
    assert decode(value)[0].decode() == "höst-1"


def test_size_below_header_gives_header_and_id_only():
    value = value_packer("p", 4)(1, 2)
    assert len(value) == HEADER.size + 1


def test_largest_sequence_fits():
    assert decode(value_packer("p", 64)(2**64 - 1, 0))[1] == 2**64 - 1


def test_overlong_producer_id_is_refused():
    with pytest.raises(ValueError, match="at most 255"):
        value_packer("x" * 256, 0)


def with_id(id_bytes: bytes, announced: int | None = None) -> bytes:
    length = len(id_bytes) if announced is None else announced
    return struct.pack("!BBQQ", MAGIC, length, 1, 2) + id_bytes


MALFORMED = [
    (None, "no-value", "no value (null)"),
    (b"", "empty-value", "empty (0 bytes)"),
    (b"\xa1", "too-short", "1 bytes, shorter than the 18-byte header"),
    (with_id(b"")[:-1], "too-short", "17 bytes, shorter than the 18-byte header"),
    (b"hello world, plain text payload", "wrong-magic", "starts with byte 0x68, not 0xa1"),
    (bytes(18), "wrong-magic", "starts with byte 0x00"),
    (value_packer("producer", 0)(1, 2)[:-3], "producer-id-overrun", "announces a 8-byte"),
    (with_id(b"", announced=255), "producer-id-overrun", "255-byte producer id"),
    (with_id(b"\xff\xfe"), "producer-id-not-utf8", "byte 0xff at 0: invalid start byte"),
    (with_id("é".encode()[:1]), "producer-id-not-utf8", "byte 0xc3 at 0"),
    (with_id(b"ok\xed\xa0\x80"), "producer-id-not-utf8", "byte 0xed at 2"),
]


@pytest.mark.parametrize(("value", "reason", "text"), MALFORMED)
def test_each_malformed_value_is_refused_with_its_reason(value, reason, text):
    with pytest.raises(MalformedMessageError, match=re.escape(text)) as caught:
        decode(value)
    assert caught.value.reason == reason


def test_a_value_up_to_the_bound_is_decoded_and_one_byte_more_is_too_large():
    bounded = value_decoder(max_value_bytes=100)
    assert bounded(value_packer("p", 100)(7, 8)) == (b"p", 7, 8)
    with pytest.raises(MalformedMessageError, match="101 bytes, more than") as caught:
        bounded(value_packer("p", 101)(7, 8))
    assert caught.value.reason == "too-large"


def test_too_large_is_judged_before_the_content():
    with pytest.raises(MalformedMessageError) as caught:
        value_decoder(max_value_bytes=20)(b"x" * 21)
    assert caught.value.reason == "too-large"


def test_an_empty_producer_id_is_a_good_message():
    assert decode(with_id(b"")) == (b"", 1, 2)


class DeadLetters:
    def __init__(self):
        self.letters = []

    def write(self, letters):
        self.letters.extend(letters)


@pytest.mark.parametrize(("value", "reason", "text"), MALFORMED)
def test_the_consumers_batch_pass_refuses_what_decode_refuses_with_the_same_reason(
    value, reason, text
):
    """The pass checks values inline before falling back to decode: it must never accept more."""
    sink = DeadLetters()
    process = StatsProcessor(ConsumeStats(), sink, max_value_bytes=1_000)
    good = value_packer("p", 64)(1, 2)
    batch = [
        Message(topic="t", partition=0, offset=offset, value=v)
        for offset, v in enumerate((good, value, good))
    ]
    assert process(batch) == {0: 3}
    [letter] = sink.letters
    assert (letter.message.offset(), letter.reason) == (1, reason)
    assert text in letter.error


@pytest.mark.parametrize("producer_id", ["höst-1", "", "x" * 255, "plain-ascii"])
def test_the_consumers_batch_pass_takes_every_id_decode_takes(producer_id):
    sink = DeadLetters()
    process = StatsProcessor(ConsumeStats(), sink, max_value_bytes=1_000)
    value = value_packer(producer_id, 0)(1, 2)
    assert decode(value)[0] == producer_id.encode()
    assert process([Message(topic="t", partition=5, offset=9, value=value)]) == {5: 10}
    assert sink.letters == []
