"""verify --acked against a real broker: after a SIGKILL nothing acknowledged is missing and the
unacknowledged tail is told apart; acknowledged records deleted from a partition are reported
lost; a clean stop leaves an exact ledger."""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from apprunner import wait_until
from confluent_kafka import Consumer, TopicPartition

from kafka_micro.ackledger import LEDGER_SUFFIX

pytestmark = pytest.mark.integration

_FINAL = re.compile(r"final: produced (\d+), delivered (\d+), failed 0, unflushed 0")


def ledger_in(directory: Path, producer: str) -> dict:
    return json.loads((directory / (producer + LEDGER_SUFFIX)).read_text())


def acknowledged(document: dict) -> int:
    return sum(partition["acknowledged"] for partition in document["partitions"].values())


def acknowledged_at_least(directory: Path, producer: str, count: int) -> bool:
    path = directory / (producer + LEDGER_SUFFIX)
    return path.exists() and acknowledged(json.loads(path.read_text())) >= count


def produce_and_kill(app, ledgers: Path, producer_id: str) -> int:
    """Produce until the ledger counts some acknowledged messages, then SIGKILL; returns that
    count, which the ledger only ever raises."""
    producer = app.start(
        "producer",
        "produce",
        "--rate",
        "20000",
        "--message-size",
        "100",
        "--producer-id",
        producer_id,
        producer__acked_ledger_dir=str(ledgers),
        metrics__statistics_interval_ms="200",
    )
    wait_until(
        lambda: acknowledged_at_least(ledgers, producer_id, 10_000),
        90,
        f"the ledger to count 10000 acknowledged messages:\n{producer.log()}",
    )
    seen = acknowledged(ledger_in(ledgers, producer_id))
    assert producer.stop(signal.SIGKILL) == -signal.SIGKILL
    return seen


def verify_acked(app, ledgers: Path) -> tuple[int, dict]:
    result = app.run("verify", "--json", "--acked", str(ledgers))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_after_a_sigkill_every_acknowledged_message_is_found_and_the_tail_is_not_loss(
    app, tmp_path
):
    app.create_topic(partitions=24)
    ledgers = tmp_path / "ledgers"
    seen = produce_and_kill(app, ledgers, "killed")
    document = ledger_in(ledgers, "killed")
    assert document["final"] is False

    code, report = verify_acked(app, ledgers)
    assert code == 0, report
    (checked,) = report["acked"]["producers"]
    assert checked["lost"] == 0
    assert checked["acknowledged"] == acknowledged(document) >= seen
    # Acknowledged after the ledger's last report, or never: found, but not claimed.
    assert checked["unacknowledged_found"] > 0
    assert checked["found"] == checked["acknowledged"] + checked["unacknowledged_found"]
    assert (report["duplicates"], report["out_of_order"]) == (0, 0)

    table = app.run("verify", "--acked", str(ledgers))
    assert table.returncode == 0, table.stderr
    assert "killed: no acknowledged message lost" in table.stdout
    assert table.stdout.rstrip().endswith("OK")


def test_acknowledged_records_deleted_from_a_partition_are_reported_lost(app, tmp_path, kafka_home):
    app.create_topic(partitions=24)
    ledgers = tmp_path / "ledgers"
    produce_and_kill(app, ledgers, "robbed")
    partitions = ledger_in(ledgers, "robbed")["partitions"]
    victim = max(partitions, key=lambda p: partitions[p]["acknowledged"])
    acknowledged_there = partitions[victim]["acknowledged"]
    assert acknowledged_there > 0

    consumer = Consumer({"bootstrap.servers": app.bootstrap, "group.id": "watermarks"})
    try:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(app.topic, int(victim)), timeout=30
        )
    finally:
        consumer.close()
    offsets = tmp_path / "delete.json"
    everything = {"topic": app.topic, "partition": int(victim), "offset": high}
    offsets.write_text(json.dumps({"version": 1, "partitions": [everything]}))
    deleted = subprocess.run(
        [
            str(kafka_home / "bin" / "kafka-delete-records"),
            "--bootstrap-server",
            app.bootstrap,
            "--offset-json-file",
            str(offsets),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr

    code, report = verify_acked(app, ledgers)
    assert code == 1
    (checked,) = report["acked"]["producers"]
    assert checked["lost"] == acknowledged_there
    assert checked["lost_partitions"] == [
        {"partition": int(victim), "acknowledged": acknowledged_there, "found": 0}
    ]
    assert report["ok"] is False

    table = app.run("verify", "--acked", str(ledgers))
    assert table.returncode == 1
    assert (
        f"robbed: LOST {acknowledged_there} acknowledged messages: partition {victim} "
        f"(0 found of {acknowledged_there} acknowledged)"
    ) in table.stdout
    assert table.stdout.rstrip().endswith("FAILED")


def test_a_clean_stop_leaves_an_exact_ledger_even_with_metrics_off_and_prunes_old_ones(
    app, tmp_path
):
    app.create_topic(partitions=24)
    ledgers = tmp_path / "ledgers"
    ledgers.mkdir()
    for n in range(4):
        old = ledgers / f"old-{n}{LEDGER_SUFFIX}"
        old.write_text(
            json.dumps(
                {
                    "schema": "kafka-micro-acked-ledger/1",
                    "producer": f"old-{n}",
                    "topic": "an-older-topic",
                    "final": True,
                    "updated": "2026-11-30T00:00:00+00:00",
                    "partitions": {},
                }
            )
        )
        os.utime(old, ns=(n * 1_000_000_000,) * 2)
    producer = app.start(
        "producer",
        "produce",
        "--rate",
        "5000",
        "--message-size",
        "100",
        "--producer-id",
        "stopped",
        producer__acked_ledger_dir=str(ledgers),
        producer__acked_ledger_keep="3",
        metrics__enabled="false",
        metrics__statistics_interval_ms="500",
    )
    wait_until(
        lambda: acknowledged_at_least(ledgers, "stopped", 1000),
        90,
        f"the ledger to count 1000 acknowledged messages:\n{producer.log()}",
    )
    assert producer.stop() == 0
    produced, delivered = map(int, _FINAL.findall(producer.log())[-1])
    document = ledger_in(ledgers, "stopped")
    assert document["final"] is True
    assert acknowledged(document) == delivered == produced
    assert sorted(path.name for path in ledgers.iterdir()) == [
        f"old-2{LEDGER_SUFFIX}",
        f"old-3{LEDGER_SUFFIX}",
        f"stopped{LEDGER_SUFFIX}",
    ]

    code, report = verify_acked(app, ledgers)
    assert code == 0, report
    (checked,) = report["acked"]["producers"]
    # Exact: everything found was acknowledged and nothing is missing.
    assert checked["found"] == checked["acknowledged"] == delivered
    assert (checked["unacknowledged_found"], checked["unacknowledged_absent"]) == (0, 0)
