"""Tuning sweeps: one setting varied at a time from the baseline profile, everything else equal."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kafka_micro_devtools.bench import runner
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import BenchResults, load_average

_HALF = (0.5,)

SweepValue = bool | int | str | None
"""A swept setting's value; None means the setting is left at its default."""

Side = Literal["producer", "consumer"]
Change = Callable[[BenchProfile, SweepValue], BenchProfile]
"""How a sweep derives the profile for one value from the baseline."""


@dataclass(frozen=True)
class Sweep:
    """A setting, its values, and which phases show its effect."""

    setting: str
    values: tuple[SweepValue, ...]
    change: Change
    measure: Callable[[BenchContext, runner.BenchPlan, BenchProfile, BenchResults, float], None]


def _setting(side: Side, field: str) -> Change:
    def change(profile: BenchProfile, value: SweepValue) -> BenchProfile:
        return profile.with_changes(f"{side}.{field}={value}", **{side: {field: value}})

    return change


def _librdkafka(side: Side, name: str) -> Change:
    def change(profile: BenchProfile, value: SweepValue) -> BenchProfile:
        if value is None:
            return profile.with_changes(f"{side}.librdkafka.{name} default")
        return profile.with_changes(
            f"{side}.librdkafka.{name}={value}", **{side: {"librdkafka": {name: value}}}
        )

    return change


def _producer_and_latency(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    baseline_rate: float,
) -> None:
    runner.producer_phase(ctx, plan, profile, results, sizes=(plan.message_bytes,))
    runner.latency_phase(
        ctx, plan, profile, results, max_rate=baseline_rate, fractions=_HALF, rates=()
    )


def _latency_low_and_half(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    baseline_rate: float,
) -> None:
    runner.latency_phase(
        ctx, plan, profile, results, max_rate=baseline_rate, fractions=(0.1, 0.5), rates=()
    )


def _producer_both_sizes(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    _baseline_rate: float,
) -> None:
    runner.producer_phase(ctx, plan, profile, results)


def _producer_ours_only(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    _baseline_rate: float,
) -> None:
    runner.producer_phase(
        ctx, plan, profile, results, sizes=(plan.message_bytes,), with_kafka_tool=False
    )


def _consumers(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    _baseline_rate: float,
) -> None:
    runner.consumer_phase(ctx, plan, profile, results)


def _consumers_and_latency(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    baseline_rate: float,
) -> None:
    runner.consumer_phase(ctx, plan, profile, results, with_kafka_tool=False)
    runner.latency_phase(
        ctx, plan, profile, results, max_rate=baseline_rate, fractions=_HALF, rates=()
    )


def _consumers_and_latency_at_low_rates(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    baseline_rate: float,
) -> None:
    runner.consumer_phase(ctx, plan, profile, results, with_kafka_tool=False)
    runner.latency_phase(
        ctx, plan, profile, results, max_rate=baseline_rate, fractions=_HALF, rates=(1_000, 10_000)
    )


def _consumers_ours_only(
    ctx: BenchContext,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    _baseline_rate: float,
) -> None:
    runner.consumer_phase(ctx, plan, profile, results, with_kafka_tool=False)


SWEEPS: dict[str, Sweep] = {
    "linger": Sweep(
        "producer.linger_ms", (5, 20, 50), _setting("producer", "linger_ms"), _producer_and_latency
    ),
    "batch": Sweep(
        "producer.batch_size",
        (32768, 1_000_000),
        _setting("producer", "batch_size"),
        _producer_both_sizes,
    ),
    "compression": Sweep(
        "producer.compression",
        ("none", "snappy", "lz4", "zstd"),
        _setting("producer", "compression"),
        _producer_both_sizes,
    ),
    "poll": Sweep(
        "producer.poll_every",
        (1, 100, 1000),
        _setting("producer", "poll_every"),
        _producer_ours_only,
    ),
    "batch-wait": Sweep(
        "consumer.batch_wait_ms",
        (100, 10, 2),
        _setting("consumer", "batch_wait_ms"),
        _consumers_and_latency_at_low_rates,
    ),
    "consumer-batch": Sweep(
        "consumer.batch_size", (100, 500, 1000), _setting("consumer", "batch_size"), _consumers
    ),
    "fetch-min-bytes": Sweep(
        "consumer.fetch_min_bytes",
        (1, 16384, 262144),
        _setting("consumer", "fetch_min_bytes"),
        _consumers_and_latency,
    ),
    "protocol": Sweep(
        "consumer.group_protocol",
        ("consumer", "classic"),
        _setting("consumer", "group_protocol"),
        _consumers,
    ),
    "prefetch-messages": Sweep(
        "consumer.librdkafka.queued.min.messages",
        (None, 10000, 2000, 500),
        _librdkafka("consumer", "queued.min.messages"),
        _consumers_ours_only,
    ),
    "prefetch-kbytes": Sweep(
        "consumer.queued_max_messages_kbytes",
        (65536, 4096, 1024),
        _setting("consumer", "queued_max_messages_kbytes"),
        _consumers_ours_only,
    ),
    "fetch-max-bytes": Sweep(
        "consumer.fetch_max_bytes",
        (1_048_576, 524_288, 262_144, 131_072),
        _setting("consumer", "fetch_max_bytes"),
        _consumers_ours_only,
    ),
    "fetch-backoff": Sweep(
        "consumer.fetch_queue_backoff_ms",
        (1000, 100, 10),
        _setting("consumer", "fetch_queue_backoff_ms"),
        _consumers_ours_only,
    ),
    "fetch-partition-bytes": Sweep(
        "consumer.librdkafka.fetch.message.max.bytes",
        (None, 262144, 65536),
        _librdkafka("consumer", "fetch.message.max.bytes"),
        _consumers_ours_only,
    ),
    "fetch-min-bytes-latency": Sweep(
        "consumer.fetch_min_bytes",
        (1, 16384),
        _setting("consumer", "fetch_min_bytes"),
        _latency_low_and_half,
    ),
    "delivery-reports": Sweep(
        "producer.librdkafka.delivery.report.only.error",
        (False, None),
        _librdkafka("producer", "delivery.report.only.error"),
        _producer_ours_only,
    ),
}


class SweepPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep: str
    setting: str
    value: SweepValue
    results: BenchResults


def run_sweep(
    ctx: BenchContext,
    name: str,
    *,
    plan: runner.BenchPlan,
    baseline: BenchProfile,
    baseline_rate: float,
    new_results: Callable[[BenchProfile], BenchResults],
) -> list[SweepPoint]:
    """Every value of one sweep; ``baseline_rate`` is the fixed rate of its latency runs.

    ``plan.repeats`` rounds each measure every value once, in turn, so that a change in the
    machine's load shows in every value's results rather than in one value's.
    """
    sweep = SWEEPS[name]
    once = dataclasses.replace(plan, repeats=1)
    profiles = [sweep.change(baseline, value) for value in sweep.values]
    points = [
        SweepPoint(sweep=name, setting=sweep.setting, value=value, results=new_results(profile))
        for value, profile in zip(sweep.values, profiles, strict=True)
    ]
    for round_number in range(1, plan.repeats + 1):
        for point, profile in zip(points, profiles, strict=True):
            ctx.progress(
                "sweep %s round %d: %s = %s", name, round_number, sweep.setting, point.value
            )
            sweep.measure(ctx, once, profile, point.results, baseline_rate)
            point.results.load_average_end = load_average()
    return points


def to_table(points: list[SweepPoint]) -> str:
    """One line per sweep value: the medians each phase measured."""
    lines = []
    for point in points:
        results = point.results
        cells = [f"{point.sweep} {point.setting}={point.value}"]
        cells += [
            f"{c.label} {c.ours_msgs_per_s:,.0f}/s"
            + (f" (x{c.ratio:.2f} of tool)" if c.ratio is not None else "")
            for c in [*results.producer, *results.consumer_comparisons]
        ]
        cells += [
            f"e2e@{run.target_rate:,.0f}/s p50 {run.p50_ms:.1f} p99 {run.p99_ms:.1f} "
            f"p99.9 {run.p999_ms:.1f} ms"
            for run in results.latency
        ]
        peaks: dict[int, float] = {}
        for run in results.consumer:
            peaks[run.instances] = max(peaks.get(run.instances, 0.0), *run.peak_rss_mb)
        cells += [f"peak RSS x{n} {peak:.0f} MB" for n, peak in sorted(peaks.items())]
        cells.append(f"load {results.load_average_start[0]:.1f}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)
