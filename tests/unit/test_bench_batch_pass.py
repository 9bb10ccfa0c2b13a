from kafka_micro_devtools.bench import batchpass
from kafka_micro_devtools.bench.command import main


def test_the_batch_pass_times_every_round_and_reports_the_best():
    result = batchpass.measure(rounds=2)
    assert len(result.rounds_ns) == 2
    assert result.best_ns == min(result.rounds_ns) > 0


def test_the_command_prints_the_figure_without_a_broker(capsys):
    assert main(["--batch-pass"]) == 0
    assert capsys.readouterr().out.startswith("consumer batch pass: ")
