"""The paired rounds both A/B costs share (``--security-cost``, ``--metrics-cost``): the order of
the modes, the runner loop, the summary, the table cells and the results' layout."""

import json
from typing import Literal

import pytest
from pydantic import Field

from kafka_micro_devtools.bench import paired
from kafka_micro_devtools.bench.paired import (
    ModePair,
    PairedResults,
    PairedRun,
    mode_summary,
    round_ratios_cell,
    summary_cell,
)
from kafka_micro_devtools.bench.results import Throughput
from kafka_micro_devtools.bench.runner import BenchPlan

LOAD = (1.0, 1.0, 1.0)
Mode = Literal["before", "after"]
Run = PairedRun[Mode]
PAIR = ModePair("before", "after", labels={"before": "BEFORE", "after": "AFTER"}, run_model=Run)


def run(number, mode, measurement, msgs_per_s, message_bytes=100):
    throughput = Throughput.of("kafka-micro", int(msgs_per_s), message_bytes, 1.0, load=LOAD)
    return Run(round=number, mode=mode, measurement=measurement, throughput=throughput)


def test_modes_take_turns_at_going_first():
    assert [PAIR.round_order(n) for n in range(4)] == [
        ("before", "after"),
        ("after", "before"),
        ("before", "after"),
        ("after", "before"),
    ]


def test_summary_has_medians_spread_and_ratios_of_medians_and_of_the_rounds_with_both_modes():
    runs = [
        run(0, "before", "producer 100 B", 600_000),
        run(0, "after", "producer 100 B", 300_000),
        run(1, "after", "producer 100 B", 400_000),
        run(1, "before", "producer 100 B", 500_000),
        run(2, "before", "producer 100 B", 800_000),
        run(2, "after", "producer 100 B", 200_000),
        # Measured in one mode only: left out.
        run(0, "before", "producer 1024 B", 100_000),
        # Each mode in a round of its own: no round ratio.
        run(0, "before", "consumer x1", 1_000_000),
        run(1, "after", "consumer x1", 900_000),
        # Nothing moved in round 0's first mode: no ratio for that round.
        run(0, "before", "consumer x6", 0),
        run(0, "after", "consumer x6", 1_000_000),
        run(1, "after", "consumer x6", 900_000),
        run(1, "before", "consumer x6", 1_000_000),
    ]
    producer, lone, consumers = PAIR.summarize(runs)
    assert producer.measurement == "producer 100 B"
    assert producer.summaries["before"].msgs_per_s == [600_000, 500_000, 800_000]
    assert producer.summaries["before"].msgs_per_s_median == 600_000
    assert producer.summaries["before"].mb_per_s_median == 60.0
    assert producer.summaries["after"].msgs_per_s_median == 300_000
    assert producer.ratio == 0.5
    assert producer.round_ratios == [0.5, 0.8, 0.25]
    assert [run.round for run in producer.runs["after"]] == [0, 1, 2]
    assert producer.comparison_fields() == {
        "measurement": "producer 100 B",
        "before": producer.summaries["before"],
        "after": producer.summaries["after"],
        "ratio": 0.5,
        "round_ratios": [0.5, 0.8, 0.25],
    }
    assert (lone.measurement, lone.ratio, lone.round_ratios) == ("consumer x1", 0.9, [])
    assert (consumers.measurement, consumers.ratio, consumers.round_ratios) == (
        "consumer x6",
        1.9,
        [0.9],
    )


def test_mode_summary_takes_the_median_of_an_even_number_of_runs_between_the_middle_two():
    summary = mode_summary([run(n, "before", "p", rate) for n, rate in enumerate((1, 2, 4, 8))])
    assert (summary.msgs_per_s_median, summary.mb_per_s_median) == (3.0, 0.0)


def test_table_cells_show_thousands_of_msgs_each_run_mb_and_the_round_ratios():
    summary = mode_summary([run(0, "before", "p", 300_000, 1024), run(1, "before", "p", 1_500)])
    assert summary_cell(summary) == "151k (300k, 2k); 153.7 MB/s"
    assert round_ratios_cell([0.5, 1.0, 0.987]) == "0.50, 1.00, 0.99"
    assert round_ratios_cell([]) == ""


class _Context:
    def __init__(self, mode, lines):
        self.mode = mode
        self.lines = lines

    def progress(self, message, *args):
        self.lines.append(message % args)


def test_each_round_runs_every_measurement_in_both_modes_in_turns(monkeypatch):
    ran = []

    def measurement(label, rss):
        def run_one(ctx):
            ran.append((label, ctx.mode))
            return Throughput.of("kafka-micro", 1000, 100, 2.0, load=LOAD), rss

        return run_one

    monkeypatch.setattr(
        paired,
        "measurements",
        lambda plan, profile: {
            "producer 100 B": measurement("producer 100 B", []),
            "consumer x1": measurement("consumer x1", [50.0]),
        },
    )
    lines = []
    contexts = {mode: _Context(mode, lines) for mode in PAIR.modes}
    runs = PAIR.measure(contexts, BenchPlan.quick(repeats=2), profile=None)
    assert ran == [
        ("producer 100 B", "before"),
        ("producer 100 B", "after"),
        ("consumer x1", "before"),
        ("consumer x1", "after"),
        ("producer 100 B", "after"),
        ("producer 100 B", "before"),
        ("consumer x1", "after"),
        ("consumer x1", "before"),
    ]
    assert [(run.round, run.measurement, run.mode) for run in runs] == [
        (0, *step) for step in ran[:4]
    ] + [(1, *step) for step in ran[4:]]
    assert all(isinstance(run, Run) for run in runs)
    assert [run.peak_rss_mb for run in runs[:2]] == [[], []]
    assert runs[2].peak_rss_mb == [50.0]
    assert lines[0] == "round 1 producer 100 B BEFORE: 1000 msgs in 2.00 s = 500 msg/s, 0.1 MB/s"
    assert lines[4].startswith("round 2 producer 100 B AFTER: ")


def test_a_run_in_a_mode_the_cost_does_not_have_is_refused():
    with pytest.raises(ValueError, match="mode"):
        run(0, "sideways", "producer 100 B", 1)


def test_results_have_the_header_then_the_load_the_runs_and_the_comparisons():
    class Results(PairedResults[Run, Run]):
        schema_: str = Field(default="test/1", alias="schema")

    results = Results(
        started_at="then",
        command=["kafka-micro-bench"],
        quick=True,
        machine={},
        broker={},
        profile={},
        load_average_start=LOAD,
        runs=[run(0, "before", "p", 1)],
    )
    written = json.loads(results.to_json())
    assert list(written) == [
        "schema",
        "started_at",
        "finished_at",
        "command",
        "quick",
        "machine",
        "broker",
        "profile",
        "load_average_start",
        "load_average_end",
        "runs",
        "comparisons",
    ]
    assert written["schema"] == "test/1"
    assert written["runs"][0]["mode"] == "before"
