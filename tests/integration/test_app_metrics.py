"""The app's /metrics against the real broker: every series the kafka_app README documents is
served by the process it names, and the values move with traffic."""

import re
import time
import urllib.request
from pathlib import Path

import pytest
from apprunner import wait_until
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "roles" / "kafka_app" / "README.md"
_DOCUMENTED = re.compile(
    r"^\| `(kafka_micro_\w+)` \| (\w+) \|([^|]*)\| (producer|consumer|both) \|", re.MULTILINE
)
_METRICS_URL = re.compile(r"metrics on (http://\S+/metrics)")
# Free local ports; statistics often enough for a short test.
METRICS = {
    "metrics__bind_address": "127.0.0.1",
    "metrics__port": "0",
    "metrics__statistics_interval_ms": "500",
}


def documented_series() -> dict[str, list[tuple[str, str, list[str]]]]:
    """Per process kind: (name, type, label names) of each series in the README's table."""
    found: dict[str, list[tuple[str, str, list[str]]]] = {"producer": [], "consumer": []}
    for name, kind, labels, process in _DOCUMENTED.findall(README.read_text(encoding="utf-8")):
        # Label values are given in parentheses after a label's name.
        names = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))
        for each in ("producer", "consumer") if process == "both" else (process,):
            found[each].append((name, kind, names))
    return found


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] of one scrape."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that carry ``labels``."""
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


def metrics_url(process) -> str:
    return wait_until(
        lambda: (found := _METRICS_URL.search(process.log())) and found.group(1),
        60,
        f"{process.name} to serve /metrics",
    )


def test_the_documented_series_are_served_and_move_with_traffic(app):
    documented = documented_series()
    assert len(documented["producer"]) >= 10
    assert len(documented["consumer"]) >= 10
    topic = app.create_topic(partitions=4)
    consumer = app.start("consumer", "consume", "--instance-id", "metrics-host-1", **METRICS)
    producer = app.start("producer", "produce", "--rate", "2000", **METRICS)
    producer_url, consumer_url = metrics_url(producer), metrics_url(consumer)

    def consumer_working():
        samples = scrape(consumer_url)
        return (
            samples
            if value(samples, "kafka_micro_ready") == 1
            and value(samples, "kafka_micro_consumed_messages_total") > 0
            and len(samples.get("kafka_micro_consumer_lag_messages", [])) == 4
            and value(samples, "kafka_micro_e2e_latency_seconds_count") > 0
            and samples.get("kafka_micro_broker_rtt_avg_seconds")
            else None
        )

    before = {"consumer": wait_until(consumer_working, 90, "the consumer's metrics to fill")}
    before["producer"] = wait_until(
        lambda: (
            (s := scrape(producer_url))
            and value(s, "kafka_micro_delivered_messages_total") > 0
            and s.get("kafka_micro_broker_rtt_avg_seconds")
            and s
        ),
        60,
        "the producer's metrics to fill",
    )
    for kind, series in documented.items():
        for name, metric_type, labels in series:
            sample_name = f"{name}_bucket" if metric_type == "histogram" else name
            assert sample_name in before[kind], f"{kind} serves no {sample_name}"
            served_labels = set().union(*(set(found) for found, _v in before[kind][sample_name]))
            assert served_labels == set(labels), (kind, name, served_labels)

    # A message not in kafka-micro's format, written straight to the topic.
    raw = Producer({"bootstrap.servers": app.bootstrap})
    raw.produce(topic, b"not a kafka-micro message", partition=0)
    assert raw.flush(30) == 0
    time.sleep(3)
    after = {"producer": scrape(producer_url), "consumer": scrape(consumer_url)}

    def moved(kind: str, name: str, at_least=1.0) -> float:
        change = value(after[kind], name) - value(before[kind], name)
        assert change >= at_least, f"{kind} {name} moved by {change}"
        return change

    produced = moved("producer", "kafka_micro_produced_messages_total", 2000)
    assert moved("producer", "kafka_micro_produced_bytes_total") == produced * 512
    moved("producer", "kafka_micro_delivered_messages_total", 2000)
    assert value(after["producer"], "kafka_micro_delivery_failed_messages_total") == 0
    assert value(after["producer"], "kafka_micro_ready") == 1
    moved("consumer", "kafka_micro_consumed_messages_total", 2000)
    moved("consumer", "kafka_micro_consumed_batches_total")
    moved("consumer", "kafka_micro_e2e_latency_seconds_count")
    dead_lettered = "kafka_micro_dead_lettered_messages_total"
    assert moved("consumer", dead_lettered) == 1
    assert value(after["consumer"], dead_lettered, reason="wrong-magic") == 1
    # Every reason is served from the start, at 0 until its first dead letter.
    assert len(after["consumer"][dead_lettered]) == 8
    assert value(after["consumer"], dead_lettered, reason="no-value") == 0
    # The only member: one assignment of all four partitions (empty callbacks are not counted).
    assert value(after["consumer"], "kafka_micro_rebalances_total", event="assigned") == 1
    assert value(after["consumer"], "kafka_micro_rebalances_total", event="revoked") == 0
    assert value(after["consumer"], "kafka_micro_assigned_partitions") == 4
    lags = after["consumer"]["kafka_micro_consumer_lag_messages"]
    assert sorted(int(labels["partition"]) for labels, _v in lags) == [0, 1, 2, 3]
    assert {labels["topic"] for labels, _v in lags} == {topic}
    assert all(v >= 0 for _labels, v in lags)

    assert producer.stop() == 0, producer.log()
    assert consumer.stop() == 0, consumer.log()
