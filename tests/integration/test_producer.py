"""The producer process: stops cleanly on signals, never drops a message on a full queue."""

import json
import re
import signal

import pytest
from apprunner import wait_until

pytestmark = pytest.mark.integration

_FINAL = re.compile(
    r"final: produced (\d+), delivered (\d+), failed (\d+), unflushed (\d+), "
    r"queue-full waits (\d+)"
)


def final_counts(process) -> dict[str, int]:
    match = _FINAL.search(process.log())
    assert match, process.log()
    names = ("produced", "delivered", "failed", "unflushed", "queue_full")
    return dict(zip(names, (int(n) for n in match.groups()), strict=True))


def verify(app) -> dict:
    result = app.run("verify", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_producing_flushes_and_exits_0(app, sig):
    app.create_topic(partitions=24)
    producer = app.start("producer", "produce", "--rate", "2000", producer__id="signalled")
    wait_until(lambda: "produced " in producer.log(), 60, "a throughput line")
    assert producer.stop(sig) == 0, producer.log()
    counts = final_counts(producer)
    assert f"received {sig.name}" in producer.log()
    assert counts["produced"] > 0
    assert counts["produced"] == counts["delivered"]
    assert counts["failed"] == counts["unflushed"] == 0
    report = verify(app)
    assert report["ok"] is True
    assert report["producers"][0]["producer"] == "signalled"
    assert report["producers"][0]["count"] == counts["delivered"]


def test_full_queue_is_waited_out_and_nothing_is_dropped(app):
    app.create_topic(partitions=24)
    result = app.run(
        "produce",
        "--count",
        "30000",
        producer__librdkafka='{"queue.buffering.max.messages": 200}',
    )
    assert result.returncode == 0, result.stderr
    match = _FINAL.search(result.stderr)
    assert match, result.stderr
    produced, delivered, failed, unflushed, queue_full = (int(n) for n in match.groups())
    assert (produced, delivered, failed, unflushed) == (30000, 30000, 0, 0)
    assert queue_full > 0, "the queue never filled up: the test did not exercise BufferError"
    report = verify(app)
    assert report["ok"] is True
    assert report["messages"] == 30000


def test_duration_limit_and_message_size(app):
    app.create_topic(partitions=24)
    result = app.run("produce", "--duration", "2", "--rate", "500", "--message-size", "1000")
    assert result.returncode == 0, result.stderr
    assert "1000-byte messages" in result.stderr
    produced = int(_FINAL.search(result.stderr).group(1))
    # 500 msg/s for 2 s: never more than 1000; fewer only if this machine falls behind.
    assert 500 <= produced <= 1000, produced
