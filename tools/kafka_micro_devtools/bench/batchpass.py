"""``kafka-micro-bench --batch-pass``: the consumer's Python work per message, with no broker.

The shipped batch processor (``kafka_micro.processing.StatsProcessor``) runs over batches of real
``confluent_kafka.Message`` objects, shaped as a draining consumer gets them: 100 messages of
100 bytes, runs of one partition, two producers' values in runs of ten. The figure is the
processor's CPU time per message (the thread's, so that other work on the machine counts
less), the best of ``rounds`` rounds. To compare two trees, run the same command with each
tree's ``app`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Message

from kafka_micro.message import value_packer
from kafka_micro.processing import ConsumeStats, StatsProcessor

BATCH_SIZE = 100
MESSAGE_BYTES = 100
PARTITIONS = 24
PARTITION_RUN = 34
PRODUCER_RUN = 10
_BATCHES = 100
_PASSES_PER_ROUND = 5
_MAX_VALUE_BYTES = 1_000_000


@dataclass(frozen=True)
class BatchPassResult:
    """CPU nanoseconds per message: the best round, and every round's."""

    best_ns: float
    rounds_ns: list[float]


class _NoDeadLetters:
    """The batches hold none; a dead letter would be a defect of the benchmark."""

    def write(self, letters: object) -> None:
        raise AssertionError(f"the benchmark's messages were dead-lettered: {letters}")


def _batches() -> list[list[Message]]:
    packers = [value_packer(f"bench-producer-{n}", MESSAGE_BYTES) for n in (1, 2)]
    batches = []
    offset = 0
    for batch_number in range(_BATCHES):
        batch = []
        for index in range(BATCH_SIZE):
            partition = (batch_number * 3 + index // PARTITION_RUN) % PARTITIONS
            pack = packers[(index // PRODUCER_RUN) % 2]
            value = pack(offset, time.time_ns())
            batch.append(Message(topic="bench", partition=partition, offset=offset, value=value))
            offset += 1
        batches.append(batch)
    return batches


def measure(rounds: int) -> BatchPassResult:
    """The processor over the batches, ``rounds`` times; CPU time per message."""
    batches = _batches()
    process = StatsProcessor(ConsumeStats(), _NoDeadLetters(), _MAX_VALUE_BYTES)
    messages = _PASSES_PER_ROUND * _BATCHES * BATCH_SIZE
    per_round = []
    for _ in range(rounds):
        started = time.thread_time_ns()
        for _ in range(_PASSES_PER_ROUND):
            for batch in batches:
                process(batch)
        per_round.append((time.thread_time_ns() - started) / messages)
    return BatchPassResult(best_ns=min(per_round), rounds_ns=per_round)


def to_text(result: BatchPassResult) -> str:
    rounds = ", ".join(f"{value:.0f}" for value in result.rounds_ns)
    return (
        f"consumer batch pass: {result.best_ns:.0f} ns of CPU per message (best of "
        f"{len(result.rounds_ns)} rounds: {rounds}); batches of {BATCH_SIZE} x "
        f"{MESSAGE_BYTES} B, partition runs of {PARTITION_RUN}, two producers in runs of "
        f"{PRODUCER_RUN}"
    )
