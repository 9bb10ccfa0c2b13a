"""The metrics-cost bench's pure parts: the order of the modes, the summary and table, and the
metrics table each child process gets."""

from kafka_micro.settings import ConsumerSettings, ProducerSettings, load_settings
from kafka_micro_devtools.bench.metricscost import (
    STATISTICS_INTERVAL_MS,
    MetricsRun,
    contexts,
    round_order,
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


def test_modes_take_turns_at_going_first():
    assert [round_order(n) for n in range(4)] == [
        ("off", "on"),
        ("on", "off"),
        ("off", "on"),
        ("on", "off"),
    ]


def test_the_ratio_is_on_over_off_of_the_medians_and_per_round():
    runs = [
        run(0, "off", "producer 100 B", 100_000),
        run(0, "on", "producer 100 B", 98_000),
        run(1, "on", "producer 100 B", 95_000),
        run(1, "off", "producer 100 B", 100_000),
        run(2, "off", "producer 100 B", 90_000),
        run(2, "on", "producer 100 B", 90_000),
        run(0, "off", "consumer x6", 2_000_000, rss=(60.0, 61.5), cpu_s=4.0),
        run(0, "on", "consumer x6", 1_900_000, rss=(63.0, 62.0), cpu_s=3.99),
    ]
    producer, consumer = summarize(runs)
    assert producer.measurement == "producer 100 B"
    assert producer.off.msgs_per_s_median == 100_000
    assert producer.on.msgs_per_s_median == 95_000
    assert producer.ratio == 0.95
    assert producer.round_ratios == [0.98, 0.95, 1.0]
    assert consumer.peak_rss_mb == {"off": 61.5, "on": 63.0}
    # CPU per message: 4.0 s / 2,000,000 and 3.99 s / 1,900,000.
    assert consumer.cpu_us_per_msg == {"off": 2.0, "on": 2.1}
    assert consumer.cpu_ratio == 1.05
    table = to_table([producer, consumer])
    assert "| 0.950 (0.98, 0.95, 1.00) | 10.00 / 10.53 (1.053) | -" in table
    assert "| 2.00 / 2.10 (1.050) | 61.5 MB / 63.0 MB" in table


def test_a_measurement_run_in_one_mode_only_is_not_compared():
    assert summarize([run(0, "off", "consumer x1", 1000)]) == []


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
