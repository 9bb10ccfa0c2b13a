"""Dead letters written with their headers read back the same, and the reading sorts them."""

import hashlib
import json

import pytest
from confluent_kafka import KafkaError, Message

from kafka_micro import deadletter
from kafka_micro.deadletter import (
    REPLAY_OF,
    REPLAYED_TO,
    TRUNCATED_VALUE_BYTES,
    DeadLetter,
    DeadLetterError,
    DeadLetterWriter,
)
from kafka_micro.dlq import DeadLetterCollector, Selection, inspect_json, inspect_table
from kafka_micro.settings import settings_from

DLQ = "orders.dlq"


class Broker:
    """Stands in for the acknowledged writer: keeps what it is given, refuses like a broker.

    A write holding a record over ``max_bytes`` is refused whole, as the brokers refuse a whole
    batch; ``denied`` refuses everything as an ACL would.
    """

    def __init__(self, max_bytes=10_000, denied=False):
        self.max_bytes = max_bytes
        self.denied = denied
        self.written = []
        self.writes = []

    def writer(self, _settings, _kind):
        return self

    def write(self, records):
        self.writes.append(len(records))
        too_large = any(len(record.value or b"") > self.max_bytes for record in records)
        for record in records:
            if self.denied:
                record.fail(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Topic denied"))
            elif too_large:
                record.fail(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "Broker: too large"))
            else:
                record.delivered = (len(self.written) % 2, len(self.written))
                self.written.append(record)

    def as_messages(self):
        """The records written, as a reader of the dead-letter topic gets them."""
        return [
            Message(
                topic=record.topic,
                partition=record.delivered[0],
                offset=record.delivered[1],
                key=record.key,
                value=record.value,
                headers=record.headers,
                timestamp=(1, 1_700_000_000_000 + record.delivered[1]),
            )
            for record in self.written
        ]


@pytest.fixture
def broker(monkeypatch):
    fake = Broker()
    monkeypatch.setattr(deadletter, "AcknowledgedWriter", fake.writer)
    return fake


def source(value, partition=3, offset=10, key=None, headers=None):
    return Message(
        topic="orders",
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=(1, 1_600_000_000_000),
    )


def writer():
    settings = settings_from(
        {"topic": "orders", "consumer": {"group_id": "g", "instance_id": "h-1"}}
    )
    return DeadLetterWriter(settings, DLQ)


def read_back(broker, selection=None, limit=None):
    collector = DeadLetterCollector(DLQ, selection or Selection(), limit)
    for message in broker.as_messages():
        collector.take(message)
    return collector.result()


def test_a_dead_letter_reads_back_with_its_message_and_why_and_where(broker):
    headers = [("trace", b"1"), ("trace", b"2"), ("null", None)]
    message = source(b"\x00" * 30, partition=5, offset=77, key=b"\x00\xff", headers=headers)
    writer().write([DeadLetter(message, "wrong-magic", "the value starts with byte 0x00")])

    [letter] = read_back(broker).letters
    assert (letter.reason, letter.error) == ("wrong-magic", "the value starts with byte 0x00")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("orders", 5, 77)
    assert letter.source_timestamp_ms == 1_600_000_000_000
    assert (letter.consumer_group, letter.consumer_instance) == ("g", "h-1")
    assert (letter.key, letter.value, letter.headers) == (b"\x00\xff", b"\x00" * 30, headers)
    assert (letter.value_size, letter.value_truncated) == (30, False)
    assert letter.replayed_to is None
    assert letter.replayed_from is None


def test_a_null_value_stays_null(broker):
    writer().write([DeadLetter(source(None, key=b"gone"), "no-value", "no value")])
    [letter] = read_back(broker).letters
    assert (letter.key, letter.value, letter.value_size) == (b"gone", None, None)


def test_a_batch_refused_as_too_large_is_written_one_by_one_and_only_the_large_one_cut(broker):
    broker.max_bytes = 2000
    small = source(b"small but bad", offset=1, headers=[("h", b"v")])
    large = source(b"L" * 5000, offset=2, headers=[("h", b"v"), ("i", b"w")])
    writer().write(
        [DeadLetter(small, "wrong-magic", "bad"), DeadLetter(large, "too-large", "large")]
    )
    assert broker.writes == [2, 1, 1, 1]
    letters = {letter.source_offset: letter for letter in read_back(broker).letters}
    assert (letters[1].value, letters[1].headers, letters[1].value_truncated) == (
        b"small but bad",
        [("h", b"v")],
        False,
    )
    cut = letters[2]
    assert cut.value == b"L" * TRUNCATED_VALUE_BYTES
    assert (cut.value_truncated, cut.value_size, cut.headers) == (True, 5000, [])
    written_headers = dict(broker.written[-1].headers)
    assert written_headers["kafka-micro.dlq.value.sha256"] == (
        hashlib.sha256(b"L" * 5000).hexdigest().encode()
    )
    assert written_headers["kafka-micro.dlq.headers.dropped"] == b"2"


def test_a_refused_write_stops_with_what_to_grant(broker):
    broker.denied = True
    with pytest.raises(DeadLetterError) as caught:
        writer().write([DeadLetter(source(b"x" * 20), "wrong-magic", "bad")])
    message = str(caught.value)
    assert "could not write 1 of 1 dead letters to topic orders.dlq" in message
    assert "the message at topic orders partition 3 offset 10 (wrong-magic)" in message
    assert "not authorized for the topic" in message
    assert "needs Write on topic orders.dlq" in message
    assert "read again when the consumer restarts" in message


def test_reading_selects_by_reason_and_partition_and_joins_replay_notes(broker):
    letters = [
        DeadLetter(source(b"a" * 20, partition=0, offset=1), "wrong-magic", "a"),
        DeadLetter(source(b"b" * 20, partition=1, offset=2), "wrong-magic", "b"),
        DeadLetter(source(None, partition=1, offset=3), "no-value", "c"),
    ]
    writer().write(letters)
    replayed = broker.written[0].delivered
    note = [
        (REPLAY_OF, f"{replayed[0]}/{replayed[1]}".encode()),
        (REPLAYED_TO, b"orders/0/99"),
    ]
    broker.write([deadletter.Outgoing(DLQ, None, None, note)])
    broker.write([deadletter.Outgoing(DLQ, None, b"someone else's", [])])

    everything = read_back(broker)
    assert everything.by_reason == {"wrong-magic": 2, "no-value": 1}
    assert (everything.selected, everything.replay_notes, everything.foreign) == (3, 1, 1)
    assert [letter.replayed_to for letter in everything.letters if letter.source_offset == 1] == [
        "orders/0/99"
    ]
    by_reason = read_back(broker, Selection(reasons=frozenset({"no-value"})))
    assert [letter.source_offset for letter in by_reason.letters] == [3]
    by_partition = read_back(broker, Selection(source_partitions=frozenset({1})))
    assert sorted(letter.source_offset for letter in by_partition.letters) == [2, 3]
    limited = read_back(broker, limit=1)
    assert (len(limited.letters), limited.selected) == (1, 3)


def test_inspect_prints_a_table_with_a_summary_and_json_with_the_value_head(broker):
    writer().write([DeadLetter(source(b"\x01\x02\x03\x04" * 5, offset=42), "too-short", "x")])
    found = read_back(broker)
    table = inspect_table(found, value_bytes=2)
    assert table.splitlines()[0].split() == [
        "dlq",
        "dead-lettered",
        "(UTC)",
        "source",
        "reason",
        "bytes",
        "replayed",
        "to",
        "error",
    ]
    assert "3/42" in table
    assert "value: 01 02" in table
    assert table.endswith("topic orders.dlq: 1 dead letters (too-short 1), 1 selected, 0 replayed")
    [letter] = json.loads(inspect_json(found, value_bytes=2))["dead_letters"]
    assert letter["value_head_hex"] == "0102"
    assert letter["source"] == {
        "topic": "orders",
        "partition": 3,
        "offset": 42,
        "timestamp": "2020-09-13T12:26:40.000Z",
    }
