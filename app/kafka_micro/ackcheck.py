"""``verify --acked``: were the messages the producers' ledgers call acknowledged all found?

Per producer with a ledger and per partition, the messages found must be at least the
acknowledged count: an idempotent producer's messages enter a partition's log in order, so
what a partition holds of one producer run is a prefix of what it sent there, and a loss can
only shorten it. Gaps in a producer's sequence numbers that this check explains are messages
not yet acknowledged when it stopped (in flight in other partitions), not loss.

The check is a count: within a partition, a loss can hide behind as many unacknowledged
messages found after it (at most what was in flight during the ledger's last statistics
interval). A final ledger, written after a clean stop, leaves none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from kafka_micro.ackledger import LedgerFile


class FoundMessages(NamedTuple):
    """What verify read of one producer id."""

    partitions: Mapping[int, int]
    """Messages found per partition."""
    missing: int
    """Sequence numbers absent below the highest found."""


@dataclass
class PartitionLoss:
    """A partition holding fewer messages of a producer than its ledger says were acknowledged."""

    partition: int
    acknowledged: int
    found: int


@dataclass
class AckedProducerReport:
    """One producer's ledger held against the topic."""

    producer: str
    ledger: str
    final: bool
    updated: str
    acknowledged: int
    found: int
    lost: int
    """Acknowledged but absent."""
    unacknowledged_found: int
    """Found beyond the acknowledged count of their partition: acknowledged after the ledger
    was written, or never."""
    unacknowledged_absent: int
    """Sequence gaps that are not loss: messages never acknowledged (or failed)."""
    lost_partitions: list[PartitionLoss] = field(default_factory=list)


@dataclass
class AckedCheck:
    """Every ledger of the topic held against it."""

    producers: list[AckedProducerReport]
    unchecked: list[str]
    """Producer ids found in the topic without a ledger: their gaps cannot be judged."""

    @property
    def lost(self) -> int:
        return sum(producer.lost for producer in self.producers)

    def to_lines(self) -> list[str]:
        width = max([len("producer"), *(len(p.producer) for p in self.producers)])
        lines = [
            "",
            f"{'producer':<{width}} {'acked':>10} {'found':>10} {'lost':>8} "
            f"{'unacked found':>13} {'unacked absent':>14}  ledger",
        ]
        for p in self.producers:
            lines.append(
                f"{p.producer:<{width}} {p.acknowledged:>10} {p.found:>10} {p.lost:>8} "
                f"{p.unacknowledged_found:>13} {p.unacknowledged_absent:>14}  "
                f"{'final' if p.final else 'as of'} {p.updated}"
            )
        for p in self.producers:
            lines.append(_verdict(p))
        if self.unchecked:
            lines.append(
                f"no ledger, not checked for loss: {', '.join(self.unchecked)} "
                "(their gaps above may be unacknowledged messages or loss)"
            )
        lines.append(
            f"acknowledged: {len(self.producers)} producers with a ledger, "
            f"{sum(p.acknowledged for p in self.producers)} messages acknowledged, "
            f"{self.lost} lost"
        )
        return lines


def _verdict(report: AckedProducerReport) -> str:
    if report.lost:
        where = ", ".join(
            f"partition {loss.partition} ({loss.found} found of {loss.acknowledged} acknowledged)"
            for loss in report.lost_partitions
        )
        return f"{report.producer}: LOST {report.lost} acknowledged messages: {where}"
    if report.unacknowledged_absent:
        return (
            f"{report.producer}: no acknowledged message lost; its "
            f"{report.unacknowledged_absent} missing sequence numbers were never acknowledged "
            "(in flight or failed when it stopped), not loss"
        )
    return f"{report.producer}: no acknowledged message lost"


def check_acknowledged(
    ledgers: Sequence[LedgerFile], found: Mapping[str, FoundMessages]
) -> AckedCheck:
    """Hold each ledger against what was found of its producer; a producer absent from the
    topic has lost every message it had acknowledged."""
    reports = [_check_one(file, found.get(file.ledger.producer)) for file in ledgers]
    with_ledger = {file.ledger.producer for file in ledgers}
    return AckedCheck(
        producers=sorted(reports, key=lambda report: report.producer),
        unchecked=sorted(set(found) - with_ledger),
    )


def _check_one(file: LedgerFile, found: FoundMessages | None) -> AckedProducerReport:
    ledger = file.ledger
    in_topic = found.partitions if found is not None else {}
    acknowledged = {partition: acks.acknowledged for partition, acks in ledger.partitions.items()}
    losses = [
        PartitionLoss(partition, count, in_topic.get(partition, 0))
        for partition, count in sorted(acknowledged.items())
        if in_topic.get(partition, 0) < count
    ]
    lost = sum(loss.acknowledged - loss.found for loss in losses)
    missing = found.missing if found is not None else 0
    return AckedProducerReport(
        producer=ledger.producer,
        ledger=str(file.path),
        final=ledger.final,
        updated=ledger.updated.isoformat(),
        acknowledged=ledger.acknowledged,
        found=sum(in_topic.values()),
        lost=lost,
        unacknowledged_found=sum(
            max(0, count - acknowledged.get(partition, 0)) for partition, count in in_topic.items()
        ),
        # Lost messages are gaps too, unless they were the highest sequence numbers.
        unacknowledged_absent=max(0, missing - lost),
        lost_partitions=losses,
    )
