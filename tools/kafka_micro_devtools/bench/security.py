"""The cost of SASL_SSL: our producer and consumers over PLAINTEXT and SASL_SSL, on one broker.

The broker (``LocalBroker(secured=True, plaintext_listener=True)``) has both client listeners;
one ``BenchContext`` reaches it over each. Each round runs every measurement in both modes
back to back, PLAINTEXT first in even rounds and SASL_SSL first in odd ones (ABBA...), so
a change of load on a shared machine hits both modes alike. Over SASL_SSL our clients
connect as the pipeline's users (``producer``, ``consumer``; SCRAM-SHA-512, TLS, ACLs), over
PLAINTEXT unauthenticated. Kafka's perf-test tools are not run.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro_devtools.bench import ours
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import Throughput
from kafka_micro_devtools.bench.runner import BenchPlan

Mode = Literal["plaintext", "sasl_ssl"]
MODES: tuple[Mode, ...] = get_args(Mode)
_LABELS: dict[Mode, str] = {"plaintext": "PLAINTEXT", "sasl_ssl": "SASL_SSL"}
SCHEMA = "kafka-micro-bench-security/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecurityRun(_Model):
    """One measurement in one mode in one round."""

    round: int
    mode: Mode
    measurement: str
    throughput: Throughput
    peak_rss_mb: list[float] = []


class ModeSummary(_Model):
    """One measurement's runs in one mode: medians and the spread."""

    msgs_per_s: list[float]
    msgs_per_s_median: float
    mb_per_s_median: float


class SecurityComparison(_Model):
    """SASL_SSL against PLAINTEXT for one measurement."""

    measurement: str
    plaintext: ModeSummary
    sasl_ssl: ModeSummary
    ratio: float
    """SASL_SSL median / PLAINTEXT median, msg/s."""
    round_ratios: list[float]
    """SASL_SSL / PLAINTEXT within each round that measured both."""


class SecurityResults(_Model):
    """What ``kafka-micro-bench --security-cost`` writes to ``security-cost.json``."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    started_at: str
    finished_at: str = ""
    command: list[str]
    quick: bool
    machine: dict[str, Any]
    broker: dict[str, Any]
    profile: dict[str, Any]
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] | None = None
    runs: list[SecurityRun] = []
    comparisons: list[SecurityComparison] = []

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


def round_order(round_number: int) -> tuple[Mode, ...]:
    """The modes in the order round ``round_number`` (from 0) runs them: ABBA..."""
    return MODES if round_number % 2 == 0 else MODES[::-1]


class Measured(Protocol):
    """A run of one measurement in one mode."""

    @property
    def throughput(self) -> Throughput: ...


def mode_summary(runs: Sequence[Measured]) -> ModeSummary:
    """Medians of runs that each have a ``throughput`` (also used by ``--metrics-cost``)."""
    rates = [run.throughput.msgs_per_s for run in runs]
    return ModeSummary(
        msgs_per_s=rates,
        msgs_per_s_median=round(statistics.median(rates), 1),
        mb_per_s_median=round(statistics.median(run.throughput.mb_per_s for run in runs), 3),
    )


def summarize(runs: Sequence[SecurityRun]) -> list[SecurityComparison]:
    """Per measurement (in first-seen order) with runs in both modes: medians and ratios."""
    comparisons = []
    for label in dict.fromkeys(run.measurement for run in runs):
        mine = [run for run in runs if run.measurement == label]
        by_mode = {mode: [run for run in mine if run.mode == mode] for mode in MODES}
        if not all(by_mode.values()):
            continue
        plaintext, sasl_ssl = mode_summary(by_mode["plaintext"]), mode_summary(by_mode["sasl_ssl"])
        rates = {(run.round, run.mode): run.throughput.msgs_per_s for run in mine}
        round_ratios = [
            round(rates[number, "sasl_ssl"] / rates[number, "plaintext"], 3)
            for number in sorted({run.round for run in mine})
            if rates.get((number, "plaintext")) and (number, "sasl_ssl") in rates
        ]
        comparisons.append(
            SecurityComparison(
                measurement=label,
                plaintext=plaintext,
                sasl_ssl=sasl_ssl,
                ratio=round(sasl_ssl.msgs_per_s_median / plaintext.msgs_per_s_median, 3),
                round_ratios=round_ratios,
            )
        )
    return comparisons


def _thousands(rate: float) -> str:
    return f"{rate / 1000:,.0f}k"


def summary_cell(summary: ModeSummary) -> str:
    """A table cell: the median msg/s (each run's) and the median MB/s."""
    runs = ", ".join(_thousands(rate) for rate in summary.msgs_per_s)
    return f"{_thousands(summary.msgs_per_s_median)} ({runs}); {summary.mb_per_s_median:.1f} MB/s"


def to_table(comparisons: Sequence[SecurityComparison]) -> str:
    """One row per measurement: each mode's median msg/s (each run) and MB/s, the ratios."""
    lines = [
        "measurement | PLAINTEXT msg/s median (runs); MB/s | SASL_SSL msg/s median (runs); MB/s "
        "| SASL_SSL / PLAINTEXT, medians (per round)"
    ]
    for comparison in comparisons:
        per_round = ", ".join(f"{ratio:.2f}" for ratio in comparison.round_ratios)
        lines.append(
            f"{comparison.measurement} | {summary_cell(comparison.plaintext)} | "
            f"{summary_cell(comparison.sasl_ssl)} | {comparison.ratio:.2f} ({per_round})"
        )
    return "\n".join(lines)


def _producer(
    ctx: BenchContext, plan: BenchPlan, profile: BenchProfile, size: int, count: int
) -> tuple[Throughput, list[float]]:
    topic = ctx.create_topic(f"produce{size}", plan.partitions)
    try:
        return ours.produce(
            ctx, profile, topic, message_bytes=size, count=count, name=f"p{size}"
        ), []
    finally:
        ctx.delete_topics()


def _consumers(
    ctx: BenchContext, plan: BenchPlan, profile: BenchProfile, instances: int
) -> tuple[Throughput, list[float]]:
    topic = ctx.create_topic(f"consume{instances}", plan.partitions)
    try:
        return ours.drain(
            ctx,
            profile,
            topic,
            count=plan.consumer_messages,
            message_bytes=plan.message_bytes,
            instances=instances,
            partitions=plan.partitions,
        )
    finally:
        ctx.delete_topics()


Measurement = Callable[[BenchContext], tuple[Throughput, list[float]]]


def measurements(plan: BenchPlan, profile: BenchProfile) -> dict[str, Measurement]:
    """Each measurement by label, in the order a round runs them (also ``--metrics-cost``'s)."""
    found: dict[str, Measurement] = {}
    for size, count in plan.producer_messages:
        found[f"producer {size} B"] = functools.partial(
            _producer, plan=plan, profile=profile, size=size, count=count
        )
    for instances in plan.consumer_instances:
        found[f"consumer x{instances}"] = functools.partial(
            _consumers, plan=plan, profile=profile, instances=instances
        )
    return found


def measure(
    contexts: Mapping[Mode, BenchContext], plan: BenchPlan, profile: BenchProfile
) -> list[SecurityRun]:
    """``plan.repeats`` rounds of every measurement in both modes (see the module's doc)."""
    runs = []
    for number in range(plan.repeats):
        for label, run_one in measurements(plan, profile).items():
            for mode in round_order(number):
                ctx = contexts[mode]
                throughput, rss = run_one(ctx)
                ctx.progress(
                    "round %d %s %s: %d msgs in %.2f s = %.0f msg/s, %.1f MB/s",
                    number + 1,
                    label,
                    _LABELS[mode],
                    throughput.messages,
                    throughput.seconds,
                    throughput.msgs_per_s,
                    throughput.mb_per_s,
                )
                runs.append(
                    SecurityRun(
                        round=number,
                        mode=mode,
                        measurement=label,
                        throughput=throughput,
                        peak_rss_mb=rss,
                    )
                )
    return runs
