"""Benchmark: one unthrottled producer and six consumers; prints rates, asserts no loss."""

import re
import time

import pytest
from apprunner import balanced, wait_until

pytestmark = pytest.mark.integration

MESSAGES = 300_000
_CONSUMED = re.compile(r"consumed (\d+) msgs .*?batches (\d+) \(avg ([\d.]+) msgs\)")
_LATENCY = re.compile(r"e2e latency p50 ([\d.]+) ms p99 ([\d.]+) ms")


def consumed(consumer) -> int:
    counts = _CONSUMED.findall(consumer.log())
    return int(counts[-1][0]) if counts else 0


def test_throughput_of_one_producer_and_six_consumers(app, capsys):
    app.create_topic(partitions=24)
    consumers = [app.start(f"consumer-{n}", "consume") for n in range(1, 7)]
    wait_until(lambda: balanced(consumers), 120, "six consumers to own 4 partitions each")

    started = time.monotonic()
    producer = app.run("produce", "--count", str(MESSAGES), timeout=600)
    produced_in = time.monotonic() - started
    assert producer.returncode == 0, producer.stderr
    assert f"final: produced {MESSAGES}, delivered {MESSAGES}, failed 0" in producer.stderr
    wait_until(
        lambda: sum(consumed(c) for c in consumers) >= MESSAGES,
        600,
        "every message to be consumed",
        interval=0.1,
    )
    consumed_in = time.monotonic() - started
    for consumer in consumers:
        assert consumer.stop() == 0
    batches = [_CONSUMED.findall(c.log())[-1] for c in consumers]
    latencies = [m for c in consumers for m in _LATENCY.findall(c.log())]
    with capsys.disabled():
        print(
            f"\nthroughput: {MESSAGES} x 512-byte messages produced in {produced_in:.1f} s "
            f"({MESSAGES / produced_in:.0f} msg/s incl. process start and flush); all consumed "
            f"by 6 consumers {consumed_in:.1f} s after the producer started "
            f"({MESSAGES / consumed_in:.0f} msg/s); per-consumer average batch sizes "
            f"{[float(avg) for _n, _b, avg in batches]}; e2e latency p50/p99 ms samples "
            f"(first 3): {latencies[:3]}"
        )
    assert sum(int(n) for n, _b, _a in batches) == MESSAGES
    assert app.run("verify").returncode == 0
