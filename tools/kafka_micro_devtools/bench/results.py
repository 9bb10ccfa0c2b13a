"""The benchmark's results, as written to its JSON file (``schema`` says which layout)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "kafka-micro-bench/1"
LATENCY_TARGET = "p99 end-to-end latency at every rate up to half the max"


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every number."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of already sorted values (exact, no interpolation)."""
    if not sorted_values:
        raise ValueError("no values to take a percentile of")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Throughput(_Result):
    """One measured transfer: how many messages, how long, and the load while it ran."""

    tool: str = Field(description="'kafka-micro' or the Kafka tool's name")
    messages: int
    message_bytes: int
    seconds: float
    msgs_per_s: float
    mb_per_s: float = Field(description="message value bytes per second / 10^6")
    load_average: tuple[float, float, float]
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(
        cls,
        tool: str,
        messages: int,
        message_bytes: int,
        seconds: float,
        *,
        load: tuple[float, float, float],
        detail: dict[str, Any] | None = None,
    ) -> Throughput:
        rate = messages / seconds if seconds > 0 else 0.0
        return cls(
            tool=tool,
            messages=messages,
            message_bytes=message_bytes,
            seconds=round(seconds, 4),
            msgs_per_s=round(rate, 1),
            mb_per_s=round(rate * message_bytes / 1e6, 3),
            load_average=load,
            detail=detail or {},
        )


class Comparison(_Result):
    """Ours against Kafka's own tool on the same broker, settings and message size."""

    label: str
    ours: list[Throughput]
    theirs: list[Throughput]
    ours_msgs_per_s: float = Field(description="median over the repeats")
    theirs_msgs_per_s: float | None = Field(description="median; None if the tool did not run")
    ratio: float | None = Field(description="ours / theirs, msgs/s")


@dataclass(frozen=True)
class RatePlan:
    """One latency measurement: ``rate`` msg/s (``fraction`` of the max, or a ``fixed_rate``)
    for ``warmup_s`` not counted, then ``duration_s`` counted, into ``partitions``."""

    rate: float
    fraction: float
    fixed_rate: bool
    duration_s: float
    warmup_s: float
    message_bytes: int
    partitions: int


class LatencyRun(_Result):
    """End-to-end latency (consumer receive time minus producer send time) at a fixed rate."""

    fraction_of_max: float
    fixed_rate: bool = Field(default=False, description="a rate in msg/s, not a fraction of max")
    target_rate: float
    achieved_rate: float = Field(description="messages measured / measured seconds")
    samples: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    load_average: tuple[float, float, float]

    @classmethod
    def of(
        cls, latencies_ns: list[int], plan: RatePlan, load: tuple[float, float, float]
    ) -> LatencyRun:
        """The percentiles of ``latencies_ns``, measured over ``plan.duration_s``."""
        latencies = sorted(latencies_ns)
        return cls(
            fraction_of_max=plan.fraction,
            fixed_rate=plan.fixed_rate,
            target_rate=round(plan.rate, 1),
            achieved_rate=round(len(latencies) / plan.duration_s, 1),
            samples=len(latencies),
            p50_ms=percentile(latencies, 0.50) / 1e6,
            p99_ms=percentile(latencies, 0.99) / 1e6,
            p999_ms=percentile(latencies, 0.999) / 1e6,
            max_ms=latencies[-1] / 1e6,
            load_average=load,
        )

    @property
    def label(self) -> str:
        return (
            f"{self.target_rate:,.0f} msg/s"
            if self.fixed_rate
            else f"{self.fraction_of_max:.0%} of max"
        )


class JavaLatency(_Result):
    """Kafka's EndToEndLatency tool: one message sent, read back by its consumer, then the next."""

    messages: int
    message_bytes: int
    avg_ms: float = Field(description="its rate is 1000 / avg_ms msg/s: one round trip each")
    p50_ms: float
    p99_ms: float
    p999_ms: float
    load_average: tuple[float, float, float]


class ConsumerRun(_Result):
    """Our consumer instances (separate processes, one group) draining a pre-filled topic."""

    instances: int
    throughput: Throughput
    peak_rss_mb: list[float] = Field(description="VmHWM of each instance")


class Target(_Result):
    """One of the performance targets, with the value this run measured."""

    name: str
    measured: float | None
    target: float
    unit: str
    met: bool | None = Field(description="None when the run could not measure it")


class ResultsHeader(_Result):
    """What each of the bench's JSON files starts with: the run, the machine, broker and profile.

    Each file's model names its own ``schema`` as the default.
    """

    schema_: str = Field(alias="schema")
    started_at: str
    finished_at: str = ""
    command: list[str]
    quick: bool
    machine: dict[str, Any]
    broker: dict[str, Any]
    profile: dict[str, Any]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


class BenchResults(ResultsHeader):
    schema_: str = Field(default=SCHEMA, alias="schema")
    java_settings: dict[str, Any]
    producer: list[Comparison] = Field(default_factory=list)
    latency: list[LatencyRun] = Field(default_factory=list)
    java_latency: JavaLatency | None = None
    java_latency_at_rates: list[LatencyRun] = Field(
        default_factory=list,
        description="kafka-producer-perf-test at our rates, a Java consumer timing each message",
    )
    consumer: list[ConsumerRun] = Field(default_factory=list)
    consumer_comparisons: list[Comparison] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] | None = None
    notes: list[str] = Field(default_factory=list)
