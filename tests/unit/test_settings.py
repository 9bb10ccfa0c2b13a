import json
import subprocess
import sys

import pytest

from kafka_micro import config_output
from kafka_micro.cli import main
from kafka_micro.settings import ConfigError, Settings, iter_field_docs, load_settings


def write(tmp_path, text, name="kafka-micro.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(*args, **kwargs)
    return str(caught.value)


def test_defaults_are_the_measured_tuning():
    settings = load_settings()
    assert settings.profile is None
    producer = settings.producer.librdkafka_properties()
    assert producer == {
        "compression.type": "snappy",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "acks": "all",
        "enable.idempotence": True,
    }
    assert settings.producer.poll_every == 100
    consumer = settings.consumer.librdkafka_properties()
    assert consumer["fetch.min.bytes"] == 1
    assert consumer["fetch.wait.max.ms"] == 500
    assert consumer["fetch.max.bytes"] == 131_072
    assert consumer["message.max.bytes"] == 131_072
    assert consumer["queued.max.messages.kbytes"] == 1024
    assert consumer["fetch.queue.backoff.ms"] == 10
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["enable.auto.commit"] is True
    assert settings.consumer.batch_size == 100
    assert settings.topic == "test-topic"
    assert settings.report_interval_s == 10


FIRST_KAFKA_TUNING = {
    "producer": {"compression": "snappy", "linger_ms": 20, "batch_size": 32768, "poll_every": 100},
    "consumer": {"batch_size": 100, "fetch_min_bytes": 16384, "fetch_wait_max_ms": 500},
}


def tuning(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        side: {name: getattr(getattr(settings, side), name) for name in names}
        for side, names in FIRST_KAFKA_TUNING.items()
    }


def test_first_kafka_profile_is_the_original_tuning_table(tmp_path):
    path = write(tmp_path, 'profile = "first-kafka"\n')
    settings = load_settings(path)
    assert tuning(settings) == FIRST_KAFKA_TUNING
    # Where the original set nothing, it ran with librdkafka's defaults.
    assert settings.producer.librdkafka == {"delivery.report.only.error": False}
    consumer = settings.consumer
    assert (consumer.fetch_max_bytes, consumer.queued_max_messages_kbytes) == (52_428_800, 65536)
    assert consumer.fetch_queue_backoff_ms == 1000


def test_profile_values_yield_to_the_file_the_environment_and_options(tmp_path, monkeypatch):
    path = write(tmp_path, "[producer]\nlinger_ms = 7\n")
    monkeypatch.setenv("KAFKA_MICRO_PROFILE", "first-kafka")
    monkeypatch.setenv("KAFKA_MICRO_CONSUMER__FETCH_MIN_BYTES", "2048")
    settings = load_settings(path, {"producer": {"batch_size": 4096}})
    assert settings.profile == "first-kafka"
    assert settings.producer.linger_ms == 7
    assert settings.consumer.fetch_min_bytes == 2048
    assert settings.producer.batch_size == 4096
    # Where nothing above it sets a value, the profile's applies (the default is 10).
    assert settings.consumer.fetch_queue_backoff_ms == 1000


def test_profile_option_selects_a_profile(capsys):
    assert main(["config", "--json", "--profile", "first-kafka"]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["profile"] == "first-kafka"
    assert effective["producer"]["batch_size"] == 32768


def test_unknown_profile_names_the_value_and_the_known_ones(tmp_path):
    message = config_error(write(tmp_path, 'profile = "fast"\n'))
    assert "profile = 'fast'" in message
    assert "'first-kafka'" in message


def test_every_setting_is_documented():
    described = {doc.name: doc.description for doc in iter_field_docs()}
    assert "producer.linger_ms" in described
    assert [name for name, text in described.items() if not text] == []
    assert "KAFKA_MICRO_PRODUCER__LINGER_MS" in config_output.describe()


def test_environment_variables_use_one_prefix_and_double_underscore(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_TOPIC", "orders")
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__LINGER_MS", "8")
    monkeypatch.setenv("kafka_micro_consumer__group_protocol", "classic")
    monkeypatch.setenv("KAFKA_MICRO_CONSUMER__LIBRDKAFKA", '{"session.timeout.ms": 10000}')
    settings = load_settings()
    assert settings.topic == "orders"
    assert settings.producer.linger_ms == 8
    assert settings.consumer.group_protocol == "classic"
    properties = settings.consumer.librdkafka_properties()
    assert properties["partition.assignment.strategy"] == "cooperative-sticky"
    assert properties["session.timeout.ms"] == 10000


def test_file_is_read_and_librdkafka_tables_override(tmp_path):
    path = write(
        tmp_path,
        """
bootstrap_servers = "k1:9092,k2:9092"
topic = "orders"

[producer]
compression = "lz4"
linger_ms = 50

[producer.librdkafka]
"linger.ms" = 7
"queue.buffering.max.messages" = 500000

[consumer]
instance_id = "app1-1"
""",
    )
    settings = load_settings(path)
    assert settings.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.producer.compression == "lz4"
    producer = settings.producer.librdkafka_properties()
    assert producer["linger.ms"] == 7
    assert producer["queue.buffering.max.messages"] == 500000
    assert settings.consumer.librdkafka_properties()["group.instance.id"] == "app1-1"


def test_environment_overrides_file_and_options_override_both(tmp_path, monkeypatch):
    path = write(tmp_path, '[producer]\ncompression = "lz4"\nlinger_ms = 50\nrate = 10\n')
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__LINGER_MS", "8")
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__RATE", "20")
    settings = load_settings(path, {"producer": {"rate": 30}})
    assert settings.producer.compression == "lz4"  # file, untouched by the others
    assert settings.producer.linger_ms == 8  # environment over file
    assert settings.producer.rate == 30  # option over environment


def test_bad_type_names_field_value_and_source(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__LINGER_MS", "soon")
    message = config_error()
    assert "producer.linger_ms = 'soon'" in message
    assert "environment variable KAFKA_MICRO_PRODUCER__LINGER_MS" in message
    assert "valid integer" in message


def test_unknown_key_in_file_lists_allowed_keys(tmp_path):
    path = write(tmp_path, "[producer]\nlinger = 5\n")
    message = config_error(path)
    assert "producer.linger = 5" in message
    assert str(path) in message
    assert "unknown setting" in message
    assert "linger_ms" in message


def test_unknown_top_level_environment_variable_is_refused(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_BOOTSTRAP_SERVER", "k1:9092")
    message = config_error()
    assert "KAFKA_MICRO_BOOTSTRAP_SERVER" in message
    assert "KAFKA_MICRO_BOOTSTRAP_SERVERS" in message


def test_unknown_nested_environment_variable_is_refused(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_CONSUMER__BATCHSIZE", "10")
    message = config_error()
    assert "consumer.batchsize = '10'" in message
    assert "batch_size" in message


def test_out_of_range_value_states_the_bound(tmp_path):
    path = write(tmp_path, "[consumer]\nbatch_size = 0\n")
    message = config_error(path)
    assert "consumer.batch_size = 0" in message
    assert "greater than or equal to 1" in message


def test_unknown_compression_lists_the_codecs(monkeypatch):
    monkeypatch.setenv("KAFKA_MICRO_PRODUCER__COMPRESSION", "brotli")
    message = config_error()
    assert "producer.compression = 'brotli'" in message
    assert "'gzip', 'snappy', 'lz4' or 'zstd'" in message


def test_malformed_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, "[producer\nrate = 1\n")
    message = config_error(path)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 1" in message


def test_missing_file_is_named(tmp_path):
    message = config_error(tmp_path / "absent.toml")
    assert "absent.toml" in message
    assert "does not exist" in message


def test_acks_other_than_all_with_idempotence_is_refused(tmp_path):
    path = write(tmp_path, "[producer]\nacks = 1\n")
    message = config_error(path)
    assert "acks='1'" in message
    assert "enable.idempotence" in message
    assert load_settings(overrides={"producer": {"acks": 1, "enable_idempotence": False}})


def test_acks_override_through_librdkafka_table_is_checked_too(tmp_path):
    path = write(tmp_path, '[producer.librdkafka]\nacks = "1"\n')
    assert "requires acks='all'" in config_error(path)


def test_auto_offset_store_cannot_be_switched_on(tmp_path):
    path = write(tmp_path, '[consumer.librdkafka]\n"enable.auto.offset.store" = true\n')
    message = config_error(path)
    assert "enable.auto.offset.store=True" in message
    assert "only false is allowed" in message


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('"Linger.MS" = 5', "is not a librdkafka property name"),
        ('"linger.ms" = [5]', "a librdkafka value is a string, number or boolean"),
    ],
)
def test_librdkafka_table_entries_are_checked(tmp_path, table, expected):
    path = write(tmp_path, f"[producer.librdkafka]\n{table}\n")
    assert expected in config_error(path)


@pytest.mark.parametrize(
    ("servers", "bad"),
    [("kafka1", "kafka1"), ("k1:9092,k2:99999", "k2:99999"), ("k1:9092,", "")],
)
def test_bootstrap_servers_must_be_host_port(servers, bad):
    message = config_error(overrides={"bootstrap_servers": servers})
    assert f"{bad!r} is not HOST:PORT" in message


def test_producer_id_longer_than_header_allows_is_refused():
    message = config_error(overrides={"producer": {"id": "é" * 128}})
    assert "256 bytes in UTF-8; at most 255" in message


def test_effective_config_is_valid_toml_that_reads_back(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "KAFKA_MICRO_CONSUMER__LIBRDKAFKA",
        '{"sasl.password": "hunter2", "statistics.interval.ms": 0}',
    )
    settings = load_settings(overrides={"producer": {"id": "p-1"}})
    text = config_output.to_toml(settings)
    assert "hunter2" not in text
    assert '"sasl.password" = "<redacted>"' in text
    assert "# instance_id is unset" in text
    monkeypatch.delenv("KAFKA_MICRO_CONSUMER__LIBRDKAFKA")
    reread = load_settings(write(tmp_path, text))
    assert reread.producer == settings.producer
    assert reread.consumer.librdkafka["sasl.password"] == "<redacted>"
    assert isinstance(reread, Settings)


def test_secrets_of_the_top_level_librdkafka_table_are_redacted_too(tmp_path, capsys):
    path = write(
        tmp_path,
        '[librdkafka]\n"security.protocol" = "sasl_ssl"\n"sasl.password" = "hunter2"\n'
        '"ssl.key.password" = "swordfish"\n',
    )
    assert main(["config", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert "hunter2" not in text
    assert "swordfish" not in text
    assert '"sasl.password" = "<redacted>"' in text
    assert '"security.protocol" = "sasl_ssl"' in text
    assert main(["config", "--json", "--config", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["librdkafka"]["ssl.key.password"] == "<redacted>"


def test_cli_bad_config_exits_2_with_message_and_no_traceback(tmp_path, capsys):
    path = write(tmp_path, '[producer]\ncompression = "brotli"\n')
    assert main(["produce", "--config", str(path), "--count", "1"]) == 2
    err = capsys.readouterr().err
    assert "producer.compression = 'brotli'" in err
    assert "Traceback" not in err


def test_module_entry_point_refuses_bad_environment_with_exit_2(tmp_path):
    env = {"KAFKA_MICRO_CONSUMER__BATCH_SIZE": "many", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "kafka_micro", "consume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "consumer.batch_size = 'many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_command_line_value_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["produce", "--count", "0"])
    assert caught.value.code == 2
    assert "'0' must be at least 1" in capsys.readouterr().err


def test_property_refused_by_librdkafka_exits_2_with_its_reason():
    env = {
        "KAFKA_MICRO_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_MICRO_CONSUMER__LIBRDKAFKA": '{"session.timeout.ms": 10000}',
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "kafka_micro", "consume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid librdkafka configuration" in result.stderr
    assert "`session.timeout.ms` is not supported for `group.protocol=consumer`" in result.stderr
    assert "Traceback" not in result.stderr


def test_python_client_property_of_the_wrong_type_exits_2_without_a_traceback():
    env = {
        "KAFKA_MICRO_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_MICRO_PRODUCER__LIBRDKAFKA": '{"delivery.report.only.error": "true"}',
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "kafka_micro", "produce", "--count", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "delivery.report.only.error to be bool type, not str" in result.stderr
    assert "Traceback" not in result.stderr


def test_dead_letters_go_to_the_topic_plus_dlq_unless_named_or_switched_off():
    assert load_settings().dead_letter_topic() == "test-topic.dlq"
    assert load_settings(overrides={"topic": "orders"}).dead_letter_topic() == "orders.dlq"
    named = {"consumer": {"dead_letter_topic": "bad-orders"}}
    assert load_settings(overrides=named).dead_letter_topic() == "bad-orders"
    assert (
        load_settings(overrides={"consumer": {"dead_letter_topic": ""}}).dead_letter_topic() is None
    )
    defaults = load_settings().consumer
    assert (defaults.max_value_bytes, defaults.dead_letter_timeout_s) == (1_000_000, 60.0)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"consumer": {"dead_letter_topic": "dead letters"}},
            "consumer.dead_letter_topic = 'dead letters' (command-line option): a topic name is",
        ),
        (
            {"topic": "orders", "consumer": {"dead_letter_topic": "orders"}},
            "(settings): consumer.dead_letter_topic is the topic itself ('orders')",
        ),
        (
            {"topic": "t" * 249},
            "(topic plus '.dlq') is longer than Kafka's 249 characters; set "
            "consumer.dead_letter_topic",
        ),
        (
            {"consumer": {"max_value_bytes": 17}},
            "consumer.max_value_bytes = 17 (command-line option): Input should be greater than "
            "or equal to 18",
        ),
        (
            {"producer": {"message_size": 2048}, "consumer": {"max_value_bytes": 1024}},
            "producer.message_size=2048 exceeds consumer.max_value_bytes=1024",
        ),
        (
            {"consumer": {"dead_letter_timeout_s": 301}},
            "consumer.dead_letter_timeout_s = 301 (command-line option): Input should be less "
            "than or equal to 300",
        ),
    ],
)
def test_bad_dead_letter_settings_name_the_setting_and_what_is_allowed(overrides, expected):
    assert expected in config_error(overrides=overrides)


def test_the_dead_letter_settings_are_described():
    described = config_output.describe()
    for name in ("DEAD_LETTER_TOPIC", "MAX_VALUE_BYTES", "DEAD_LETTER_TIMEOUT_S"):
        assert f"KAFKA_MICRO_CONSUMER__{name}" in described
