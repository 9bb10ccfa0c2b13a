import io
import logging

from confluent_kafka import Message

from kafka_micro.message import value_packer
from kafka_micro.processing import ConsumeStats, StatsProcessor


def message(value, partition=3, offset=10):
    return Message(topic="t", partition=partition, offset=offset, value=value)


def test_batch_updates_counts_max_sequence_latency_and_record():
    pack = value_packer("p1", 64)
    stats = ConsumeStats()
    record = io.StringIO()
    process = StatsProcessor(stats, record)
    process([message(pack(5, 1), 0, 100), message(pack(2, 1), 1, 7)])
    assert stats.messages == 2
    assert stats.batches == 1
    assert stats.max_sequence == {b"p1": 5}
    assert record.getvalue() == "p1 5 0 100\np1 2 1 7\n"
    assert len(stats.latency_samples_ms) == 2
    assert stats.take_latency_percentiles() is not None
    assert stats.take_latency_percentiles() is None


def test_malformed_message_is_counted_and_logged_with_partition_and_offset(caplog):
    stats = ConsumeStats()
    process = StatsProcessor(stats)
    good = value_packer("p1", 0)(0, 1)
    with caplog.at_level(logging.WARNING):
        process([message(b"garbage!", 7, 4242), message(good, 7, 4243)])
    assert stats.malformed == 1
    assert stats.max_sequence == {b"p1": 0}
    assert "partition 7 offset 4242" in caplog.text
    assert "shorter than the 18-byte header" in caplog.text
