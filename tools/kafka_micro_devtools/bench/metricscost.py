"""The cost of the metrics: our producer and consumers with ``/metrics`` on and off, on one broker.

The same measurements as ``--security-cost`` (``security.measurements``) on one PLAINTEXT
broker, each round running every measurement in both modes back to back, off first in even
rounds and on first in odd ones (ABBA...), so a change of load on a shared machine hits both
alike. With metrics on, every child also has librdkafka report its statistics every
``STATISTICS_INTERVAL_MS`` and is scraped every ``SCRAPE_INTERVAL_S``: five and fifteen times
as often as deployed (5000 ms, Prometheus' 15 s), so the short runs see several of each and the
cost measured is an upper bound.

Besides throughput, each run reports the CPU seconds our processes used (user and system, every
thread, librdkafka's included) per message: on a shared machine throughput follows the load of
others, CPU time per message much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import Throughput
from kafka_micro_devtools.bench.runner import BenchPlan
from kafka_micro_devtools.bench.security import (
    ModeSummary,
    measurements,
    mode_summary,
    summary_cell,
)

Mode = Literal["off", "on"]
MODES: tuple[Mode, ...] = get_args(Mode)
SCHEMA = "kafka-micro-bench-metrics/1"
STATISTICS_INTERVAL_MS: Final = 1000
SCRAPE_INTERVAL_S: Final = 1.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsRun(_Model):
    """One measurement in one mode in one round."""

    round: int
    mode: Mode
    measurement: str
    throughput: Throughput
    peak_rss_mb: list[float] = []


class MetricsComparison(_Model):
    """Metrics on against off for one measurement."""

    measurement: str
    off: ModeSummary
    on: ModeSummary
    ratio: float
    """On median / off median, msg/s."""
    round_ratios: list[float]
    """On / off within each round that measured both."""
    cpu_us_per_msg: dict[Mode, float]
    """Median CPU microseconds per message of our processes in each mode."""
    cpu_ratio: float
    """On / off of those medians."""
    peak_rss_mb: dict[Mode, float] = {}
    """The highest consumer RSS in each mode (consumer measurements only)."""


class MetricsCostResults(_Model):
    """What ``kafka-micro-bench --metrics-cost`` writes to ``metrics-cost.json``."""

    schema_: str = Field(default=SCHEMA, alias="schema")
    started_at: str
    finished_at: str = ""
    command: list[str]
    quick: bool
    machine: dict[str, Any]
    broker: dict[str, Any]
    profile: dict[str, Any]
    statistics_interval_ms: int = STATISTICS_INTERVAL_MS
    scrape_interval_s: float = SCRAPE_INTERVAL_S
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] | None = None
    runs: list[MetricsRun] = []
    comparisons: list[MetricsComparison] = []

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


def contexts(bootstrap: str, output_dir: Path) -> dict[Mode, BenchContext]:
    """A context per mode on the same broker; metrics on means statistics and scrapes too."""
    return {
        "off": BenchContext(bootstrap, output_dir, None, metrics=False),
        "on": BenchContext(
            bootstrap,
            output_dir,
            None,
            scrape_interval_s=SCRAPE_INTERVAL_S,
            statistics_interval_ms=STATISTICS_INTERVAL_MS,
        ),
    }


def round_order(round_number: int) -> tuple[Mode, ...]:
    """The modes in the order round ``round_number`` (from 0) runs them: ABBA..."""
    return MODES if round_number % 2 == 0 else MODES[::-1]


def summarize(runs: Sequence[MetricsRun]) -> list[MetricsComparison]:
    """Per measurement (in first-seen order) with runs in both modes: medians and ratios."""
    comparisons = []
    for label in dict.fromkeys(run.measurement for run in runs):
        mine = [run for run in runs if run.measurement == label]
        by_mode = {mode: [run for run in mine if run.mode == mode] for mode in MODES}
        if not all(by_mode.values()):
            continue
        off, on = mode_summary(by_mode["off"]), mode_summary(by_mode["on"])
        rates = {(run.round, run.mode): run.throughput.msgs_per_s for run in mine}
        round_ratios = [
            round(rates[number, "on"] / rates[number, "off"], 3)
            for number in sorted({run.round for run in mine})
            if rates.get((number, "off")) and (number, "on") in rates
        ]
        cpu = {
            mode: round(statistics.median(_cpu_us_per_msg(run) for run in by_mode[mode]), 3)
            for mode in MODES
        }
        peaks = {
            mode: max(rss for run in by_mode[mode] for rss in run.peak_rss_mb)
            for mode in MODES
            if any(run.peak_rss_mb for run in by_mode[mode])
        }
        comparisons.append(
            MetricsComparison(
                measurement=label,
                off=off,
                on=on,
                ratio=round(on.msgs_per_s_median / off.msgs_per_s_median, 3),
                round_ratios=round_ratios,
                cpu_us_per_msg=cpu,
                cpu_ratio=round(cpu["on"] / cpu["off"], 3),
                peak_rss_mb=peaks,
            )
        )
    return comparisons


def _cpu_us_per_msg(run: MetricsRun) -> float:
    return float(run.throughput.detail["cpu_s"]) * 1e6 / run.throughput.messages


def to_table(comparisons: Sequence[MetricsComparison]) -> str:
    """One row per measurement: each mode's median msg/s (each run) and MB/s, the ratios."""
    lines = [
        "measurement | metrics off: msg/s median (runs); MB/s | metrics on: msg/s median (runs); "
        "MB/s | on / off, medians (per round) | CPU us/msg off / on (on / off) | "
        "peak RSS off / on"
    ]
    for comparison in comparisons:
        per_round = ", ".join(f"{ratio:.2f}" for ratio in comparison.round_ratios)
        rss = (
            " / ".join(f"{comparison.peak_rss_mb[mode]:.1f} MB" for mode in MODES)
            if len(comparison.peak_rss_mb) == len(MODES)
            else "-"
        )
        cpu = comparison.cpu_us_per_msg
        lines.append(
            f"{comparison.measurement} | {summary_cell(comparison.off)} | "
            f"{summary_cell(comparison.on)} | {comparison.ratio:.3f} ({per_round}) | "
            f"{cpu['off']:.2f} / {cpu['on']:.2f} ({comparison.cpu_ratio:.3f}) | {rss}"
        )
    return "\n".join(lines)


def measure(
    by_mode: Mapping[Mode, BenchContext], plan: BenchPlan, profile: BenchProfile
) -> list[MetricsRun]:
    """``plan.repeats`` rounds of every measurement in both modes (see the module's doc)."""
    runs = []
    for number in range(plan.repeats):
        for label, run_one in measurements(plan, profile).items():
            for mode in round_order(number):
                ctx = by_mode[mode]
                throughput, rss = run_one(ctx)
                ctx.progress(
                    "round %d %s metrics %s: %d msgs in %.2f s = %.0f msg/s, %.1f MB/s",
                    number + 1,
                    label,
                    mode,
                    throughput.messages,
                    throughput.seconds,
                    throughput.msgs_per_s,
                    throughput.mb_per_s,
                )
                runs.append(
                    MetricsRun(
                        round=number,
                        mode=mode,
                        measurement=label,
                        throughput=throughput,
                        peak_rss_mb=rss,
                    )
                )
    return runs
