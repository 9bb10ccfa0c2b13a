from kafka_micro.verify import ProducerReport, VerifyReport, _SequenceLedger


def test_complete_sequence_has_nothing_missing():
    ledger = _SequenceLedger()
    for sequence in reversed(range(1000)):
        ledger.add(sequence, 0)
    assert ledger.missing_ranges(0) == (0, [])
    assert (ledger.min_sequence, ledger.max_sequence, ledger.duplicates) == (0, 999, 0)


def test_gaps_and_duplicates_are_reported():
    ledger = _SequenceLedger()
    for sequence in [*range(3, 10), 12, 15, 15, 16]:
        ledger.add(sequence, 0)
    missing, ranges = ledger.missing_ranges(0)
    assert missing == 7
    assert ranges == [(0, 2), (10, 11), (13, 14)]
    assert ledger.duplicates == 1
    assert ledger.count == 11


def test_missing_ranges_are_truncated_but_counted():
    ledger = _SequenceLedger()
    for sequence in range(0, 100, 2):
        ledger.add(sequence, 0)
    missing, ranges = ledger.missing_ranges(0)
    assert missing == 49
    assert len(ranges) == 10


def test_table_and_json_show_missing():
    report = VerifyReport("t", 24, 5, 0, [])
    report.producers.append(ProducerReport("p1", 5, 0, 6, 2, [(2, 3)], 0))
    assert "2-3" in report.to_table()
    assert '"ok": false' in report.to_json()


def test_messages_are_counted_per_partition_and_a_lower_sequence_after_a_higher_is_out_of_order():
    ledger = _SequenceLedger()
    for sequence, partition in [(0, 0), (1, 1), (2, 0), (4, 1), (3, 1), (5, 0), (3, 1)]:
        ledger.add(sequence, partition)
    assert {partition: seen[0] for partition, seen in ledger.partitions.items()} == {0: 3, 1: 4}
    # 3 after 4 in partition 1, twice (the second one a duplicate as well).
    assert ledger.out_of_order == 2
    assert ledger.duplicates == 1


def test_out_of_order_messages_fail_only_a_check_against_ledgers():
    report = VerifyReport("t", 24, 5, 0, [])
    report.producers.append(ProducerReport("p1", 5, 0, 4, 0, [], 0, out_of_order=1))
    assert report.ok
    assert "1 out of order" in report.to_table()
