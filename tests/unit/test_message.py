import time

import pytest

from kafka_micro.message import HEADER, MalformedMessageError, decode, value_packer


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


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "no value"),
        (b"", "shorter than the 18-byte header"),
        (b"hello world, plain text payload", "not 0xa1"),
        (value_packer("producer", 0)(1, 2)[:-3], "announces a 8-byte producer id"),
    ],
)
def test_malformed_values_raise_with_reason(value, reason):
    with pytest.raises(MalformedMessageError, match=reason):
        decode(value)
