"""The benchmark's phases: producer throughput, end-to-end latency, consumer throughput."""

from __future__ import annotations

import functools
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from kafka_micro_devtools.bench import kafka_tools, ours
from kafka_micro_devtools.bench.context import BenchContext, BenchError
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import (
    LATENCY_TARGET,
    BenchResults,
    Comparison,
    ConsumerRun,
    LatencyRun,
    RatePlan,
    Target,
    Throughput,
)

log = logging.getLogger(__name__)

# The performance targets the bench reports on (docs/performance.md).
RATIO_TARGET = 0.8
FASTEST_TOOL_RATIO_TARGET = 1.0
LATENCY_TARGET_MS = 50.0
RSS_TARGET_MB = 60.0
_TARGET_INSTANCES = 6
_HALF_RATE = 0.5
# A fixed rate close to the producer's max measures the max again, not latency.
_HIGHEST_FIXED_FRACTION = 0.9
_RATE_TOLERANCE = 1e-9
# Kafka's consumer tool in the configurations that made it fastest in the sweeps (the classic
# protocol: 2.6M msg/s against 1.0M with KIP-848, docs/performance.md); with the run at our
# settings, the best median of these is the tool "at its fastest".
_FASTEST_TOOL_CANDIDATES: dict[str, dict[str, str]] = {
    "classic": {"group.protocol": "classic"},
    "classic, max.poll.records 500": {"group.protocol": "classic", "max.poll.records": "500"},
}
_SAME_SETTINGS = "our settings"
_FASTEST_LABEL = f"consumer x{_TARGET_INSTANCES}, fastest"


@dataclass(frozen=True)
class BenchPlan:
    """How much to send in each phase."""

    producer_messages: tuple[tuple[int, int], ...]
    """(message bytes, messages) per producer comparison."""
    latency_fractions: tuple[float, ...]
    """Rates as fractions of the producer's max."""
    latency_rates: tuple[float, ...]
    """Fixed rates in msg/s, measured where below 90 % of the producer's max."""
    latency_seconds: float
    latency_warmup_s: float
    java_latency_messages: int
    """Round trips of Kafka's EndToEndLatency tool."""
    consumer_messages: int
    consumer_instances: tuple[int, ...]
    repeats: int
    warmup_messages: int
    """Sent (and not measured) first: a fresh broker JVM is slower until its JIT has run."""
    partitions: int = 24
    message_bytes: int = 100
    """Size of the latency and consumer phases' messages (the per-message-cost case)."""

    @classmethod
    def full(cls, repeats: int = 1) -> BenchPlan:
        return cls(
            producer_messages=((100, 1_000_000), (1024, 300_000)),
            latency_fractions=(0.1, 0.5, 0.9),
            latency_rates=(1_000, 10_000, 100_000),
            latency_seconds=15.0,
            latency_warmup_s=3.0,
            java_latency_messages=5_000,
            consumer_messages=5_000_000,
            consumer_instances=(1, 6),
            repeats=repeats,
            warmup_messages=300_000,
        )

    @classmethod
    def quick(cls, repeats: int = 1) -> BenchPlan:
        return cls(
            producer_messages=((100, 30_000), (1024, 10_000)),
            # Half the max (the target's worst case) and 1k msg/s: each also runs the Java clients.
            latency_fractions=(0.5,),
            latency_rates=(1_000,),
            latency_seconds=2.0,
            latency_warmup_s=1.0,
            java_latency_messages=200,
            consumer_messages=30_000,
            consumer_instances=(1, 6),
            repeats=repeats,
            warmup_messages=10_000,
        )


def _median(runs: list[Throughput]) -> float:
    return round(statistics.median(run.msgs_per_s for run in runs), 1)


def _compare(
    label: str,
    repeats: int,
    run_ours: Callable[[], Throughput],
    run_theirs: Callable[[], Throughput] | None,
    notes: list[str],
) -> Comparison:
    """Ours and theirs ``repeats`` times, taking turns at going first; medians and ratio."""
    mine: list[Throughput] = []
    theirs: list[Throughput] = []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            mine.append(run_ours())
        if run_theirs is not None:
            try:
                theirs.append(run_theirs())
            except BenchError as error:
                notes.append(f"{label}: Kafka's tool failed, no ratio: {error}")
                run_theirs = None
        if repeat % 2 == 1:
            mine.append(run_ours())
    return _comparison(label, mine, theirs)


def _ours_producer(
    ctx: BenchContext, plan: BenchPlan, profile: BenchProfile, message_bytes: int, count: int
) -> Throughput:
    topic = ctx.create_topic(f"produce{message_bytes}", plan.partitions)
    result = ours.produce(
        ctx,
        profile,
        topic,
        message_bytes=message_bytes,
        count=count,
        name=_producer_id(message_bytes),
    )
    ctx.delete_topics()
    _report_producer(ctx, "ours", result)
    return result


def _their_producer(
    ctx: BenchContext, plan: BenchPlan, profile: BenchProfile, message_bytes: int, count: int
) -> Throughput:
    topic = ctx.create_topic(f"produce{message_bytes}", plan.partitions)
    result = kafka_tools.producer_perf(
        ctx,
        profile,
        topic,
        message_bytes=message_bytes,
        count=count,
        id_bytes=len(_producer_id(message_bytes)),
    )
    ctx.delete_topics()
    _report_producer(ctx, kafka_tools.PRODUCER_TOOL, result)
    return result


def _producer_id(message_bytes: int) -> str:
    return f"p{message_bytes}"


def _report_producer(ctx: BenchContext, who: str, result: Throughput) -> None:
    ctx.progress(
        "producer %d B %s: %d msgs in %.2f s = %.0f msg/s, %.1f MB/s",
        result.message_bytes,
        who,
        result.messages,
        result.seconds,
        result.msgs_per_s,
        result.mb_per_s,
    )


def warm_up(ctx: BenchContext, plan: BenchPlan, profile: BenchProfile) -> None:
    """Send ``plan.warmup_messages`` and read them back once, unmeasured."""
    run, _rss = ours.drain(
        ctx,
        profile,
        ctx.create_topic("warmup", plan.partitions),
        count=plan.warmup_messages,
        message_bytes=plan.message_bytes,
        instances=1,
        partitions=plan.partitions,
    )
    ctx.delete_topics()
    ctx.progress("warm-up: %d msgs through the broker and back", run.messages)


def producer_phase(
    ctx: BenchContext,
    plan: BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    *,
    sizes: tuple[int, ...] | None = None,
    with_kafka_tool: bool = True,
) -> None:
    """Unthrottled producers, ours and Kafka's tool, each into a fresh topic."""
    for message_bytes, count in plan.producer_messages:
        if sizes is not None and message_bytes not in sizes:
            continue
        args = (ctx, plan, profile, message_bytes, count)
        results.producer.append(
            _compare(
                f"producer {message_bytes} B",
                plan.repeats,
                functools.partial(_ours_producer, *args),
                functools.partial(_their_producer, *args)
                if with_kafka_tool and ctx.kafka_home
                else None,
                results.notes,
            )
        )


def latency_phase(
    ctx: BenchContext,
    plan: BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    *,
    max_rate: float,
    fractions: tuple[float, ...] | None = None,
    rates: tuple[float, ...] | None = None,
    with_kafka_tool: bool = False,
) -> list[LatencyRun]:
    """Our producer to our consumer at fixed rates (msg/s) and at fractions of ``max_rate``,
    slowest first; ``with_kafka_tool``, Kafka's producer and a Java consumer at each rate too,
    then Kafka's EndToEndLatency."""
    # (rate, its fraction of max_rate, whether the rate is fixed); a relative run keeps the
    # planned fraction itself, which rate / max_rate gives back only up to rounding.
    fixed = [
        (rate, rate / max_rate, True)
        for rate in (plan.latency_rates if rates is None else rates)
        if rate < max_rate * _HIGHEST_FIXED_FRACTION
    ]
    relative = [
        (max_rate * f, f, False)
        for f in (plan.latency_fractions if fractions is None else fractions)
    ]
    runs = []
    for rate, fraction, fixed_rate in sorted(fixed + relative):
        rate_plan = RatePlan(
            rate=rate,
            fraction=fraction,
            fixed_rate=fixed_rate,
            duration_s=plan.latency_seconds,
            warmup_s=plan.latency_warmup_s,
            message_bytes=plan.message_bytes,
            partitions=plan.partitions,
        )
        run = ours.latency(ctx, profile, rate_plan)
        ctx.delete_topics()
        _report_latency(ctx, ours.TOOL, run)
        runs.append(run)
        if with_kafka_tool and ctx.kafka_home:
            # Right after ours at the same rate, so that both meet the same load.
            theirs = kafka_tools.latency_at_rate(ctx, profile, rate_plan)
            ctx.delete_topics()
            _report_latency(ctx, "Java", theirs)
            results.java_latency_at_rates.append(theirs)
    results.latency.extend(runs)
    if with_kafka_tool and ctx.kafka_home:
        java = kafka_tools.end_to_end_latency(
            ctx, profile, messages=plan.java_latency_messages, message_bytes=plan.message_bytes
        )
        ctx.delete_topics()
        ctx.progress(
            "EndToEndLatency (one message in flight, %.0f msg/s): p50 %.0f ms, p99 %.0f ms",
            1000 / java.avg_ms if java.avg_ms else 0,
            java.p50_ms,
            java.p99_ms,
        )
        results.java_latency = java
    return runs


def _report_latency(ctx: BenchContext, who: str, run: LatencyRun) -> None:
    ctx.progress(
        "latency at %s, %s (%.0f msg/s, achieved %.0f): p50 %.1f ms, p99 %.1f ms, "
        "p99.9 %.1f ms, max %.1f ms (%d samples)",
        run.label,
        who,
        run.target_rate,
        run.achieved_rate,
        run.p50_ms,
        run.p99_ms,
        run.p999_ms,
        run.max_ms,
        run.samples,
    )


def consumer_phase(
    ctx: BenchContext,
    plan: BenchPlan,
    profile: BenchProfile,
    results: BenchResults,
    *,
    with_kafka_tool: bool = True,
) -> None:
    """1 and 6 of ours drain a backlog (see ``ours.drain``), then Kafka's tool drains it, with
    our settings and then in each of its fastest configurations.

    With repeats, each round runs all of them in turn, so a change of load hits each of them.
    """
    count = plan.consumer_messages
    per_instances: dict[int, list[Throughput]] = {}
    theirs: dict[str, list[Throughput]] = {}
    run_kafka_tool = with_kafka_tool and ctx.kafka_home is not None
    for _ in range(plan.repeats):
        topic = ""
        for instances in plan.consumer_instances:
            topic = ctx.create_topic(f"consume{instances}", plan.partitions)
            throughput, rss = ours.drain(
                ctx,
                profile,
                topic,
                count=count,
                message_bytes=plan.message_bytes,
                instances=instances,
                partitions=plan.partitions,
            )
            ctx.progress(
                "consumer x%d ours: %d msgs in %.2f s = %.0f msg/s, %.1f MB/s; peak RSS MB %s",
                instances,
                throughput.messages,
                throughput.seconds,
                throughput.msgs_per_s,
                throughput.mb_per_s,
                rss,
            )
            results.consumer.append(
                ConsumerRun(instances=instances, throughput=throughput, peak_rss_mb=rss)
            )
            per_instances.setdefault(instances, []).append(throughput)
        if run_kafka_tool:
            run_kafka_tool = _their_consumer(
                ctx, plan, profile=profile, topic=topic, results=results, theirs=theirs
            )
        ctx.delete_topics()
    same_settings = theirs.get(_SAME_SETTINGS, [])
    for instances, runs in per_instances.items():
        results.consumer_comparisons.append(
            _comparison(f"consumer x{instances}", runs, same_settings)
        )
    six = per_instances.get(_TARGET_INSTANCES)
    if six and theirs:
        fastest = max(theirs, key=lambda name: _median(theirs[name]))
        results.consumer_comparisons.append(_comparison(_FASTEST_LABEL, six, theirs[fastest]))
        results.notes.append(
            f"{_FASTEST_LABEL}: kafka-consumer-perf-test at its fastest here, {fastest} "
            "(medians: "
            + ", ".join(f"{name} {_median(runs):,.0f} msg/s" for name, runs in theirs.items())
            + ")"
        )


def _their_consumer(
    ctx: BenchContext,
    plan: BenchPlan,
    *,
    profile: BenchProfile,
    topic: str,
    results: BenchResults,
    theirs: dict[str, list[Throughput]],
) -> bool:
    """Kafka's tool drains ``topic`` in each configuration; False once it failed (no ratio)."""
    for name, overrides in {_SAME_SETTINGS: {}, **_FASTEST_TOOL_CANDIDATES}.items():
        try:
            run = kafka_tools.consumer_perf(
                ctx,
                profile,
                topic,
                count=plan.consumer_messages,
                message_bytes=plan.message_bytes,
                overrides=overrides,
            )
        except BenchError as error:
            results.notes.append(f"consumer: Kafka's tool failed ({name}), no ratio: {error}")
            return False
        ctx.progress(
            "consumer kafka-consumer-perf-test (%s): %d msgs in %.2f s = %.0f msg/s, %.1f MB/s",
            name,
            run.messages,
            run.seconds,
            run.msgs_per_s,
            run.mb_per_s,
        )
        theirs.setdefault(name, []).append(run)
    return True


def _comparison(
    label: str, ours_runs: list[Throughput], their_runs: list[Throughput]
) -> Comparison:
    """Medians of both sides and their ratio (none when Kafka's tool did not run)."""
    ours_rate = _median(ours_runs)
    theirs_rate = _median(their_runs) if their_runs else None
    return Comparison(
        label=label,
        ours=ours_runs,
        theirs=their_runs,
        ours_msgs_per_s=ours_rate,
        theirs_msgs_per_s=theirs_rate,
        ratio=round(ours_rate / theirs_rate, 3) if theirs_rate else None,
    )


def targets(results: BenchResults) -> list[Target]:
    """The performance targets against this run's numbers."""
    producer_100 = next((c for c in results.producer if c.label == "producer 100 B"), None)
    consumers_6 = next(
        (c for c in results.consumer_comparisons if c.label == f"consumer x{_TARGET_INSTANCES}"),
        None,
    )
    up_to_half = [
        run for run in results.latency if run.fraction_of_max <= _HALF_RATE + _RATE_TOLERANCE
    ]
    worst = max(up_to_half, key=lambda run: run.p99_ms, default=None)
    rss = [
        peak
        for run in results.consumer
        if run.instances == _TARGET_INSTANCES
        for peak in run.peak_rss_mb
    ]

    def ratio_target(
        name: str, comparison: Comparison | None, target: float = RATIO_TARGET
    ) -> Target:
        ratio = comparison.ratio if comparison else None
        return Target(
            name=name,
            measured=ratio,
            target=target,
            unit="ours/theirs msgs/s, at least",
            met=None if ratio is None else ratio >= target,
        )

    return [
        ratio_target("producer 100 B vs kafka-producer-perf-test", producer_100),
        ratio_target("6 consumers vs kafka-consumer-perf-test", consumers_6),
        ratio_target(
            "6 consumers vs kafka-consumer-perf-test at its fastest",
            next((c for c in results.consumer_comparisons if c.label == _FASTEST_LABEL), None),
            FASTEST_TOOL_RATIO_TARGET,
        ),
        Target(
            name=LATENCY_TARGET,
            measured=worst.p99_ms if worst else None,
            target=LATENCY_TARGET_MS,
            unit=f"ms, at most (worst: {worst.label})" if worst else "ms, at most",
            met=None if worst is None else worst.p99_ms <= LATENCY_TARGET_MS,
        ),
        Target(
            name="peak RSS of any of 6 consumer instances",
            measured=max(rss, default=None),
            target=RSS_TARGET_MB,
            unit="MB, at most",
            met=max(rss) <= RSS_TARGET_MB if rss else None,
        ),
    ]
