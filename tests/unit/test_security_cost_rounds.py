"""The security-cost bench's own parts: SASL_SSL against PLAINTEXT in the summary and the table,
and the connection properties each child process gets (the rounds: ``test_paired_rounds``)."""

from pathlib import Path

from kafka_micro.settings import ConsumerSettings, ProducerSettings
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.ours import settings_tree
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import Throughput
from kafka_micro_devtools.bench.security import (
    PAIR,
    SecurityRun,
    summarize,
    to_table,
)

LOAD = (1.0, 1.0, 1.0)


def run(number, mode, measurement, msgs_per_s, message_bytes=100):
    throughput = Throughput.of("kafka-micro", int(msgs_per_s), message_bytes, 1.0, load=LOAD)
    return SecurityRun(round=number, mode=mode, measurement=measurement, throughput=throughput)


def test_plaintext_goes_first_in_even_rounds():
    assert PAIR.round_order(0) == ("plaintext", "sasl_ssl")
    assert PAIR.round_order(1) == ("sasl_ssl", "plaintext")


def test_table_shows_each_mode_and_the_ratio_of_sasl_ssl_to_plaintext():
    runs = [
        run(0, "plaintext", "producer 1024 B", 300_000, 1024),
        run(0, "sasl_ssl", "producer 1024 B", 150_000, 1024),
    ]
    header, row = to_table(summarize(runs)).splitlines()
    assert "PLAINTEXT" in header
    assert "SASL_SSL / PLAINTEXT" in header
    assert row == (
        "producer 1024 B | 300k (300k); 307.2 MB/s | 150k (150k); 153.6 MB/s | 0.50 (0.50)"
    )


def test_children_of_a_secured_broker_connect_as_their_user_and_others_as_before(tmp_path):
    profile = BenchProfile(name="t", producer=ProducerSettings(), consumer=ConsumerSettings())
    plaintext = BenchContext("127.0.0.1:9092", tmp_path, None)
    tree = settings_tree(plaintext, profile, "topic", user="producer")
    assert "librdkafka" not in tree

    users = {
        user: {"security.protocol": "SASL_SSL", "sasl.username": user}
        for user in ("admin", "producer", "consumer")
    }
    secured = BenchContext("localhost:9093", Path(tmp_path), None, client_properties=users)
    producer = settings_tree(secured, profile, "topic", user="producer", producer={"id": "p"})
    consumer = settings_tree(secured, profile, "topic", user="consumer")
    assert producer["librdkafka"] == users["producer"]
    assert producer["producer"]["id"] == "p"
    assert consumer["librdkafka"] == users["consumer"]
    assert secured.librdkafka("admin") == users["admin"]
    assert plaintext.librdkafka("admin") == {}
