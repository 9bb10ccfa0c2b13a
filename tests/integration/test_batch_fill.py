"""consume(num_messages=N) must fill batches on the pinned confluent-kafka, and the consumer
must not hold a trickle back to fill one.

confluent-kafka 2.13 to 2.15 returned from consume() as soon as any message arrived
(confluent-kafka-python issue #2205). These tests pin down the behaviour we rely on.
"""

import re
import threading
import time

import confluent_kafka
import pytest
from apprunner import wait_until
from confluent_kafka import Consumer, Producer, TopicPartition

from kafka_micro.clients import ClientErrors, client_config
from kafka_micro.settings import settings_from

pytestmark = pytest.mark.integration


def consumer_for(app, **extra) -> Consumer:
    settings = settings_from(
        {
            "bootstrap_servers": app.bootstrap,
            "consumer": {"group_id": app.group, "librdkafka": extra},
        }
    )
    return Consumer(client_config(settings, "consumer", ClientErrors("consumer")))


def test_pinned_client_version():
    assert confluent_kafka.version() == "2.16.1"


def test_with_a_backlog_every_batch_is_full(app):
    app.create_topic(partitions=24)
    result = app.run("produce", "--count", "5000")
    assert result.returncode == 0, result.stderr
    consumer = consumer_for(app)
    consumer.subscribe([app.topic])
    sizes = []
    deadline = time.monotonic() + 90
    try:
        while sum(sizes) < 5000 and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=100, timeout=5.0)
            assert all(message.error() is None for message in batch)
            if batch:
                sizes.append(len(batch))
    finally:
        consumer.close()
    assert sum(sizes) == 5000
    assert sizes == [100] * 50


def test_with_a_trickle_consume_waits_for_the_batch_to_fill(app):
    """4 messages every 0.3 s; consume(10, 10 s) must return 10, not the first 4."""
    app.create_topic(partitions=1)
    consumer = consumer_for(app, **{"fetch.min.bytes": 1, "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(app.topic, 0, confluent_kafka.OFFSET_END)])
    consumer.consume(num_messages=1, timeout=2.0)  # let the assignment start fetching
    producer = Producer({"bootstrap.servers": app.bootstrap, "linger.ms": 0})
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for _ in range(4):
                producer.produce(app.topic, b"x")
            producer.flush(5)
            stop.wait(0.3)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        sizes = [len(consumer.consume(num_messages=10, timeout=10.0)) for _ in range(3)]
    finally:
        stop.set()
        sender.join()
        consumer.close()
    assert sizes == [10, 10, 10]


def test_the_consumer_hands_a_trickle_over_without_waiting_to_fill_its_batch(app):
    """Groups of 3 messages 0.5 s apart, batches of 100 and a 5 s consume timeout: each group is
    processed on its own (batch_wait_ms, 2 ms by default, ends the wait), not gathered into a
    batch that waits for the timeout."""
    app.create_topic(partitions=1)
    consumer = app.start("consumer", "consume", CONSUMER__BATCH_TIMEOUT_S="5")
    wait_until(lambda: consumer.owned() == [0], 60, "the consumer to own partition 0")
    producer = Producer({"bootstrap.servers": app.bootstrap, "linger.ms": 0})
    groups = 8
    for _ in range(groups):
        for _ in range(3):
            producer.produce(app.topic, b"x")
        producer.flush(5)
        time.sleep(0.5)
    wait_until(lambda: "consumed 24 msgs" in consumer.log(), 30, "the 24 messages to be consumed")
    assert consumer.stop() == 0
    final = re.search(r"final: consumed (\d+) msgs in (\d+) batches", consumer.log())
    assert final, consumer.log()
    # Two groups may meet in one batch when the machine stalls the consumer; five-second
    # batches would hold all eight groups in one or two.
    assert int(final[1]) == 3 * groups
    assert int(final[2]) >= groups - 2, consumer.log()
