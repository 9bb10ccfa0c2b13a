import io
import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from kafka_micro.message import value_packer
from kafka_micro.processing import ConsumeStats, StatsProcessor


def message(value, partition=3, offset=10):
    return Message(topic="t", partition=partition, offset=offset, value=value)


def test_batch_updates_counts_latency_and_record_and_returns_the_offsets_to_store():
    pack = value_packer("p1", 64)
    stats = ConsumeStats()
    record = io.StringIO()
    process = StatsProcessor(stats, record)
    next_offsets = process(
        [message(pack(5, 1), 0, 100), message(pack(2, 1), 1, 7), message(pack(6, 1), 0, 101)]
    )
    assert next_offsets == {0: 102, 1: 8}
    assert stats.messages == 3
    assert stats.batches == 1
    assert record.getvalue() == "p1 5 0 100\np1 2 1 7\np1 6 0 101\n"
    assert len(stats.latency_samples_ms) == 2
    assert stats.take_latency_percentiles() is not None
    assert stats.take_latency_percentiles() is None


def test_malformed_message_is_counted_and_logged_with_partition_and_offset(caplog):
    stats = ConsumeStats()
    process = StatsProcessor(stats)
    good = value_packer("p1", 0)(0, 1)
    with caplog.at_level(logging.WARNING):
        next_offsets = process([message(b"garbage!", 7, 4242), message(good, 7, 4243)])
    assert stats.malformed == 1
    assert stats.messages == 2
    # A malformed message is done with too: skipped for good, not read again.
    assert next_offsets == {7: 4244}
    assert "partition 7 offset 4242" in caplog.text
    assert "shorter than the 18-byte header" in caplog.text


def test_error_events_are_neither_processed_nor_stored_and_a_fatal_one_raises():
    stats = ConsumeStats()
    process = StatsProcessor(stats)
    good = value_packer("p1", 0)(0, 1)
    end_of_partition = Message(
        topic="t", partition=2, offset=50, error=KafkaError(KafkaError._PARTITION_EOF)
    )
    assert process([end_of_partition, message(good, 3, 9)]) == {3: 10}
    assert stats.messages == 1
    assert process([end_of_partition]) == {}
    assert stats.batches == 1

    fenced = Message(topic="t", error=KafkaError(KafkaError._FATAL, "instance id in use"))
    with pytest.raises(KafkaException, match="instance id in use"):
        process([message(good, 3, 10), fenced])
