"""The metrics-cost bench's own parts: on against off with CPU per message and peak RSS in the
summary and table, the JSON's layout, and the metrics table each child process gets (the rounds:
``test_paired_rounds``)."""

import json

from kafka_micro.settings import ConsumerSettings, ProducerSettings, load_settings
from kafka_micro_devtools.bench.metricscost import (
    PAIR,
    STATISTICS_INTERVAL_MS,
    MetricsCostResults,
    MetricsRun,
    contexts,
    summarize,
    to_table,
)
from kafka_micro_devtools.bench.ours import settings_tree
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import Throughput

LOAD = (1.0, 1.0, 1.0)


def run(number, mode, measurement, msgs_per_s, rss=(), cpu_s=1.0):
    throughput = Throughput.of(
        "kafka-micro", int(msgs_per_s), 100, 1.0, load=LOAD, detail={"cpu_s": cpu_s}
    )
    return MetricsRun(
        round=number,
        mode=mode,
        measurement=measurement,
        throughput=throughput,
        peak_rss_mb=list(rss),
    )


def test_metrics_off_goes_first_in_even_rounds():
    assert PAIR.round_order(0) == ("off", "on")
    assert PAIR.round_order(1) == ("on", "off")


def test_on_is_compared_with_off_in_msgs_cpu_per_message_and_the_highest_rss():
    runs = [
        run(0, "off", "producer 100 B", 100_000),
        run(0, "on", "producer 100 B", 95_000),
        run(0, "off", "consumer x6", 2_000_000, rss=(60.0, 61.5), cpu_s=4.0),
        run(0, "on", "consumer x6", 1_900_000, rss=(63.0, 62.0), cpu_s=3.99),
        run(1, "on", "consumer x6", 1_900_000, rss=(62.0,), cpu_s=5.7),
        run(1, "off", "consumer x6", 2_000_000, rss=(60.0,), cpu_s=4.0),
    ]
    producer, consumer = summarize(runs)
    assert (producer.off.msgs_per_s_median, producer.on.msgs_per_s_median) == (100_000, 95_000)
    assert (producer.ratio, producer.round_ratios) == (0.95, [0.95])
    assert producer.peak_rss_mb == {}
    assert consumer.peak_rss_mb == {"off": 61.5, "on": 63.0}
    # CPU per message: 4.0 s / 2,000,000 twice; 3.99 s and 5.7 s / 1,900,000, median 2.55 us.
    assert consumer.cpu_us_per_msg == {"off": 2.0, "on": 2.55}
    assert consumer.cpu_ratio == 1.275
    header, producer_row, consumer_row = to_table([producer, consumer]).splitlines()
    assert "on / off, medians (per round) | CPU us/msg off / on (on / off)" in header
    assert producer_row.endswith("| 0.950 (0.95) | 10.00 / 10.53 (1.053) | -")
    assert consumer_row.endswith("| 0.950 (0.95, 0.95) | 2.00 / 2.55 (1.275) | 61.5 MB / 63.0 MB")


def test_the_json_has_the_intervals_right_after_the_header():
    header = dict(started_at="t", command=[], quick=True, machine={}, broker={}, profile={})
    written = json.loads(MetricsCostResults(**header, load_average_start=LOAD).to_json())
    fields = list(written)
    assert fields[fields.index("profile") + 1 : fields.index("load_average_start")] == [
        "statistics_interval_ms",
        "scrape_interval_s",
    ]
    assert written["schema"] == "kafka-micro-bench-metrics/1"
    assert written["statistics_interval_ms"] == STATISTICS_INTERVAL_MS


def test_children_get_metrics_off_or_on_with_frequent_statistics_on_free_local_ports(tmp_path):
    profile = BenchProfile(name="t", producer=ProducerSettings(), consumer=ConsumerSettings())
    by_mode = contexts("127.0.0.1:9092", tmp_path)
    trees = {
        mode: settings_tree(ctx, profile, "t", user="producer") for mode, ctx in by_mode.items()
    }
    assert trees["off"]["metrics"] == {"enabled": False, "bind_address": "127.0.0.1", "port": 0}
    assert trees["on"]["metrics"] == {
        "enabled": True,
        "bind_address": "127.0.0.1",
        "port": 0,
        "statistics_interval_ms": STATISTICS_INTERVAL_MS,
    }
    assert by_mode["on"].scrape_interval_s is not None
    assert by_mode["off"].scrape_interval_s is None
    # What the children read back is valid settings.
    assert load_settings(None, trees["on"]).metrics.statistics_interval_ms == STATISTICS_INTERVAL_MS
