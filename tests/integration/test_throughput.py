"""One unthrottled producer and six consumers: nothing is lost (speed: kafka-micro-bench)."""

import re

import pytest
from apprunner import balanced, wait_until

pytestmark = pytest.mark.integration

MESSAGES = 300_000
_CONSUMED = re.compile(r"consumed (\d+) msgs")


def consumed(consumer) -> int:
    counts = _CONSUMED.findall(consumer.log())
    return int(counts[-1]) if counts else 0


def test_an_unthrottled_producer_and_six_consumers_lose_nothing(app):
    app.create_topic(partitions=24)
    consumers = [app.start(f"consumer-{n}", "consume") for n in range(1, 7)]
    wait_until(lambda: balanced(consumers), 120, "six consumers to own 4 partitions each")

    producer = app.run("produce", "--count", str(MESSAGES), timeout=600)
    assert producer.returncode == 0, producer.stderr
    assert f"final: produced {MESSAGES}, delivered {MESSAGES}, failed 0" in producer.stderr
    wait_until(
        lambda: sum(consumed(c) for c in consumers) >= MESSAGES,
        600,
        "every message to be consumed",
        interval=0.1,
    )
    for consumer in consumers:
        assert consumer.stop() == 0
    # The final report of each, after its last batch: exactly every message, none twice.
    assert sum(consumed(c) for c in consumers) == MESSAGES
    assert app.run("verify").returncode == 0
