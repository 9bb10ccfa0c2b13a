"""``kafka-micro verify``: read the whole topic and account for every sequence number."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Final

from confluent_kafka import Message

from kafka_micro.message import MalformedMessageError, value_decoder
from kafka_micro.settings import Settings
from kafka_micro.snapshot import open_snapshot

log = logging.getLogger(__name__)

_SHOWN_RANGES: Final = 10
_NOT_ALL_SET = re.compile(rb"[^\xff]")


class _SequenceLedger:
    """One bit per sequence number of one producer: compact enough for many millions."""

    def __init__(self) -> None:
        self.bits = bytearray()
        self.count = 0
        self.duplicates = 0
        self.min_sequence = -1
        self.max_sequence = -1

    def add(self, sequence: int) -> None:
        index, bit = sequence >> 3, 1 << (sequence & 7)
        bits = self.bits
        if index >= len(bits):
            bits.extend(bytes(max(index + 1 - len(bits), len(bits))))
        self.count += 1
        if bits[index] & bit:
            self.duplicates += 1
            return
        bits[index] |= bit
        self.max_sequence = max(self.max_sequence, sequence)
        if self.min_sequence < 0 or sequence < self.min_sequence:
            self.min_sequence = sequence

    def missing_ranges(self, start: int) -> tuple[int, list[tuple[int, int]]]:
        """Count of absent sequences in [start, max] and the first few absent ranges."""
        end = self.max_sequence
        present = (int.from_bytes(self.bits, "little") >> start).bit_count()
        missing = end - start + 1 - present
        ranges: list[tuple[int, int]] = []
        if missing <= 0:
            return 0, ranges
        bits = self.bits
        for match in _NOT_ALL_SET.finditer(bits, start >> 3):
            base = match.start() << 3
            if base > end:
                break
            for sequence in range(max(base, start), min(base + 8, end + 1)):
                if bits[sequence >> 3] & (1 << (sequence & 7)):
                    continue
                if ranges and ranges[-1][1] == sequence - 1:
                    ranges[-1] = (ranges[-1][0], sequence)
                elif len(ranges) < _SHOWN_RANGES:
                    ranges.append((sequence, sequence))
                else:
                    return missing, ranges
        return missing, ranges


@dataclass
class ProducerReport:
    """What verify found for one producer id."""

    producer: str
    count: int
    min_sequence: int
    max_sequence: int
    missing: int
    missing_ranges: list[tuple[int, int]]
    duplicates: int


@dataclass
class VerifyReport:
    """What verify found in the topic."""

    topic: str
    partitions: int
    messages: int
    malformed: int
    truncated_partitions: list[int]
    producers: list[ProducerReport] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(producer.missing for producer in self.producers)

    @property
    def duplicates(self) -> int:
        return sum(producer.duplicates for producer in self.producers)

    def to_json(self) -> str:
        document = asdict(self)
        document["missing"] = self.missing
        document["duplicates"] = self.duplicates
        document["ok"] = self.missing == 0
        return json.dumps(document, indent=2)

    def to_table(self) -> str:
        width = max([len("producer"), *(len(p.producer) for p in self.producers)])
        lines = [
            f"{'producer':<{width}} {'count':>10} {'min_seq':>10} {'max_seq':>10} "
            f"{'missing':>8} {'dups':>6}  missing ranges"
        ]
        for p in self.producers:
            ranges = ", ".join(
                str(first) if first == last else f"{first}-{last}"
                for first, last in p.missing_ranges
            )
            if p.missing and sum(last - first + 1 for first, last in p.missing_ranges) < p.missing:
                ranges += ", ..."
            lines.append(
                f"{p.producer:<{width}} {p.count:>10} {p.min_sequence:>10} "
                f"{p.max_sequence:>10} {p.missing:>8} {p.duplicates:>6}  {ranges}"
            )
        lines.append(
            f"topic {self.topic}: {self.partitions} partitions, {self.messages} messages, "
            f"{len(self.producers)} producers, {self.missing} missing, "
            f"{self.duplicates} duplicates, {self.malformed} malformed"
        )
        if self.truncated_partitions:
            lines.append(
                f"note: partitions {self.truncated_partitions} no longer start at offset 0 "
                "(retention); sequences are counted from the lowest one read"
            )
        return "\n".join(lines)


def run_verify(settings: Settings, idle_timeout_s: float) -> VerifyReport:
    """Read every partition from its start to its end offset as of now."""
    with open_snapshot(settings, "verify", settings.topic) as snapshot:
        ledger = _Ledgers()
        for batch in snapshot.batches(idle_timeout_s):
            ledger.account(batch)
        return ledger.report(settings.topic, len(snapshot.partitions), snapshot.truncated)


class _Ledgers:
    """One sequence ledger per producer id, and the messages that are not kafka-micro's."""

    def __init__(self) -> None:
        self._decode = value_decoder()
        self._ledgers: dict[bytes, _SequenceLedger] = {}
        self._messages = 0
        self._malformed = 0

    def account(self, batch: list[Message]) -> None:
        ledgers = self._ledgers
        decode = self._decode
        self._messages += len(batch)
        for message in batch:
            try:
                producer_id, sequence, _sent = decode(message.value())
            except MalformedMessageError as error:
                self._malformed += 1
                log.warning(
                    "malformed message at partition %s offset %s: %s",
                    message.partition(),
                    message.offset(),
                    error,
                )
                continue
            ledger = ledgers.get(producer_id)
            if ledger is None:
                ledger = ledgers[producer_id] = _SequenceLedger()
            ledger.add(sequence)

    def report(self, topic: str, partitions: int, truncated: list[int]) -> VerifyReport:
        report = VerifyReport(topic, partitions, self._messages, self._malformed, truncated)
        for producer_id in sorted(self._ledgers):
            ledger = self._ledgers[producer_id]
            missing, ranges = ledger.missing_ranges(ledger.min_sequence if truncated else 0)
            report.producers.append(
                ProducerReport(
                    producer=producer_id.decode(),
                    count=ledger.count,
                    min_sequence=ledger.min_sequence,
                    max_sequence=ledger.max_sequence,
                    missing=missing,
                    missing_ranges=ranges,
                    duplicates=ledger.duplicates,
                )
            )
        return report
