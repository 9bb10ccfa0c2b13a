"""`kafka-micro-bench --quick` end to end: structure of its JSON, a PNG, never its speed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_micro.processing import ConsumeStats
from kafka_micro.settings import ConsumerSettings, ProducerSettings
from kafka_micro_devtools.bench.latencyfile import latency_ns_from_file
from kafka_micro_devtools.bench.probe import BatchTimes, LatencyRecorder
from kafka_micro_devtools.bench.profile import (
    BenchProfile,
    java_connection_properties,
    java_consumer_properties,
    java_producer_properties,
)
from kafka_micro_devtools.bench.results import percentile
from kafka_micro_devtools.localbroker import ARCHIVE_NAME

BENCH = str(Path(sys.executable).parent / "kafka-micro-bench")


@pytest.fixture(scope="module")
def quick_bench(broker, kafka_home, tmp_path_factory):
    output = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            BENCH,
            "--quick",
            "--bootstrap",
            broker.bootstrap,
            "--kafka-home",
            str(kafka_home),
            "--output-dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return output, result


def positive_throughput(run, tool, message_bytes):
    assert run["tool"] == tool
    assert run["message_bytes"] == message_bytes
    assert run["messages"] > 0
    assert run["seconds"] > 0
    assert run["msgs_per_s"] > 0
    assert run["mb_per_s"] > 0
    assert len(run["load_average"]) == 3


def test_json_has_every_measurement_with_positive_numbers(quick_bench):
    output, _result = quick_bench
    results = json.loads((output / "bench.json").read_text())
    assert results["schema"] == "kafka-micro-bench/1"
    assert results["quick"] is True
    assert results["machine"]["cpus"] >= 1
    assert results["profile"]["producer"]["linger_ms"] >= 0
    assert (
        results["java_settings"]["producer"]["compression.type"]
        == (results["profile"]["producer"]["compression"])
    )

    assert [c["label"] for c in results["producer"]] == ["producer 100 B", "producer 1024 B"]
    for comparison, size in zip(results["producer"], (100, 1024), strict=True):
        positive_throughput(comparison["ours"][0], "kafka-micro", size)
        positive_throughput(comparison["theirs"][0], "kafka-producer-perf-test", size)
        assert comparison["ratio"] > 0

    latency = results["latency"]
    assert [run["fraction_of_max"] for run in latency if not run["fixed_rate"]] == [0.5]
    assert [run["target_rate"] for run in latency if run["fixed_rate"]] == [1000.0]
    assert [run["target_rate"] for run in latency] == sorted(run["target_rate"] for run in latency)
    for run in results["latency"]:
        assert run["samples"] > 0
        assert run["achieved_rate"] > 0
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["p999_ms"] <= run["max_ms"]

    # The Java clients at each of our rates, a whole number of ms each (0 ms is possible).
    java_at_rates = results["java_latency_at_rates"]
    assert [run["target_rate"] for run in java_at_rates] == [run["target_rate"] for run in latency]
    for run in java_at_rates:
        assert run["samples"] > 0
        assert 0 <= run["p50_ms"] <= run["p99_ms"] <= run["p999_ms"] <= run["max_ms"]
        assert run["p99_ms"] == int(run["p99_ms"])

    java = results["java_latency"]
    assert java["messages"] == 200
    assert java["avg_ms"] > 0
    assert 0 <= java["p50_ms"] <= java["p99_ms"] <= java["p999_ms"]

    assert [run["instances"] for run in results["consumer"]] == [1, 6]
    for run in results["consumer"]:
        positive_throughput(run["throughput"], "kafka-micro", 100)
        assert run["throughput"]["detail"]["consumed"] >= 30_000
        assert len(run["peak_rss_mb"]) == run["instances"]
        assert all(rss > 0 for rss in run["peak_rss_mb"])
    for comparison in results["consumer_comparisons"]:
        positive_throughput(comparison["theirs"][0], "kafka-consumer-perf-test", 100)
        assert comparison["ratio"] > 0

    assert len(results["targets"]) == 5
    for target in results["targets"]:
        assert target["measured"] > 0
        assert isinstance(target["met"], bool)


def test_png_and_table_are_written(quick_bench):
    output, result = quick_bench
    png = (output / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    rows = (
        "producer 100 B",
        "consumer x6",
        "1,000 msg/s",
        "50% of max",
        "Java, 50% of max",
        "EndToEndLatency",
        "targets",
    )
    for row in rows:
        assert row in result.stdout
    assert "producer 100 B ours:" in result.stderr


def test_bad_option_is_refused_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [BENCH, "--repeats", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "'0' must be at least 1" in result.stderr


def test_a_login_kafkas_tools_cannot_be_given_is_refused_naming_the_property(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(
        '[librdkafka]\n"security.protocol" = "SSL"\n"ssl.key.location" = "/etc/client.key"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [BENCH, "--bootstrap", "localhost:1", "--config", str(config), "--no-kafka-tools"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "['ssl.key.location'] have no Java translation" in result.stderr
    assert str(config) in result.stderr
    assert not (tmp_path / "bench-results").exists()


def test_a_scram_login_is_translated_for_the_java_clients():
    java = java_connection_properties(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "kafka-admin",
            "sasl.password": "s3cret",
            "ssl.ca.location": "/etc/kafka/tls/ca.crt",
        }
    )
    assert java == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": "/etc/kafka/tls/ca.crt",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="kafka-admin" password="s3cret";',
    }
    with pytest.raises(ValueError, match="'GSSAPI'"):
        java_connection_properties({"sasl.username": "u", "sasl.password": "p"})


def test_missing_archive_is_named(tmp_path):
    missing = tmp_path / "nope.tar.gz"
    result = subprocess.run(
        [
            BENCH,
            "--quick",
            "--archive",
            str(missing),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"Kafka archive {missing} does not exist" in result.stderr


def test_without_archive_option_outside_a_checkout_the_error_says_what_to_pass(tmp_path):
    result = subprocess.run(
        [BENCH, "--quick", "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"no Kafka archive: build/{ARCHIVE_NAME} is not under the current directory" in (
        result.stderr
    )
    assert "pass --archive TARBALL or --kafka-home DIR" in result.stderr


def test_percentile_is_nearest_rank():
    values = list(range(1, 1001))
    assert percentile(values, 0.5) == 500
    assert percentile(values, 0.99) == 990
    assert percentile(values, 0.999) == 999
    assert percentile([7], 0.999) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_kafka_tools_get_our_effective_settings_and_the_rest_is_listed():
    profile = BenchProfile(
        name="t", producer=ProducerSettings(), consumer=ConsumerSettings()
    ).with_changes(
        "changed",
        producer={
            "linger_ms": 7,
            "librdkafka": {"batch.size": 65536, "socket.nagle.disable": True},
        },
        consumer={"group_protocol": "classic", "batch_size": 250},
    )
    producer, producer_unmapped = java_producer_properties(profile.producer)
    assert producer["linger.ms"] == "7"
    assert producer["batch.size"] == "65536"  # the raw table wins, as it does for librdkafka
    assert producer["enable.idempotence"] == "true"
    assert producer_unmapped == ["socket.nagle.disable"]
    consumer, consumer_unmapped = java_consumer_properties(profile.consumer)
    assert consumer["group.protocol"] == "classic"
    assert consumer["max.poll.records"] == "250"
    assert consumer["fetch.max.wait.ms"] == str(profile.consumer.fetch_wait_max_ms)
    assert consumer["partition.assignment.strategy"].endswith("CooperativeStickyAssignor")
    # Our prefetch bound stays ours: the Java tool runs with its own fetch.max.bytes.
    assert "fetch.max.bytes" not in consumer
    assert consumer_unmapped == [
        "fetch.max.bytes",
        "fetch.queue.backoff.ms",
        "message.max.bytes",
        "queued.max.messages.kbytes",
    ]


def test_latency_file_keeps_only_messages_sent_after_the_warm_up(tmp_path):
    recorder = LatencyRecorder(BatchTimes(ConsumeStats(), batch_size=2))
    # Sent at 100, 200, 1_100, 1_300; the first batch arrives at 1_000, the second at 5_000.
    recorder.sent_ns.extend([100, 200, 1_100, 1_300])
    recorder.batches.extend([1_000, 2, 5_000, 2])
    path = tmp_path / "latency"
    recorder.save(path)
    assert latency_ns_from_file(path, started_ns=0, warmup_ns=0) == [3_900, 3_700]
    # The warm-up counts from the first arrival, not from the producer's start.
    assert latency_ns_from_file(path, started_ns=0, warmup_ns=200) == [3_700]
    # ...unless the producer started later than that.
    assert latency_ns_from_file(path, started_ns=1_050, warmup_ns=100) == [3_700]
