"""The security-cost bench's pure parts: the order of the modes, the summary, the table, and the
connection properties each child process gets."""

from pathlib import Path

from kafka_micro.settings import ConsumerSettings, ProducerSettings
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.ours import settings_tree
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import Throughput
from kafka_micro_devtools.bench.security import (
    SecurityRun,
    round_order,
    summarize,
    to_table,
)

LOAD = (1.0, 1.0, 1.0)


def run(number, mode, measurement, msgs_per_s, message_bytes=100):
    throughput = Throughput.of("kafka-micro", int(msgs_per_s), message_bytes, 1.0, load=LOAD)
    return SecurityRun(round=number, mode=mode, measurement=measurement, throughput=throughput)


def test_modes_take_turns_at_going_first():
    assert [round_order(n) for n in range(4)] == [
        ("plaintext", "sasl_ssl"),
        ("sasl_ssl", "plaintext"),
        ("plaintext", "sasl_ssl"),
        ("sasl_ssl", "plaintext"),
    ]


def test_summary_has_medians_spread_and_ratios_of_medians_and_of_each_round():
    runs = [
        run(0, "plaintext", "producer 100 B", 600_000),
        run(0, "sasl_ssl", "producer 100 B", 300_000),
        run(1, "sasl_ssl", "producer 100 B", 400_000),
        run(1, "plaintext", "producer 100 B", 500_000),
        run(2, "plaintext", "producer 100 B", 800_000),
        run(2, "sasl_ssl", "producer 100 B", 200_000),
        run(0, "plaintext", "consumer x6", 2_000_000),
        run(0, "sasl_ssl", "consumer x6", 1_000_000),
    ]
    producer, consumers = summarize(runs)
    assert producer.measurement == "producer 100 B"
    assert producer.plaintext.msgs_per_s == [600_000, 500_000, 800_000]
    assert producer.plaintext.msgs_per_s_median == 600_000
    assert producer.plaintext.mb_per_s_median == 60.0
    assert producer.sasl_ssl.msgs_per_s_median == 300_000
    assert producer.ratio == 0.5
    assert producer.round_ratios == [0.5, 0.8, 0.25]
    assert (consumers.measurement, consumers.ratio, consumers.round_ratios) == (
        "consumer x6",
        0.5,
        [0.5],
    )


def test_a_measurement_without_both_modes_has_no_comparison_and_a_lone_run_no_round_ratio():
    runs = [
        run(0, "plaintext", "producer 100 B", 600_000),
        run(0, "plaintext", "consumer x1", 1_000_000),
        run(1, "sasl_ssl", "consumer x1", 900_000),
    ]
    [consumer] = summarize(runs)
    assert consumer.measurement == "consumer x1"
    assert consumer.ratio == 0.9
    assert consumer.round_ratios == []


def test_table_shows_each_mode_and_the_ratio():
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
