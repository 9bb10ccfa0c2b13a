"""``kafka-micro verify``: read the whole topic and account for every sequence number.

With acknowledgement ledgers (``--acked``), also whether every message the producers had
acknowledged is there (``ackcheck``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Final

from confluent_kafka import Message

from kafka_micro.ackcheck import AckedCheck, FoundMessages, check_acknowledged
from kafka_micro.ackledger import LedgerFile
from kafka_micro.message import MalformedMessageError, value_decoder
from kafka_micro.settings import Settings
from kafka_micro.snapshot import open_snapshot

log = logging.getLogger(__name__)

_SHOWN_RANGES: Final = 10
_NOT_ALL_SET = re.compile(rb"[^\xff]")


class _SequenceLedger:
    """One bit per sequence number of one producer: compact enough for many millions.

    Also, per partition, the messages found and the highest sequence number so far: read in
    offset order, a lower one after it is out of order.
    """

    def __init__(self) -> None:
        self.bits = bytearray()
        self.count = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.min_sequence = -1
        self.max_sequence = -1
        self.partitions: dict[int, list[int]] = {}
        """Partition: [messages found, highest sequence number]."""

    def add(self, sequence: int, partition: int) -> None:
        seen = self.partitions.get(partition)
        if seen is None:
            self.partitions[partition] = [1, sequence]
        else:
            seen[0] += 1
            if sequence < seen[1]:
                self.out_of_order += 1
            else:
                seen[1] = sequence
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
    out_of_order: int = 0
    """Messages with a lower sequence number than one before them in their partition."""
    partitions: dict[int, int] = field(default_factory=dict)
    """Messages found per partition."""


@dataclass
class VerifyReport:
    """What verify found in the topic, and against the ledgers if given."""

    topic: str
    partitions: int
    messages: int
    malformed: int
    truncated_partitions: list[int]
    producers: list[ProducerReport] = field(default_factory=list)
    acked: AckedCheck | None = None

    @property
    def missing(self) -> int:
        return sum(producer.missing for producer in self.producers)

    @property
    def duplicates(self) -> int:
        return sum(producer.duplicates for producer in self.producers)

    @property
    def out_of_order(self) -> int:
        return sum(producer.out_of_order for producer in self.producers)

    @property
    def ok(self) -> bool:
        """Without ledgers: nothing missing. With them: no acknowledged message lost, none
        duplicated or out of order; gaps the ledgers explain are not loss."""
        if self.acked is None:
            return self.missing == 0
        return self.acked.lost == 0 and self.duplicates == 0 and self.out_of_order == 0

    def to_json(self) -> str:
        document = asdict(self)
        document["missing"] = self.missing
        document["duplicates"] = self.duplicates
        document["out_of_order"] = self.out_of_order
        if self.acked is not None:
            document["acked"]["lost"] = self.acked.lost
        document["ok"] = self.ok
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
            f"{self.duplicates} duplicates, {self.malformed} malformed, "
            f"{self.out_of_order} out of order"
        )
        if self.truncated_partitions:
            lines.append(
                f"note: partitions {self.truncated_partitions} no longer start at offset 0 "
                "(retention or deleted records); sequences are counted from the lowest one read"
            )
        if self.acked is not None:
            lines.extend(self.acked.to_lines())
            lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def run_verify(
    settings: Settings, idle_timeout_s: float, ledgers: Sequence[LedgerFile] | None = None
) -> VerifyReport:
    """Read every partition from its start to its end offset as of now; hold the ledgers, if
    given, against what was found."""
    with open_snapshot(settings, "verify", settings.topic) as snapshot:
        found = _Ledgers()
        for batch in snapshot.batches(idle_timeout_s):
            found.account(batch)
        report = found.report(settings.topic, len(snapshot.partitions), snapshot.truncated)
    if ledgers is not None:
        report.acked = check_acknowledged(
            ledgers,
            {
                producer.producer: FoundMessages(producer.partitions, producer.missing)
                for producer in report.producers
            },
        )
    return report


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
            # The snapshot yields no error events: every message has a partition.
            partition: int = message.partition()  # type: ignore[assignment]
            try:
                producer_id, sequence, _sent = decode(message.value())
            except MalformedMessageError as error:
                self._malformed += 1
                log.warning(
                    "malformed message at partition %s offset %s: %s",
                    partition,
                    message.offset(),
                    error,
                )
                continue
            ledger = ledgers.get(producer_id)
            if ledger is None:
                ledger = ledgers[producer_id] = _SequenceLedger()
            ledger.add(sequence, partition)

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
                    out_of_order=ledger.out_of_order,
                    partitions={
                        partition: seen[0] for partition, seen in sorted(ledger.partitions.items())
                    },
                )
            )
        return report
