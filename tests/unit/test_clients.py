"""One builder makes every client's librdkafka configuration from the settings."""

import logging

import pytest
from confluent_kafka import KafkaError

from kafka_micro.clients import ClientErrors, client_config
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import settings_from

KINDS = ["producer", "consumer", "admin", "verify", "dead-letter", "dead-letter-reader", "replay"]


def config(kind, **values):
    return client_config(settings_from(values), kind, ClientErrors(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_a_property_set_once_at_the_top_reaches_every_kind_of_client(kind):
    built = config(
        kind,
        bootstrap_servers="kafka1:9093",
        librdkafka={"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512"},
    )
    assert built["bootstrap.servers"] == "kafka1:9093"
    assert built["security.protocol"] == "sasl_ssl"
    assert built["sasl.mechanism"] == "SCRAM-SHA-512"
    assert built["client.id"].startswith(f"kafka-micro-{kind}-")
    assert isinstance(built["error_cb"], ClientErrors)
    assert built["logger"] is logging.getLogger("librdkafka")


def test_the_kind_tables_override_the_top_level_one_for_their_kind_only():
    values = {
        "librdkafka": {"socket.keepalive.enable": False, "client.rack": "a"},
        "producer": {"librdkafka": {"socket.keepalive.enable": True}},
        "consumer": {"librdkafka": {"client.rack": "b"}},
    }
    assert config("producer", **values)["socket.keepalive.enable"] is True
    assert config("producer", **values)["client.rack"] == "a"
    assert config("consumer", **values)["client.rack"] == "b"
    assert config("consumer", **values)["socket.keepalive.enable"] is False
    assert config("admin", **values)["client.rack"] == "a"
    assert config("verify", **values)["client.rack"] == "a"


def test_each_kind_gets_its_own_properties():
    producer = config("producer", producer={"id": "p-1", "linger_ms": 7})
    assert producer["client.id"] == "kafka-micro-producer-p-1"
    assert producer["linger.ms"] == 7
    assert producer["delivery.report.only.error"] is True
    consumer = config("consumer", consumer={"instance_id": "host-1", "group_id": "g"})
    assert consumer["client.id"] == "kafka-micro-consumer-host-1"
    assert (consumer["group.id"], consumer["group.instance.id"]) == ("g", "host-1")
    assert consumer["enable.auto.offset.store"] is False
    assert "group.id" not in config("admin")


def test_verify_reads_in_a_group_of_its_own_and_never_as_the_static_member():
    verify = config("verify", consumer={"instance_id": "host-1", "group_id": "g"})
    assert verify["group.id"].startswith("kafka-micro-verify-")
    assert "group.instance.id" not in verify
    assert verify["enable.auto.commit"] is False
    assert verify["enable.auto.offset.store"] is False
    assert config("verify")["group.id"] != verify["group.id"]


def test_delivery_callback_is_given_to_the_client_that_asks_for_it():
    def on_delivery(_error, _message):
        return None

    settings = settings_from({})
    built = client_config(settings, "producer", ClientErrors("producer"), on_delivery)
    assert built["on_delivery"] is on_delivery
    assert "on_delivery" not in config("producer")


def test_a_fatal_error_is_remembered_and_stops_the_loop(caplog):
    stop = StopRequest()
    errors = ClientErrors("consumer", stop)
    with caplog.at_level(logging.WARNING):
        errors(KafkaError(KafkaError._TRANSPORT, "broker down"))
        assert not errors.fatal
        assert not stop.is_set()
        errors(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert errors.fatal
    assert stop.is_set()
    assert "kafka: broker down" in caplog.text
    assert "fatal consumer error, stopping: fenced" in caplog.text


def test_a_fatal_error_without_a_loop_is_remembered():
    errors = ClientErrors("admin")
    errors(KafkaError(KafkaError._FATAL, "gone", fatal=True))
    assert errors.fatal


def test_the_dead_letter_writer_has_every_write_acknowledged_within_its_timeout():
    writer = config(
        "dead-letter",
        consumer={"instance_id": "host-2", "dead_letter_timeout_s": 12.5},
        producer={"acks": "1", "enable_idempotence": False},
    )
    assert writer["client.id"] == "kafka-micro-dead-letter-host-2"
    assert (writer["acks"], writer["enable.idempotence"]) == ("all", True)
    assert writer["message.timeout.ms"] == 12500
    assert "group.id" not in writer


def test_the_dead_letter_reader_reads_in_a_group_of_its_own():
    reader = config("dead-letter-reader", consumer={"instance_id": "host-1", "group_id": "g"})
    assert reader["group.id"].startswith("kafka-micro-dead-letter-reader-")
    assert "group.instance.id" not in reader
    assert reader["enable.auto.commit"] is False


def test_replay_writes_as_the_producer_does_and_hears_of_every_delivery():
    replay = config(
        "replay",
        librdkafka={"sasl.username": "consumer"},
        producer={
            "linger_ms": 9,
            "librdkafka": {"sasl.username": "producer", "delivery.report.only.error": True},
        },
    )
    assert replay["sasl.username"] == "producer"
    assert replay["linger.ms"] == 9
    assert replay["delivery.report.only.error"] is False
    assert config("dead-letter", librdkafka={"sasl.username": "consumer"})["sasl.username"] == (
        "consumer"
    )
