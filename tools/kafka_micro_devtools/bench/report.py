"""The benchmark's results for people: a text table and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kafka_micro_devtools.bench.results import (
    LATENCY_TARGET,
    BenchResults,
    Comparison,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_MISSING = "-"


def _number(value: float | None, digits: int = 0) -> str:
    return _MISSING if value is None else f"{value:,.{digits}f}"


def _ours_mb(comparison: Comparison) -> float:
    return comparison.ours_msgs_per_s * comparison.ours[0].message_bytes / 1e6


def to_table(results: BenchResults) -> str:
    """Throughput comparisons, latency percentiles and targets as aligned text."""
    profile = results.profile
    producer, consumer = profile["producer"], profile["consumer"]
    lines = [
        f"kafka-micro-bench, {results.started_at}, {results.machine.get('cpus')} CPUs, "
        f"load average {results.load_average_start} at start, "
        f"{results.load_average_end} at end{' (quick)' if results.quick else ''}",
        f"profile {profile['name']}: compression {producer['compression']}, "
        f"linger.ms {producer['linger_ms']}, batch.size {producer['batch_size']}, "
        f"acks {producer['acks']}, idempotence {producer['enable_idempotence']}, "
        f"poll every {producer['poll_every']}; consumer batch {consumer['batch_size']}, "
        f"fetch.min.bytes {consumer['fetch_min_bytes']}, protocol {consumer['group_protocol']}",
        "",
        f"{'throughput (median)':<22}{'ours msg/s':>12}{'ours MB/s':>11}"
        f"{'Kafka tool msg/s':>18}{'ours/theirs':>13}",
    ]
    for comparison in [*results.producer, *results.consumer_comparisons]:
        lines.append(
            f"{comparison.label:<22}{_number(comparison.ours_msgs_per_s):>12}"
            f"{_number(_ours_mb(comparison), 1):>11}"
            f"{_number(comparison.theirs_msgs_per_s):>18}{_number(comparison.ratio, 2):>13}"
        )
    rss = [run for run in results.consumer if run.instances > 1]
    if rss:
        peaks = rss[-1].peak_rss_mb
        lines.append(
            f"peak RSS per consumer with {rss[-1].instances} running: "
            f"{min(peaks):.0f}-{max(peaks):.0f} MB (total {sum(peaks):.0f} MB)"
        )
    if results.latency:
        lines += [
            "",
            f"{'end-to-end latency':<22}{'rate msg/s':>12}{'achieved':>10}{'p50 ms':>9}"
            f"{'p99 ms':>9}{'p99.9 ms':>10}{'max ms':>9}",
        ]
        labelled = [(run.label, run) for run in results.latency] + [
            (f"Java, {run.label}", run) for run in results.java_latency_at_rates
        ]
        for label, run in labelled:
            lines.append(
                f"{label:<22}{_number(run.target_rate):>12}"
                f"{_number(run.achieved_rate):>10}{run.p50_ms:>9.1f}{run.p99_ms:>9.1f}"
                f"{run.p999_ms:>10.1f}{run.max_ms:>9.1f}"
            )
        if results.java_latency_at_rates:
            lines.append(
                "(Java: kafka-producer-perf-test at the rate, a Java consumer timing each "
                "message; whole ms)"
            )
    java = results.java_latency
    if java is not None:
        lines.append(
            f"{'EndToEndLatency':<22}{_number(1000 / java.avg_ms if java.avg_ms else 0):>12}"
            f"{'':>10}{java.p50_ms:>9.0f}{java.p99_ms:>9.0f}{java.p999_ms:>10.0f}"
            "  (Kafka's tool, one message in flight)"
        )
    if results.targets:
        lines += ["", "targets"]
        for target in results.targets:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[target.met]
            lines.append(
                f"  {target.name}: {_number(target.measured, 2)} "
                f"(target {target.target:g} {target.unit}): {verdict}"
            )
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines)


def plot(results: BenchResults, path: Path) -> None:
    """Throughput bars (ours vs Kafka's tools) and latency percentiles per rate, as a PNG."""
    # Imported here: plotting is an optional extra, and the Agg backend needs no display.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, (producer_axes, consumer_axes, latency_axes) = pyplot.subplots(
        1, 3, figsize=(16, 5), gridspec_kw={"width_ratios": [2, 2, 4]}
    )
    _throughput_bars(producer_axes, results.producer, "Producer throughput")
    _throughput_bars(consumer_axes, results.consumer_comparisons, "Consumer throughput (drain)")

    _latency_lines(latency_axes, results)
    figure.suptitle(
        f"kafka-micro-bench {results.started_at} (load average at start "
        f"{results.load_average_start[0]:.1f})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _latency_lines(axes: Axes, results: BenchResults) -> None:
    """p50 and p99 against the achieved rate, ours and the Java clients', both axes log."""
    series = (
        ("kafka-micro", results.latency, "tab:blue"),
        ("Java clients", results.java_latency_at_rates, "tab:orange"),
    )
    for who, runs, colour in series:
        ordered = sorted(runs, key=lambda run: run.achieved_rate)
        rates = [run.achieved_rate for run in ordered]
        for label, field, style in (("p50", "p50_ms", ":"), ("p99", "p99_ms", "-")):
            axes.plot(
                rates,
                [getattr(run, field) for run in ordered],
                style,
                marker="o",
                color=colour,
                label=f"{who} {label}",
            )
    round_trip = results.java_latency
    if round_trip is not None and round_trip.avg_ms:
        axes.plot(
            [1000 / round_trip.avg_ms],
            [round_trip.p99_ms],
            "s",
            color="tab:green",
            label="Kafka's EndToEndLatency p99 (one in flight)",
        )
    bound = next((t.target for t in results.targets if t.name == LATENCY_TARGET), None)
    if bound is not None:
        axes.axhline(bound, color="grey", linestyle="--", label=f"target p99 {bound:g} ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("achieved rate, msg/s (log scale)")
    axes.set_ylabel("end-to-end latency, ms (log scale)")
    axes.set_title("End-to-end latency against the rate")
    axes.legend(fontsize=8)


def _throughput_bars(axes: Axes, comparisons: list[Comparison], title: str) -> None:
    positions = range(len(comparisons))
    width = 0.38
    axes.bar(
        [x - width / 2 for x in positions],
        [c.ours_msgs_per_s / 1000 for c in comparisons],
        width,
        label="kafka-micro",
    )
    axes.bar(
        [x + width / 2 for x in positions],
        [(c.theirs_msgs_per_s or 0) / 1000 for c in comparisons],
        width,
        label="Kafka perf-test tool",
    )
    for x, comparison in zip(positions, comparisons, strict=True):
        if comparison.ratio is not None:
            top = max(comparison.ours_msgs_per_s, comparison.theirs_msgs_per_s or 0) / 1000
            axes.annotate(
                f"{comparison.ratio:.2f}x", (x, top), ha="center", va="bottom", fontsize=9
            )
    axes.set_xticks(list(positions), [c.label for c in comparisons])
    axes.set_ylabel("thousand messages / s (median)")
    axes.set_title(f"{title}\n(label: ours / theirs)")
    axes.legend(loc="best")
