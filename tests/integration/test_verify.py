"""verify finds gaps and duplicates; the consumer dead-letters malformed messages and goes on."""

import json
import time

import pytest
from apprunner import wait_until
from confluent_kafka import Producer

from kafka_micro.message import value_packer

pytestmark = pytest.mark.integration


def inject(app, values):
    """Write raw values into partition 0, bypassing kafka-micro produce."""
    producer = Producer({"bootstrap.servers": app.bootstrap})
    for value in values:
        producer.produce(app.topic, value, partition=0)
    assert producer.flush(30) == 0


def test_verify_reports_gaps_duplicates_and_malformed_and_exits_1(app):
    app.create_topic(partitions=24)
    assert app.run("produce", "--count", "1000", producer__id="complete").returncode == 0
    pack = value_packer("gappy", 64)
    now = time.time_ns()
    inject(app, [pack(sequence, now) for sequence in (0, 1, 2, 5, 6, 6, 9)] + [b"not ours"])

    result = app.run("verify", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_producer = {p["producer"]: p for p in report["producers"]}
    assert by_producer["complete"]["count"] == 1000
    assert by_producer["complete"]["missing"] == 0
    assert by_producer["gappy"]["missing"] == 4
    assert by_producer["gappy"]["missing_ranges"] == [[3, 4], [7, 8]]
    assert by_producer["gappy"]["duplicates"] == 1
    assert report["malformed"] == 1
    assert report["messages"] == 1008
    assert report["ok"] is False

    table = app.run("verify")
    assert table.returncode == 1
    assert "3-4, 7-8" in table.stdout
    assert "4 missing, 1 duplicates, 1 malformed" in table.stdout


def test_consumer_dead_letters_malformed_messages_and_keeps_going(app):
    app.create_topic(partitions=24)
    inject(app, [b"", b"\xa1\x05short", value_packer("p", 0)(0, 1)])
    consumer = app.start("consumer", "consume", record=True)
    wait_until(lambda: len(consumer.records()) == 1, 90, "the good message to be processed")
    wait_until(lambda: "dead-lettered 2\n" in consumer.log(), 30, "a throughput line counting 2")
    assert consumer.stop() == 0
    log = consumer.log()
    assert (
        f"dead letter: the message at topic {app.topic} partition 0 offset 0 (empty-value)" in log
    )
    assert "partition 0 offset 1 (too-short)" in log
    assert consumer.records() == [("p", 0, 0, 2)]


def test_verify_of_a_missing_topic_exits_2(app):
    result = app.run("verify")
    assert result.returncode == 2
    assert f"topic {app.topic!r} does not exist" in result.stderr
