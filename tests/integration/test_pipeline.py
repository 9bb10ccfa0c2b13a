"""One producer process and six consumer processes on a 24-partition topic: nothing lost."""

import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from apprunner import balanced, committed_offsets, start_consumers, wait_until

pytestmark = pytest.mark.integration

_FINAL = re.compile(r"final: produced (\d+), delivered (\d+), failed (\d+), unflushed (\d+)")


def producer_final(process) -> tuple[int, int, int, int]:
    match = _FINAL.search(process.log())
    assert match, process.log()
    return tuple(int(n) for n in match.groups())


def all_records(consumers):
    return [row for consumer in consumers for row in consumer.records()]


def stop_all(consumers, sig=signal.SIGTERM):
    for consumer in consumers:
        consumer.popen.send_signal(sig)
    return [consumer.wait(60) for consumer in consumers]


def verify(app) -> dict:
    result = app.run("verify", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_six_consumers_own_four_partitions_each_and_consume_every_message(app):
    app.create_topic(partitions=24)
    consumers = start_consumers(app, 6)
    wait_until(lambda: balanced(consumers), 90, "six consumers to own 4 partitions each")

    producer = app.start("producer", "produce", "--count", "30000", "--rate", "5000")
    assert producer.wait(120) == 0, producer.log()
    assert producer_final(producer) == (30000, 30000, 0, 0)
    wait_until(lambda: len(all_records(consumers)) >= 30000, 90, "30000 consumed messages")

    owned = {consumer.name: consumer.owned() for consumer in consumers}
    assert stop_all(consumers) == [0] * 6, [c.log() for c in consumers]
    assert all(len(partitions) == 4 for partitions in owned.values()), owned
    for consumer in consumers:
        assert "received SIGTERM" in consumer.log()
        assert {row[2] for row in consumer.records()} <= set(owned[consumer.name])

    records = all_records(consumers)
    sequences = Counter(sequence for _producer, sequence, _p, _o in records)
    assert len({producer for producer, *_ in records}) == 1
    assert set(sequences) == set(range(30000)), "messages missing"
    assert max(sequences.values()) == 1, "messages processed twice"

    report = verify(app)
    assert report["ok"] is True
    assert report["messages"] == 30000
    assert report["producers"][0]["missing"] == 0
    assert report["producers"][0]["duplicates"] == 0

    last_offsets = {}
    for _producer, _sequence, partition, offset in records:
        last_offsets[partition] = max(offset, last_offsets.get(partition, -1))
    assert committed_offsets(app) == {p: o + 1 for p, o in last_offsets.items()}


def test_sigterm_commits_what_was_processed_and_a_restart_continues_from_there(app):
    app.create_topic(partitions=24)
    first = start_consumers(app, 6, prefix="first")
    wait_until(lambda: balanced(first), 90, "six consumers to own 4 partitions each")
    producer = app.start("producer", "produce", "--count", "40000", "--rate", "4000")
    wait_until(lambda: len(all_records(first)) >= 8000, 60, "8000 messages consumed")

    assert stop_all(first) == [0] * 6, [c.log() for c in first]
    assert producer.popen.poll() is None, "the producer should still be sending"
    processed = all_records(first)
    next_offsets: dict[int, int] = {}
    for _producer, _sequence, partition, offset in processed:
        next_offsets[partition] = max(offset + 1, next_offsets.get(partition, 0))
    committed = committed_offsets(app)
    assert {p: committed[p] for p in next_offsets} == next_offsets
    assert all(committed[p] < 0 for p in set(range(24)) - set(next_offsets))

    second = start_consumers(app, 6, prefix="second")
    wait_until(lambda: balanced(second), 90, "the restarted six to own 4 partitions each")
    assert producer.wait(120) == 0, producer.log()
    assert producer_final(producer)[1:] == (40000, 0, 0)
    wait_until(lambda: len(processed) + len(all_records(second)) >= 40000, 90, "all 40000 consumed")
    assert stop_all(second) == [0] * 6

    sequences = Counter(row[1] for row in processed + all_records(second))
    assert set(sequences) == set(range(40000)), "messages missing across the restart"
    reread = sum(count - 1 for count in sequences.values())
    assert reread == 0, f"{reread} messages processed again after the restart"
    assert verify(app)["ok"] is True


def test_installed_command_refuses_a_bad_config_file_with_exit_2(app, tmp_path):
    config = tmp_path / "consumer.toml"
    config.write_text('[consumer]\ngroup_protocol = "eager"\n', encoding="utf-8")
    command = Path(sys.executable).parent / "kafka-micro"
    result = subprocess.run(
        [str(command), "consume", "--config", str(config)],
        env=app.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "consumer.group_protocol = 'eager'" in result.stderr
    assert "'consumer' or 'classic'" in result.stderr
    assert "Traceback" not in result.stderr
