"""The cost of SASL_SSL: our producer and consumers over PLAINTEXT and SASL_SSL, on one broker.

The broker (``LocalBroker(secured=True, plaintext_listener=True)``) has both client listeners;
one ``BenchContext`` reaches it over each. Each round runs every measurement in both modes
back to back, PLAINTEXT first in even rounds and SASL_SSL first in odd ones (ABBA...), so
a change of load on a shared machine hits both modes alike (``paired``). Over SASL_SSL our
clients connect as the pipeline's users (``producer``, ``consumer``; SCRAM-SHA-512, TLS, ACLs),
over PLAINTEXT unauthenticated. Kafka's perf-test tools are not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro_devtools.bench import paired

Mode = Literal["plaintext", "sasl_ssl"]
SCHEMA = "kafka-micro-bench-security/1"

SecurityRun = paired.PairedRun[Mode]
PAIR: paired.ModePair[Mode] = paired.ModePair(
    "plaintext",
    "sasl_ssl",
    labels={"plaintext": "PLAINTEXT", "sasl_ssl": "SASL_SSL"},
    run_model=SecurityRun,
)


class SecurityComparison(BaseModel):
    """SASL_SSL against PLAINTEXT for one measurement."""

    measurement: str
    plaintext: paired.ModeSummary
    sasl_ssl: paired.ModeSummary
    ratio: float
    """SASL_SSL median / PLAINTEXT median, msg/s."""
    round_ratios: list[float]
    """SASL_SSL / PLAINTEXT within each round that measured both."""

    model_config = ConfigDict(extra="forbid")


class SecurityResults(paired.PairedResults[SecurityRun, SecurityComparison]):
    """What ``kafka-micro-bench --security-cost`` writes to ``security-cost.json``."""

    schema_: str = Field(default=SCHEMA, alias="schema")


def summarize(runs: Sequence[SecurityRun]) -> list[SecurityComparison]:
    """Per measurement with runs in both modes: each mode's medians, the ratios."""
    return [SecurityComparison(**measured.comparison_fields()) for measured in PAIR.summarize(runs)]


def to_table(comparisons: Sequence[SecurityComparison]) -> str:
    """One row per measurement: each mode's median msg/s (each run) and MB/s, the ratios."""
    lines = [
        "measurement | PLAINTEXT msg/s median (runs); MB/s | SASL_SSL msg/s median (runs); MB/s "
        "| SASL_SSL / PLAINTEXT, medians (per round)"
    ]
    lines.extend(
        f"{comparison.measurement} | {paired.summary_cell(comparison.plaintext)} | "
        f"{paired.summary_cell(comparison.sasl_ssl)} | {comparison.ratio:.2f} "
        f"({paired.round_ratios_cell(comparison.round_ratios)})"
        for comparison in comparisons
    )
    return "\n".join(lines)
