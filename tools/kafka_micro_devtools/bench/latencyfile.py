"""The file in which a latency probe hands its measurements to the bench.

Layout: signed 64-bit native integers, ``[batch count, (received ns, kept) per batch...,
sent ns per kept message...]``. Its own module, so that the bench reads it without importing
the probe (which runs as ``python -m kafka_micro_devtools.bench.probe``).
"""

from __future__ import annotations

from array import array
from pathlib import Path


def write_latency_file(path: Path, batches: array[int], sent_ns: array[int]) -> None:
    """Write ``batches`` (received ns, kept, ...) and the send times of the kept messages."""
    with path.open("wb") as handle:
        array("q", [len(batches) // 2]).tofile(handle)
        batches.tofile(handle)
        sent_ns.tofile(handle)


def latency_ns_from_file(path: Path, started_ns: int, warmup_ns: int) -> list[int]:
    """End-to-end latencies (receive minus send, ns) of the messages sent once warmed up.

    The warm-up runs from the later of ``started_ns`` and the first message's arrival: until
    then the producer is still connecting (TLS and SASL handshakes with every leader's broker)
    while it stamps messages on schedule, which a Java producer does not do (its first send
    blocks). Counting from the arrival measures both at a rate, not their start-up.
    """
    data = array("q")
    data.frombytes(path.read_bytes())
    batch_count = data[0]
    batches = data[1 : 1 + 2 * batch_count]
    sent = data[1 + 2 * batch_count :]
    if not batches:
        return []
    sent_from_ns = max(started_ns, batches[0]) + warmup_ns
    latencies: list[int] = []
    start = 0
    for index in range(0, len(batches), 2):
        received_ns, kept = batches[index], batches[index + 1]
        latencies.extend(
            received_ns - sent_ns
            for sent_ns in sent[start : start + kept]
            if sent_ns >= sent_from_ns
        )
        start += kept
    return latencies
