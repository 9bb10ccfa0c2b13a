"""verify --acked: deciding loss from the ledgers and what the topic holds."""

import json
from datetime import UTC, datetime
from pathlib import Path

from kafka_micro.ackcheck import FoundMessages, PartitionLoss, check_acknowledged
from kafka_micro.ackledger import LEDGER_SUFFIX, AckLedger, LedgerFile, PartitionAcks
from kafka_micro.cli import main
from kafka_micro.verify import ProducerReport, VerifyReport


def ledger(producer: str, acknowledged: dict[int, int]) -> LedgerFile:
    partitions = {
        partition: PartitionAcks(
            acknowledged=count, enqueued=count + 5, acked_msgid=count, failed=0
        )
        for partition, count in acknowledged.items()
    }
    content = AckLedger(
        producer=producer,
        topic="t",
        final=False,
        updated=datetime(2026, 11, 30, tzinfo=UTC),
        partitions=partitions,
    )
    return LedgerFile(Path(f"/ledgers/{producer}.acked.json"), content)


def test_every_partition_holding_its_acknowledged_count_is_no_loss_and_gaps_are_unacknowledged():
    check = check_acknowledged(
        [ledger("p1", {0: 100, 1: 50})],
        {"p1": FoundMessages({0: 104, 1: 50, 2: 3}, missing=12)},
    )
    (report,) = check.producers
    assert (report.acknowledged, report.found, report.lost) == (150, 157, 0)
    # Found beyond the ledger: 4 in partition 0 and 3 in a partition it had not reached.
    assert report.unacknowledged_found == 7
    assert report.unacknowledged_absent == 12
    assert check.lost == 0
    text = "\n".join(check.to_lines())
    assert "p1: no acknowledged message lost; its 12 missing sequence numbers were never" in text


def test_a_partition_short_of_its_acknowledged_count_lost_the_difference():
    check = check_acknowledged(
        [ledger("p1", {0: 100, 1: 50, 2: 10})],
        {"p1": FoundMessages({0: 100, 1: 20, 2: 40}, missing=30)},
    )
    (report,) = check.producers
    assert report.lost == 30
    assert report.lost_partitions == [PartitionLoss(1, acknowledged=50, found=20)]
    # Surplus in partition 2 does not make up for partition 1: each partition is its own log.
    assert report.unacknowledged_found == 30
    assert report.unacknowledged_absent == 0
    assert "p1: LOST 30 acknowledged messages: partition 1 (20 found of 50 acknowledged)" in (
        "\n".join(check.to_lines())
    )


def test_a_producer_with_a_ledger_and_nothing_in_the_topic_lost_all_it_had_acknowledged():
    check = check_acknowledged([ledger("gone", {3: 7, 4: 0})], {"other": FoundMessages({0: 1}, 0)})
    (report,) = check.producers
    assert (report.found, report.lost) == (0, 7)
    assert report.lost_partitions == [PartitionLoss(3, 7, 0)]
    assert check.unchecked == ["other"]
    assert "no ledger, not checked for loss: other" in "\n".join(check.to_lines())


def test_a_ledger_with_nothing_acknowledged_cannot_lose_anything():
    check = check_acknowledged([ledger("early", {})], {})
    assert check.lost == 0
    assert check.producers[0].acknowledged == 0


def verify_report(duplicates=0, out_of_order=0, missing=5) -> VerifyReport:
    report = VerifyReport("t", 24, 100, 0, [])
    report.producers.append(
        ProducerReport(
            "p1", 100, 0, 104, missing, [(50, 54)], duplicates, out_of_order, partitions={0: 100}
        )
    )
    return report


def test_with_ledgers_gaps_pass_but_loss_duplicates_and_disorder_fail():
    without = verify_report()
    assert not without.ok
    passing = verify_report()
    passing.acked = check_acknowledged([ledger("p1", {0: 90})], {"p1": FoundMessages({0: 100}, 5)})
    assert passing.ok
    assert passing.to_table().endswith("OK")
    document = json.loads(passing.to_json())
    assert document["ok"] is True
    assert document["acked"]["lost"] == 0
    assert document["acked"]["producers"][0]["unacknowledged_absent"] == 5
    assert document["producers"][0]["partitions"] == {"0": 100}
    for failing in (verify_report(duplicates=1), verify_report(out_of_order=1)):
        failing.acked = passing.acked
        assert not failing.ok
    lost = verify_report()
    lost.acked = check_acknowledged([ledger("p1", {0: 101})], {"p1": FoundMessages({0: 100}, 5)})
    assert not lost.ok
    assert lost.to_table().endswith("FAILED")


def test_verify_with_a_bad_ledger_exits_2_before_reading_the_topic(tmp_path, capsys):
    bad = tmp_path / ("p" + LEDGER_SUFFIX)
    bad.write_text("{}")
    assert main(["verify", "--bootstrap-servers", "127.0.0.1:9", "--acked", str(tmp_path)]) == 2
    assert "is not a kafka-micro acknowledgement ledger" in capsys.readouterr().err
