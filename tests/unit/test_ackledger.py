"""The producer's acknowledgement ledger: what it claims, its file, its directory."""

import json
import logging
import os
import time
from pathlib import Path

import pytest

from kafka_micro.ackledger import (
    LEDGER_SUFFIX,
    AckLedgerWriter,
    acknowledged_in,
    ledger_file_name,
    prune_ledgers,
    read_ledgers,
)
from kafka_micro.cli import main
from kafka_micro.clients import ClientErrors, client_config
from kafka_micro.metrics import ClientStatistics, ProducedPartition, parse_statistics
from kafka_micro.settings import ConfigError, load_settings, settings_from

DATA = Path(__file__).resolve().parent / "data"
TOPIC = "stats-fixture"


def report(made_at_us: int, **partitions: tuple[int, int]) -> ClientStatistics:
    """A statistics report of topic TOPIC: partition "pN" = (enqueued, acked_msgid)."""
    return ClientStatistics(
        produced={
            (TOPIC, int(name[1:])): ProducedPartition(*counts)
            for name, counts in partitions.items()
        },
        made_at_us=made_at_us,
    )


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def acknowledged(document: dict) -> dict[str, int]:
    return {p: acks["acknowledged"] for p, acks in document["partitions"].items()}


def test_before_the_end_acked_msgid_less_the_failures_is_a_lower_bound():
    progress = ProducedPartition(enqueued=120, acked_msgid=100)
    assert acknowledged_in(progress, 0, settled=False) == 100
    assert acknowledged_in(progress, 3, settled=False) == 97
    assert acknowledged_in(ProducedPartition(5, 2), 4, settled=False) == 0


def test_after_a_complete_flush_every_queued_message_not_failed_was_acknowledged():
    progress = ProducedPartition(enqueued=120, acked_msgid=118)
    # The last two failed: acked_msgid stops below them, the count does not.
    assert acknowledged_in(progress, 2, settled=True) == 118
    assert acknowledged_in(ProducedPartition(120, 120), 0, settled=True) == 120


def test_the_real_producer_report_gives_enqueued_and_acked_per_partition():
    statistics = parse_statistics((DATA / "librdkafka-stats-producer.json").read_text())
    raw = json.loads((DATA / "librdkafka-stats-producer.json").read_text())
    partitions = raw["topics"][TOPIC]["partitions"]
    assert statistics.produced == {
        (TOPIC, int(number)): ProducedPartition(p["msgs"], p["acked_msgid"])
        for number, p in partitions.items()
        if int(number) >= 0
    }
    assert statistics.made_at_us == raw["ts"]
    # In flight at the report: queued minus acknowledged, summed, is librdkafka's msg_cnt.
    in_flight = sum(p.enqueued - p.acked_msgid for p in statistics.produced.values())
    assert in_flight == raw["msg_cnt"] > 0


def test_a_consumer_report_has_no_produced_partitions():
    statistics = parse_statistics((DATA / "librdkafka-stats-consumer.json").read_text())
    assert statistics.produced == {}


def test_the_ledger_file_holds_each_partition_with_its_evidence(tmp_path):
    failed = {3: 2, -1: 5}
    writer = AckLedgerWriter(tmp_path, "host-1", TOPIC, failed)
    writer.open(keep=10)
    empty = read(writer.path)
    assert (empty["schema"], empty["producer"], empty["topic"]) == (
        "kafka-micro-acked-ledger/1",
        "host-1",
        TOPIC,
    )
    assert (empty["final"], empty["partitions"]) == (False, {"3": _partition(0, 0, 0, 2)})
    writer(report(1, p0=(10, 7), p3=(20, 20), p5=(0, 0)))
    document = read(writer.path)
    assert document["partitions"] == {
        "0": _partition(7, 10, 7, 0),
        "3": _partition(18, 20, 20, 2),
    }
    assert document["final"] is False
    assert writer.path.name == "host-1" + LEDGER_SUFFIX
    assert [path.name for path in tmp_path.iterdir()] == [writer.path.name]


def _partition(acknowledged_count, enqueued, acked_msgid, failed):
    return {
        "acknowledged": acknowledged_count,
        "enqueued": enqueued,
        "acked_msgid": acked_msgid,
        "failed": failed,
    }


def test_only_a_report_made_after_the_flush_makes_the_ledger_final(tmp_path):
    writer = AckLedgerWriter(tmp_path, "host-1", TOPIC, {0: 1})
    writer.open(keep=10)
    before_flush = time.monotonic_ns() // 1000
    reports = iter([report(before_flush, p0=(10, 8)), None, report(0, p0=(10, 9))])

    def poll(_timeout: float) -> None:
        # The first report was made before the flush ended, the last one after it.
        item = next(reports)
        if item is None:
            return
        if item.made_at_us == 0:
            item = report(time.monotonic_ns() // 1000, p0=(10, 9))
        writer(item)

    writer.finish(poll, wait_s=60)
    document = read(writer.path)
    assert document["final"] is True
    assert acknowledged(document) == {"0": 9}


def test_without_a_report_after_the_flush_the_ledger_stays_a_lower_bound(tmp_path, caplog):
    writer = AckLedgerWriter(tmp_path, "host-1", TOPIC, {})
    writer.open(keep=10)
    writer(report(1, p0=(10, 8)))
    polls = []
    writer.finish(polls.append, wait_s=0.3)
    assert polls
    assert read(writer.path)["final"] is False
    assert "stays a lower bound" in caplog.text


def test_a_write_that_fails_is_logged_once_and_tried_again(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    writer = AckLedgerWriter(tmp_path / "ledgers", "host-1", TOPIC, {})
    writer.open(keep=10)
    # The directory gone and a file in its place: every write fails, whoever runs the test.
    writer.path.parent.rename(tmp_path / "moved")
    writer.path.parent.write_text("")
    writer(report(1, p0=(10, 8)))
    writer(report(2, p0=(10, 9)))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    writer.path.parent.unlink()
    (tmp_path / "moved").rename(writer.path.parent)
    writer(report(3, p0=(10, 10)))
    assert acknowledged(read(writer.path)) == {"0": 10}
    assert "written again" in caplog.text


def test_a_directory_that_cannot_hold_ledgers_is_a_config_error_naming_the_setting(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(ConfigError, match=r"producer\.acked_ledger_dir = '.*/file': cannot write"):
        AckLedgerWriter(not_a_directory, "host-1", TOPIC, {}).open(keep=10)


def test_pruning_keeps_the_newest_ledgers_and_drops_the_temp_files_of_removed_ones(tmp_path):
    for age, name in enumerate(["a", "b", "c", "d", "e"]):
        path = tmp_path / (name + LEDGER_SUFFIX)
        path.write_text("{}")
        os.utime(path, ns=(1_000_000_000 * (10 - age),) * 2)
    (tmp_path / f".e{LEDGER_SUFFIX}.tmp").write_text("")
    os.utime(tmp_path / f".e{LEDGER_SUFFIX}.tmp", ns=(1, 1))
    (tmp_path / "notes.txt").write_text("not a ledger")
    own = tmp_path / ("own" + LEDGER_SUFFIX)
    removed = prune_ledgers(tmp_path, keep=3, own=own)
    assert sorted(path.name for path in removed) == sorted(
        [f".e{LEDGER_SUFFIX}.tmp", *(name + LEDGER_SUFFIX for name in "cde")]
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "a" + LEDGER_SUFFIX,
        "b" + LEDGER_SUFFIX,
        "notes.txt",
    ]


def test_opening_prunes_to_keep_with_its_own_ledger_counted(tmp_path):
    for age, name in enumerate(["old-3", "old-2", "old-1"]):
        path = tmp_path / (name + LEDGER_SUFFIX)
        path.write_text("{}")
        os.utime(path, ns=(1_000_000_000 * (10 - age),) * 2)
    AckLedgerWriter(tmp_path, "new", TOPIC, {}).open(keep=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "new" + LEDGER_SUFFIX,
        "old-3" + LEDGER_SUFFIX,
    ]


@pytest.mark.parametrize("producer_id", ["host-1234", "a.b_c-1", "x" * 200])
def test_a_plain_producer_id_is_its_own_file_name(producer_id):
    assert ledger_file_name(producer_id) == producer_id + LEDGER_SUFFIX


def test_any_other_producer_id_gets_a_safe_distinct_file_name():
    names = {ledger_file_name(pid) for pid in ["../etc/x", ".hidden", "a b", "a_b", "é", "x" * 201]}
    assert len(names) == 6
    for name in names - {ledger_file_name("a_b")}:
        assert "/" not in name
        assert not name.startswith(".")
        assert len(name.encode()) <= 255


def test_ledgers_are_read_from_directories_and_files_for_the_topic_only(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    for producer, topic in [("p1", TOPIC), ("p2", TOPIC), ("p3", "other")]:
        AckLedgerWriter(tmp_path / "dir", producer, topic, {}).open(keep=10)
    AckLedgerWriter(tmp_path / "single", "p4", TOPIC, {}).open(keep=10)
    files = read_ledgers(
        [tmp_path / "dir", tmp_path / "single" / ("p4" + LEDGER_SUFFIX), tmp_path / "dir"], TOPIC
    )
    assert sorted(file.ledger.producer for file in files) == ["p1", "p2", "p4"]
    assert "ignoring 1 ledgers of topics other than" in caplog.text


def test_a_file_that_is_not_a_ledger_is_refused_by_name(tmp_path):
    bad = tmp_path / ("bad" + LEDGER_SUFFIX)
    bad.write_text('{"schema": "kafka-micro-acked-ledger/1", "producer": "p"}')
    with pytest.raises(ConfigError, match=r"'.*bad\.acked\.json' is not a kafka-micro ackn"):
        read_ledgers([tmp_path], TOPIC)
    bad.write_text("not json")
    with pytest.raises(ConfigError, match="is not a kafka-micro acknowledgement ledger"):
        read_ledgers([bad], TOPIC)


def test_no_ledger_of_the_topic_or_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no acknowledgement ledger of topic"):
        read_ledgers([tmp_path], TOPIC)
    with pytest.raises(ConfigError, match="does not exist"):
        read_ledgers([tmp_path / "missing"], TOPIC)


def test_two_ledgers_of_one_producer_are_refused(tmp_path):
    for directory in ["a", "b"]:
        AckLedgerWriter(tmp_path / directory, "p1", TOPIC, {}).open(keep=10)
    with pytest.raises(ConfigError, match="two ledgers of producer 'p1'"):
        read_ledgers([tmp_path / "a", tmp_path / "b"], TOPIC)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"acked_ledger_dir": ""}, "producer.acked_ledger_dir = '' (command-line option): an"),
        ({"acked_ledger_dir": "a\0b"}, "cannot hold a NUL character"),
        ({"acked_ledger_keep": 0}, "producer.acked_ledger_keep = 0"),
        ({"acked_ledger_keep": "many"}, "producer.acked_ledger_keep = 'many'"),
    ],
)
def test_bad_ledger_settings_are_refused_by_name(values, expected):
    with pytest.raises(ConfigError) as error:
        load_settings(overrides={"producer": values})
    assert expected in str(error.value)


def test_the_ledger_is_off_unless_a_directory_is_set():
    assert settings_from({}).producer.acked_ledger_dir is None


def test_a_producer_with_a_ledger_has_statistics_reported_even_with_metrics_off():
    def statistics_of(kind, **values):
        built = client_config(settings_from(values), kind, ClientErrors(kind), on_statistics=print)
        return built.get("statistics.interval.ms")

    off = {"metrics": {"enabled": False, "statistics_interval_ms": 700}}
    ledger = {"producer": {"acked_ledger_dir": "ledgers"}}
    assert statistics_of("producer", **off, **ledger) == 700
    assert statistics_of("producer", **off) is None
    assert statistics_of("consumer", **off, **ledger) is None
    assert statistics_of("consumer", metrics={"statistics_interval_ms": 700}) == 700


def test_produce_with_a_ledger_directory_it_cannot_use_exits_2_before_connecting(
    tmp_path, monkeypatch, capsys
):
    taken = tmp_path / "a-file"
    taken.write_text("")
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__ACKED_LEDGER_DIR", str(taken))
    monkeypatch.setenv("KAFKA_MICRO_METRICS__ENABLED", "false")
    # No broker listens there: the ledger is refused before any connection is tried.
    assert main(["produce", "--count", "1", "--bootstrap-servers", "127.0.0.1:9"]) == 2
    assert f"producer.acked_ledger_dir = '{taken}': cannot write a ledger there" in (
        capsys.readouterr().err
    )
