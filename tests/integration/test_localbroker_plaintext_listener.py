"""A secured test broker with a PLAINTEXT listener beside its SASL_SSL one: one broker, two ways in.

What ``kafka-micro-bench --security-cost`` relies on: messages written over one listener are read
over the other, the SASL_SSL one still refuses a client without credentials, and the PLAINTEXT
one is offered only when asked for, and only by a secured broker.
"""

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafka_micro_devtools.localbroker import LocalBroker

pytestmark = pytest.mark.integration

TOPIC = "both-ways-topic"
GROUP = "both-ways-group"


@pytest.fixture(scope="module")
def two_listener_broker(kafka_home, tmp_path_factory):
    with LocalBroker(
        kafka_home,
        tmp_path_factory.mktemp("two-listener-broker"),
        secured=True,
        plaintext_listener=True,
    ) as broker:
        broker.grant_pipeline("both-ways-", "both-ways-", prefixed=True)
        yield broker


def produce(config, values):
    producer = Producer(config)
    for value in values:
        producer.produce(TOPIC, value)
    assert producer.flush(30) == 0


def consume(config, group, expected):
    consumer = Consumer(
        {**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([TOPIC])
    received = []
    try:
        for _ in range(120):
            for message in consumer.consume(100, 0.5):
                assert message.error() is None, message.error()
                received.append(message.value())
            if len(received) >= expected:
                break
    finally:
        consumer.close()
    return received


def test_the_listeners_are_two_addresses_of_one_broker(two_listener_broker):
    broker = two_listener_broker
    assert broker.bootstrap.startswith("localhost:")
    assert broker.plaintext_bootstrap.startswith("127.0.0.1:")
    assert broker.plaintext_bootstrap.rsplit(":", 1)[1] != broker.bootstrap.rsplit(":", 1)[1]
    plaintext = {"bootstrap.servers": broker.plaintext_bootstrap}
    secured = {"bootstrap.servers": broker.bootstrap}

    admin = AdminClient(plaintext)
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)

    produce(plaintext, [b"plain-%d" % n for n in range(50)])
    produce({**secured, **broker.client_properties("producer")}, [b"tls-%d" % n for n in range(50)])

    over_tls = consume({**secured, **broker.client_properties("consumer")}, "both-ways-tls", 100)
    over_plaintext = consume(plaintext, "both-ways-plain", 100)
    expected = sorted([b"plain-%d" % n for n in range(50)] + [b"tls-%d" % n for n in range(50)])
    assert sorted(over_tls) == expected
    assert sorted(over_plaintext) == expected


def test_the_sasl_ssl_listener_still_wants_credentials(two_listener_broker):
    admin = AdminClient(
        {
            "bootstrap.servers": two_listener_broker.bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": two_listener_broker.client_properties("consumer")["ssl.ca.location"],
        }
    )
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def test_a_plaintext_listener_is_only_added_to_a_secured_broker(kafka_home, tmp_path):
    with pytest.raises(ValueError, match="set secured"):
        LocalBroker(kafka_home, tmp_path, plaintext_listener=True)
    without = LocalBroker(kafka_home, tmp_path / "without", secured=True)
    with pytest.raises(RuntimeError, match="no PLAINTEXT listener"):
        _ = without.plaintext_bootstrap
