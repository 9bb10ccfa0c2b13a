"""The app's metrics without a broker: settings, librdkafka statistics read from real reports,
latency bucketing, and the endpoint (what it serves, and a port it cannot have).

The statistics fixtures are librdkafka 2.16's own JSON, captured from a producer (messages
still queued) and a consumer of group ``fixture-group`` on a 6-partition topic (two of its
partitions with committed offsets) of the test broker.
"""

import json
import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kafka_micro.metrics import (
    LATENCY_BUCKETS_S,
    LatencyHistogram,
    LibrdkafkaStatistics,
    ProducerMetrics,
    RoundTrip,
    parse_statistics,
    serve_metrics,
)
from kafka_micro.settings import ConfigError, ConsumerSettings, MetricsSettings, load_settings

DATA = Path(__file__).parent / "data"
PRODUCER_STATS = (DATA / "librdkafka-stats-producer.json").read_text(encoding="utf-8")
CONSUMER_STATS = (DATA / "librdkafka-stats-consumer.json").read_text(encoding="utf-8")


def config_error(overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, overrides)
    return str(caught.value)


def test_metrics_default_to_on_at_9410_on_every_ipv4_address():
    metrics = load_settings().metrics
    assert (metrics.enabled, metrics.bind_address, metrics.port) == (True, "0.0.0.0", 9410)
    assert metrics.statistics_interval_ms == 1000


def test_consumer_n_of_a_unit_listens_on_port_plus_n_and_others_on_a_free_port():
    metrics = MetricsSettings(port=9410)
    numbers = {
        instance_id: ConsumerSettings(instance_id=instance_id).instance_number()
        for instance_id in ("lab-app-1-3", "host-12", "member", "host-0", None)
    }
    assert numbers == {"lab-app-1-3": 3, "host-12": 12, "member": None, "host-0": None, None: None}
    assert metrics.consumer_port(3) == 9413
    assert metrics.consumer_port(None) == 0
    assert MetricsSettings(port=0).consumer_port(3) == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"bind_address": "localhost"}, "metrics.bind_address = 'localhost'"),
        ({"bind_address": "localhost"}, "not a host name"),
        ({"port": 65536}, "metrics.port = 65536"),
        ({"port": 65536}, "less than or equal to 65535"),
        ({"port": -1}, "greater than or equal to 0"),
        ({"enabled": "maybe"}, "metrics.enabled = 'maybe'"),
        ({"statistics_interval_ms": 10}, "metrics.statistics_interval_ms = 10"),
        ({"listen": "x"}, "allowed here: enabled, bind_address, port, statistics_interval_ms"),
    ],
)
def test_a_bad_metrics_setting_is_named_with_what_is_allowed(overrides, expected):
    assert expected in config_error({"metrics": overrides})


def test_metrics_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_METRICS__PORT", "9500")
    monkeypatch.setenv("KAFKA_MICRO_METRICS__BIND_ADDRESS", "::1")
    metrics = load_settings().metrics
    assert (metrics.port, metrics.bind_address) == (9500, "::1")


def test_producer_statistics_give_queue_depth_and_round_trips_of_real_brokers_only():
    report = json.loads(PRODUCER_STATS)
    statistics = parse_statistics(PRODUCER_STATS)
    assert statistics.queue_messages == report["msg_cnt"] > 0
    assert statistics.queue_bytes == report["msg_size"] > 0
    broker = next(b for b in report["brokers"].values() if b["nodeid"] >= 0)
    assert statistics.broker_rtt == {
        broker["nodeid"]: RoundTrip(broker["rtt"]["avg"] / 1e6, broker["rtt"]["p99"] / 1e6)
    }
    assert statistics.consumer_lag == {}


def test_consumer_statistics_give_the_lag_of_partitions_with_a_committed_offset():
    report = json.loads(CONSUMER_STATS)
    partitions = report["topics"]["stats-fixture"]["partitions"]
    statistics = parse_statistics(CONSUMER_STATS)
    assert statistics.consumer_lag == {
        ("stats-fixture", int(number)): partition["consumer_lag"]
        for number, partition in partitions.items()
        if partition["committed_offset"] >= 0 and int(number) >= 0
    }
    assert len(statistics.consumer_lag) == 2
    assert statistics.consumer_lag[("stats-fixture", 2)] == 1306
    # The consumer was paused: no request in the interval, so no round trip to show.
    assert statistics.broker_rtt == {}


def test_a_report_that_cannot_be_read_keeps_the_last_figures_and_warns_once(caplog):
    receive = LibrdkafkaStatistics()
    receive(PRODUCER_STATS)
    before = receive.latest
    receive('{"msg_cnt": "many"}')
    receive("not json")
    assert receive.latest is before
    assert len([r for r in caplog.records if "not understood" in r.getMessage()]) == 1


def test_latency_samples_fall_into_cumulative_buckets_in_seconds():
    histogram = LatencyHistogram()
    histogram.add_sorted_ms([0.5, 3.0, 3.0, 40.0])
    histogram.add_sorted_ms([])
    histogram.add_sorted_ms([2000.0, 400_000.0])
    buckets = dict(zip(LATENCY_BUCKETS_S, histogram.state.cumulative, strict=True))
    assert buckets[0.001] == 1
    assert buckets[0.0025] == 1
    assert buckets[0.005] == 3
    assert buckets[0.05] == 4
    assert buckets[2.5] == 5
    assert buckets[300.0] == 5
    assert histogram.state.samples == 6
    assert histogram.state.sum_s == pytest.approx(402.0465)


class Progress:
    ready = True
    # Produced, delivered, failed, queue-full waits.
    totals = (1000, 900, 40, 2)


def scrape(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name + str(sorted(sample.labels.items()) or ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_producer_endpoint_serves_counts_bytes_and_librdkafka_figures():
    registry = CollectorRegistry()
    statistics = LibrdkafkaStatistics()
    statistics(PRODUCER_STATS)
    registry.register(ProducerMetrics("topic-a", 512, Progress(), statistics))
    port = free_port()
    with serve_metrics(MetricsSettings(bind_address="127.0.0.1", port=port), registry):
        samples = scrape(port)
    assert samples["kafka_micro_ready"] == 1
    assert samples["kafka_micro_produced_messages_total"] == 1000
    assert samples["kafka_micro_delivered_bytes_total"] == 900 * 512
    assert samples["kafka_micro_delivery_failed_messages_total"] == 40
    assert samples["kafka_micro_queue_full_waits_total"] == 2
    assert samples["kafka_micro_producer_queue_messages"] == json.loads(PRODUCER_STATS)["msg_cnt"]
    assert samples["kafka_micro_broker_rtt_p99_seconds[('node_id', '1')]"] > 0
    info = next(name for name in samples if name.startswith("kafka_micro_info"))
    assert "('topic', 'topic-a')" in info
    # The port is free again once the block ends (reused: the scrape left a TIME_WAIT behind).
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_an_ipv6_bind_address_serves_over_ipv6():
    registry = CollectorRegistry()
    registry.register(ProducerMetrics("topic-a", 512, Progress(), LibrdkafkaStatistics()))
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    with serve_metrics(MetricsSettings(bind_address="::1", port=port), registry):
        samples = scrape(port, "[::1]")
    assert samples["kafka_micro_ready"] == 1


def test_a_port_in_use_is_a_config_error_naming_the_port_and_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = MetricsSettings(bind_address="127.0.0.1", port=port - 2)
        consumer = ConsumerSettings(instance_id="host-2")
        with (
            pytest.raises(ConfigError) as caught,
            serve_metrics(settings, CollectorRegistry(), consumer=consumer),
        ):
            pass
    message = str(caught.value)
    assert f"port {port}" in message
    assert f"metrics.port = {port - 2} + instance 2 of consumer 'host-2'" in message
    assert "already in use" in message


def test_a_consumer_port_above_65535_is_a_config_error():
    settings = MetricsSettings(port=65534)
    with (
        pytest.raises(ConfigError, match=r"port 65537 .*lower metrics\.port"),
        serve_metrics(settings, CollectorRegistry(), consumer=ConsumerSettings(instance_id="h-3")),
    ):
        pass


def test_disabled_metrics_listen_nowhere():
    port = free_port()
    with (
        serve_metrics(MetricsSettings(enabled=False, port=port), CollectorRegistry()),
        socket.socket() as probe,
    ):
        probe.bind(("127.0.0.1", port))
