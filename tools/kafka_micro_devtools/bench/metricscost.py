"""The cost of the metrics: our producer and consumers with ``/metrics`` on and off, on one broker.

The same measurements as ``--security-cost`` (``paired.measurements``) on one PLAINTEXT
broker, each round running every measurement in both modes back to back, off first in even
rounds and on first in odd ones (ABBA...), so a change of load on a shared machine hits both
alike (``paired``). With metrics on, every child also has librdkafka report its statistics every
``STATISTICS_INTERVAL_MS`` and is scraped every ``SCRAPE_INTERVAL_S``: statistics as often as
deployed (1000 ms), scrapes fifteen times as often (Prometheus' 15 s), so the short runs see
several of each and the cost measured is an upper bound.

Besides throughput, each run reports the CPU seconds our processes used (user and system, every
thread, librdkafka's included) per message: on a shared machine throughput follows the load of
others, CPU time per message much less.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro_devtools.bench import paired
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.results import ResultsHeader

Mode = Literal["off", "on"]
SCHEMA = "kafka-micro-bench-metrics/1"
STATISTICS_INTERVAL_MS: Final = 1000
SCRAPE_INTERVAL_S: Final = 1.0

MetricsRun = paired.PairedRun[Mode]
PAIR: paired.ModePair[Mode] = paired.ModePair(
    "off", "on", labels={"off": "metrics off", "on": "metrics on"}, run_model=MetricsRun
)


class MetricsComparison(BaseModel):
    """Metrics on against off for one measurement."""

    measurement: str
    off: paired.ModeSummary
    on: paired.ModeSummary
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

    model_config = ConfigDict(extra="forbid")


class _Intervals(ResultsHeader):
    """How often metrics on reports statistics and is scraped.

    A base of its own so that ``metrics-cost.json`` has them right after the header, where it
    always had them.
    """

    statistics_interval_ms: int = STATISTICS_INTERVAL_MS
    scrape_interval_s: float = SCRAPE_INTERVAL_S


class MetricsCostResults(paired.PairedResults[MetricsRun, MetricsComparison], _Intervals):
    """What ``kafka-micro-bench --metrics-cost`` writes to ``metrics-cost.json``."""

    schema_: str = Field(default=SCHEMA, alias="schema")


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


def summarize(runs: Sequence[MetricsRun]) -> list[MetricsComparison]:
    """Per measurement with runs in both modes: medians and ratios, CPU per message, peak RSS."""
    comparisons = []
    for measured in PAIR.summarize(runs):
        cpu = {
            mode: round(statistics.median(_cpu_us_per_msg(run) for run in mode_runs), 3)
            for mode, mode_runs in measured.runs.items()
        }
        peaks = {
            mode: max(rss for run in mode_runs for rss in run.peak_rss_mb)
            for mode, mode_runs in measured.runs.items()
            if any(run.peak_rss_mb for run in mode_runs)
        }
        comparisons.append(
            MetricsComparison(
                **measured.comparison_fields(),
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
        rss = (
            " / ".join(f"{comparison.peak_rss_mb[mode]:.1f} MB" for mode in PAIR.modes)
            if len(comparison.peak_rss_mb) == len(PAIR.modes)
            else "-"
        )
        cpu = comparison.cpu_us_per_msg
        lines.append(
            f"{comparison.measurement} | {paired.summary_cell(comparison.off)} | "
            f"{paired.summary_cell(comparison.on)} | {comparison.ratio:.3f} "
            f"({paired.round_ratios_cell(comparison.round_ratios)}) | "
            f"{cpu['off']:.2f} / {cpu['on']:.2f} ({comparison.cpu_ratio:.3f}) | {rss}"
        )
    return "\n".join(lines)
