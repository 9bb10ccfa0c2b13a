"""Two modes of our clients compared in paired rounds, on one broker (the A/B costs).

``--security-cost`` (PLAINTEXT against SASL_SSL) and ``--metrics-cost`` (metrics off against
on) run the same measurements the same way: each round runs every measurement in both modes
back to back, the first mode first in even rounds and the second first in odd ones (ABBA...),
so a change of load on a shared machine hits both modes alike. Each cost keeps its modes, its
contexts and its own figures; the measurements, the rounds, the summary and the results' layout
are here.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro_devtools.bench import ours
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import ResultsHeader, Throughput
from kafka_micro_devtools.bench.runner import BenchPlan

ModeT = TypeVar("ModeT", bound=str)
RunT = TypeVar("RunT", bound=BaseModel)
ComparisonT = TypeVar("ComparisonT", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairedRun(_Model, Generic[ModeT]):
    """One measurement in one mode in one round."""

    round: int
    mode: ModeT
    measurement: str
    throughput: Throughput
    peak_rss_mb: list[float] = []


class ModeSummary(_Model):
    """One measurement's runs in one mode: medians and the spread."""

    msgs_per_s: list[float]
    msgs_per_s_median: float
    mb_per_s_median: float


def mode_summary(runs: Sequence[PairedRun[Any]]) -> ModeSummary:
    """The msg/s of each run, their median and the median MB/s."""
    rates = [run.throughput.msgs_per_s for run in runs]
    return ModeSummary(
        msgs_per_s=rates,
        msgs_per_s_median=round(statistics.median(rates), 1),
        mb_per_s_median=round(statistics.median(run.throughput.mb_per_s for run in runs), 3),
    )


@dataclass(frozen=True)
class PairedMeasurement(Generic[ModeT]):
    """One measurement's runs in both modes and what both costs report of them."""

    measurement: str
    runs: Mapping[ModeT, Sequence[PairedRun[ModeT]]]
    summaries: Mapping[ModeT, ModeSummary]
    ratio: float
    """Second mode's median / first mode's median, msg/s."""
    round_ratios: list[float]
    """Second / first within each round that measured both."""

    def comparison_fields(self) -> dict[str, Any]:
        """What each cost's comparison model starts with, each mode's summary under its name."""
        return {
            "measurement": self.measurement,
            # Copied: a Mapping keyed by modes does not pass for one keyed by str.
            **{mode: summary for mode, summary in self.summaries.items()},
            "ratio": self.ratio,
            "round_ratios": self.round_ratios,
        }


class PairedResults(ResultsHeader, Generic[RunT, ComparisonT]):
    """A cost's JSON: the header, the load around the rounds, every run and the comparisons.

    A cost with fields of its own puts them between the header and these by deriving them from
    ``ResultsHeader`` in a second base class (``metricscost.MetricsCostResults``).
    """

    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] | None = None
    runs: list[RunT] = Field(default_factory=list)
    comparisons: list[ComparisonT] = Field(default_factory=list)


@dataclass(frozen=True)
class ModePair(Generic[ModeT]):
    """The two modes a cost compares, the second against the first."""

    first: ModeT
    second: ModeT
    labels: Mapping[ModeT, str]
    """Each mode as progress lines name it."""
    run_model: type[PairedRun[ModeT]]
    """The cost's run model, so that its runs validate their mode."""

    @property
    def modes(self) -> tuple[ModeT, ModeT]:
        return self.first, self.second

    def round_order(self, round_number: int) -> tuple[ModeT, ModeT]:
        """The modes in the order round ``round_number`` (from 0) runs them: ABBA..."""
        return self.modes if round_number % 2 == 0 else (self.second, self.first)

    def summarize(self, runs: Sequence[PairedRun[ModeT]]) -> list[PairedMeasurement[ModeT]]:
        """Per measurement (in first-seen order) with runs in both modes: medians and ratios."""
        summarized = []
        for label in dict.fromkeys(run.measurement for run in runs):
            mine = [run for run in runs if run.measurement == label]
            by_mode = {mode: [run for run in mine if run.mode == mode] for mode in self.modes}
            if not all(by_mode.values()):
                continue
            summaries = {mode: mode_summary(by_mode[mode]) for mode in self.modes}
            rates = {(run.round, run.mode): run.throughput.msgs_per_s for run in mine}
            round_ratios = [
                round(rates[number, self.second] / rates[number, self.first], 3)
                for number in sorted({run.round for run in mine})
                if rates.get((number, self.first)) and (number, self.second) in rates
            ]
            first, second = summaries[self.first], summaries[self.second]
            summarized.append(
                PairedMeasurement(
                    measurement=label,
                    runs=by_mode,
                    summaries=summaries,
                    ratio=round(second.msgs_per_s_median / first.msgs_per_s_median, 3),
                    round_ratios=round_ratios,
                )
            )
        return summarized

    def measure(
        self, contexts: Mapping[ModeT, BenchContext], plan: BenchPlan, profile: BenchProfile
    ) -> list[PairedRun[ModeT]]:
        """``plan.repeats`` rounds of every measurement in both modes (see the module's doc)."""
        runs = []
        for number in range(plan.repeats):
            for label, run_one in measurements(plan, profile).items():
                for mode in self.round_order(number):
                    ctx = contexts[mode]
                    throughput, rss = run_one(ctx)
                    ctx.progress(
                        "round %d %s %s: %d msgs in %.2f s = %.0f msg/s, %.1f MB/s",
                        number + 1,
                        label,
                        self.labels[mode],
                        throughput.messages,
                        throughput.seconds,
                        throughput.msgs_per_s,
                        throughput.mb_per_s,
                    )
                    runs.append(
                        self.run_model(
                            round=number,
                            mode=mode,
                            measurement=label,
                            throughput=throughput,
                            peak_rss_mb=rss,
                        )
                    )
        return runs


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
    """Each measurement by label, in the order a round runs them."""
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


def _thousands(rate: float) -> str:
    return f"{rate / 1000:,.0f}k"


def summary_cell(summary: ModeSummary) -> str:
    """A table cell: the median msg/s (each run's) and the median MB/s."""
    runs = ", ".join(_thousands(rate) for rate in summary.msgs_per_s)
    return f"{_thousands(summary.msgs_per_s_median)} ({runs}); {summary.mb_per_s_median:.1f} MB/s"


def round_ratios_cell(round_ratios: Sequence[float]) -> str:
    """The per-round ratios as a table shows them after the ratio of the medians."""
    return ", ".join(f"{ratio:.2f}" for ratio in round_ratios)
