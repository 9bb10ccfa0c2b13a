"""The common options go before or after the subcommand, as in git."""

import json

import pytest

from kafka_micro.cli import build_parser, main


def write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def effective(capsys, *argv: str) -> dict:
    assert main([*argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "CONFIG", "config", "--json"],
        ["config", "--config", "CONFIG", "--json"],
    ],
    ids=["before", "after"],
)
def test_config_file_is_read_on_either_side_of_the_subcommand(tmp_path, capsys, argv):
    path = write(tmp_path, 'topic = "from-file"\n', "kafka-micro.toml")
    document = effective(capsys, *[str(path) if arg == "CONFIG" else arg for arg in argv])
    assert document["topic"] == "from-file"


def test_every_common_option_before_the_subcommand_is_kept(tmp_path, capsys):
    path = write(tmp_path, "[producer]\nlinger_ms = 9\n", "kafka-micro.toml")
    document = effective(
        capsys,
        "--config",
        str(path),
        "--profile",
        "first-kafka",
        "--bootstrap-servers",
        "kafka1:9092",
        "--topic",
        "before",
        "config",
        "--json",
    )
    assert document["producer"]["linger_ms"] == 9
    assert document["profile"] == "first-kafka"
    assert document["bootstrap_servers"] == "kafka1:9092"
    assert document["topic"] == "before"


def test_the_subcommand_value_wins_when_given_on_both_sides(tmp_path, capsys):
    first = write(tmp_path, 'topic = "first"\n', "first.toml")
    second = write(tmp_path, 'topic = "second"\n', "second.toml")
    document = effective(
        capsys, "--config", str(first), "--topic", "t1", "config", "--json", "--topic", "t2"
    )
    assert document["topic"] == "t2"
    document = effective(
        capsys, "--config", str(first), "config", "--config", str(second), "--json"
    )
    assert document["topic"] == "second"


def test_a_value_before_the_subcommand_is_not_reset_by_the_subcommands_parser():
    args = build_parser().parse_args(["--topic", "kept", "--config", "/x.toml", "verify"])
    assert args.topic == "kept"
    assert str(args.config) == "/x.toml"
    unset = build_parser().parse_args(["verify"])
    assert not hasattr(unset, "topic")
    assert not hasattr(unset, "config")


def test_a_bad_common_option_before_the_subcommand_names_the_value(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--profile", "fast", "config"])
    assert caught.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_the_dlq_commands_take_the_common_options_at_every_level_and_their_filters():
    for argv in (
        ["--topic", "t", "dlq", "inspect"],
        ["dlq", "--topic", "t", "inspect"],
        ["dlq", "inspect", "--topic", "t"],
    ):
        assert build_parser().parse_args(argv).topic == "t"
    args = build_parser().parse_args(
        ["dlq", "replay", "--reason", "wrong-magic", "--reason", "no-value", "--dry-run"]
    )
    assert (args.dlq_command, args.reason, args.dry_run) == (
        "replay",
        ["wrong-magic", "no-value"],
        True,
    )
    assert build_parser().parse_args(["dlq", "inspect"]).limit == 1000


def test_an_unknown_reason_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["dlq", "inspect", "--reason", "bad"])
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'bad'" in error
    assert "'processing-error'" in error


def test_without_a_dead_letter_topic_the_dlq_commands_say_so(monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_MICRO_CONSUMER__DEAD_LETTER_TOPIC", "")
    assert main(["dlq", "inspect"]) == 2
    assert "consumer.dead_letter_topic is '' (no dead-letter topic)" in capsys.readouterr().err
