from kafka_micro.verify import ProducerReport, VerifyReport, _SequenceLedger


def test_complete_sequence_has_nothing_missing():
    ledger = _SequenceLedger()
    for sequence in reversed(range(1000)):
        ledger.add(sequence)
    assert ledger.missing_ranges(0) == (0, [])
    assert (ledger.min_sequence, ledger.max_sequence, ledger.duplicates) == (0, 999, 0)


def test_gaps_and_duplicates_are_reported():
    ledger = _SequenceLedger()
    for sequence in [*range(3, 10), 12, 15, 15, 16]:
        ledger.add(sequence)
    missing, ranges = ledger.missing_ranges(0)
    assert missing == 7
    assert ranges == [(0, 2), (10, 11), (13, 14)]
    assert ledger.duplicates == 1
    assert ledger.count == 11


def test_missing_ranges_are_truncated_but_counted():
    ledger = _SequenceLedger()
    for sequence in range(0, 100, 2):
        ledger.add(sequence)
    missing, ranges = ledger.missing_ranges(0)
    assert missing == 49
    assert len(ranges) == 10


def test_table_and_json_show_missing():
    report = VerifyReport("t", 24, 5, 0, [])
    report.producers.append(ProducerReport("p1", 5, 0, 6, 2, [(2, 3)], 0))
    assert "2-3" in report.to_table()
    assert '"ok": false' in report.to_json()
