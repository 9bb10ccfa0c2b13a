import io
import logging
import re

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from kafka_micro.consumer import drop_handed_over
from kafka_micro.deadletter import DeadLetterError, StopAtDeadLetter
from kafka_micro.message import value_decoder, value_packer
from kafka_micro.processing import ConsumeStats, StatsProcessor

GOOD = value_packer("p1", 0)(0, 1)


def message(value, partition=3, offset=10):
    return Message(topic="t", partition=partition, offset=offset, value=value)


class Sink:
    """Keeps the dead letters it is given, in batches."""

    def __init__(self):
        self.batches = []

    def write(self, letters):
        self.batches.append(list(letters))


def processor(sink=None, record=None, max_value_bytes=1_000_000):
    return StatsProcessor(ConsumeStats(), sink or Sink(), max_value_bytes, record)


def test_batch_updates_counts_latency_and_record_and_returns_the_offsets_to_store():
    pack = value_packer("p1", 64)
    record = io.StringIO()
    sink = Sink()
    process = processor(sink, record)
    next_offsets = process(
        [message(pack(5, 1), 0, 100), message(pack(2, 1), 1, 7), message(pack(6, 1), 0, 101)]
    )
    assert next_offsets == {0: 102, 1: 8}
    stats = process.stats
    assert stats.messages == 3
    assert stats.batches == 1
    assert record.getvalue() == "p1 5 0 100\np1 2 1 7\np1 6 0 101\n"
    assert len(stats.latency_samples_ms) == 2
    assert stats.take_latency_percentiles() is not None
    assert stats.take_latency_percentiles() is None
    assert sink.batches == []
    assert stats.dead_lettered == 0


def test_bad_messages_go_to_the_sink_once_per_batch_with_their_reasons_then_are_done(caplog):
    sink = Sink()
    record = io.StringIO()
    process = processor(sink, record, max_value_bytes=64)
    batch = [
        message(b"garbage!", 7, 4242),
        message(GOOD, 7, 4243),
        message(None, 2, 5),
        message(value_packer("p1", 65)(1, 1), 2, 6),
        message(value_packer("p1", 64)(2, 1), 2, 7),
    ]
    with caplog.at_level(logging.WARNING):
        next_offsets = process(batch)
    # A dead letter is done with too: its offset is stored, it is not read again.
    assert next_offsets == {7: 4244, 2: 8}
    assert len(sink.batches) == 1
    letters = sink.batches[0]
    assert [(letter.message.offset(), letter.reason) for letter in letters] == [
        (4242, "too-short"),
        (5, "no-value"),
        (6, "too-large"),
    ]
    assert "shorter than the 18-byte header" in letters[0].error
    assert record.getvalue() == "p1 0 7 4243\np1 2 2 7\n"
    stats = process.stats
    assert stats.messages == 5
    assert dict(stats.dead_letters) == {"too-short": 1, "no-value": 1, "too-large": 1}
    assert stats.dead_lettered == 3
    assert "topic t partition 7 offset 4242 (too-short)" in caplog.text


def test_an_exception_while_processing_a_message_makes_it_a_processing_error(monkeypatch):
    decode = value_decoder()

    def fails_on_sequence_3(value):
        decoded = decode(value)
        if decoded[1] == 3:
            raise RuntimeError("bug in processing")
        return decoded

    monkeypatch.setattr("kafka_micro.processing.value_decoder", lambda _bound: fails_on_sequence_3)
    sink = Sink()
    record = io.StringIO()
    pack = value_packer("p1", 0)
    process = processor(sink, record)
    assert process([message(pack(2, 1), 0, 1), message(pack(3, 1), 0, 2)]) == {0: 3}
    [letter] = sink.batches[0]
    assert (letter.reason, letter.error) == ("processing-error", "RuntimeError: bug in processing")
    assert record.getvalue() == "p1 2 0 1\n"


def test_when_the_dead_letters_cannot_be_written_nothing_is_recorded_and_it_raises():
    record = io.StringIO()
    process = processor(StopAtDeadLetter(), record)
    with pytest.raises(DeadLetterError, match=re.escape("partition 4 offset 9 (wrong-magic")):
        process([message(GOOD, 4, 8), message(b"\x00" * 20, 4, 9), message(GOOD, 4, 10)])
    assert record.getvalue() == ""
    assert process.stats.messages == 0


def test_error_events_are_neither_processed_nor_stored_and_a_fatal_one_raises():
    process = processor()
    end_of_partition = Message(
        topic="t", partition=2, offset=50, error=KafkaError(KafkaError._PARTITION_EOF)
    )
    assert process([end_of_partition, message(GOOD, 3, 9)]) == {3: 10}
    assert process.stats.messages == 1
    assert process([end_of_partition]) == {}
    assert process.stats.batches == 1

    fenced = Message(topic="t", error=KafkaError(KafkaError._FATAL, "instance id in use"))
    with pytest.raises(KafkaException, match="instance id in use"):
        process([message(GOOD, 3, 10), fenced])


def test_a_batch_drops_what_a_rebalance_inside_consume_handed_over_and_keeps_errors():
    end_of_partition = Message(
        topic="t", partition=5, error=KafkaError(KafkaError._PARTITION_EOF, "end")
    )
    batch = [message(GOOD, partition=1), message(GOOD, partition=5), end_of_partition]
    kept = drop_handed_over(batch, owned={1, 2})
    assert [(m.partition(), m.error() is None) for m in kept] == [(1, True), (5, False)]
