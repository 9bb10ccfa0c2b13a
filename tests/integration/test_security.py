"""kafka-micro over SASL_SSL with SCRAM-SHA-512 and ACLs, against a real secured broker.

The pipeline's two principals do their part and nothing more (the consumer writes dead letters
where it is granted, and stops rather than lose one where it is not); a wrong password, an
unknown CA, a host name the certificate does not hold and a plaintext client each make every
command that talks to the brokers fail with exit 3 and one line naming the cause, never a
traceback.
"""

import json

import pytest
from apprunner import App, committed_offsets, wait_until
from confluent_kafka import Producer

from kafka_micro.message import value_packer
from kafka_micro.settings import ConsumerSettings, ProducerSettings
from kafka_micro_devtools.bench import kafka_tools
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile, java_connection_properties
from kafka_micro_devtools.broker_security import USERS
from kafka_micro_devtools.localbroker import LocalBroker
from kafka_micro_devtools.throwaway_tls import create_authority

pytestmark = pytest.mark.integration

EXIT_INCOMPLETE = 3
# A plaintext client on the TLS listener only never gets through: it fails after this long.
CONNECT_TIMEOUT_S = "5"
# Every command that talks to the brokers, each as the principal it runs as in a deployment.
COMMANDS = {
    "produce": (("produce", "--count", "10"), "producer"),
    "consume": (("consume",), "consumer"),
    "verify": (("verify",), "consumer"),
    "topic": (("topic", "--partitions", "1"), "admin"),
}


@pytest.fixture(scope="module")
def secured_broker(kafka_home, tmp_path_factory):
    """One SASL_SSL broker for this module; the principals may use App's topics and groups."""
    with LocalBroker(kafka_home, tmp_path_factory.mktemp("secured-broker"), secured=True) as broker:
        broker.grant_pipeline("test-topic-", "group-", prefixed=True)
        yield broker


@pytest.fixture
def app(secured_broker, tmp_path):
    application = App(secured_broker.bootstrap, tmp_path)
    yield application
    application.kill_all()


def as_user(broker, user, **overrides):
    """App settings that make kafka-micro connect as ``user``, with properties overridden."""
    properties = {**broker.client_properties(user), **overrides}
    return {"librdkafka": json.dumps(properties)}


def create_topic(app, broker, partitions=3):
    result = app.run("topic", "--partitions", str(partitions), **as_user(broker, "admin"))
    assert result.returncode == 0, result.stderr


def assert_fails_clearly(result, *expected):
    assert result.returncode == EXIT_INCOMPLETE, result.stderr
    assert "Traceback" not in result.stderr
    last_error = [line for line in result.stderr.splitlines() if " ERROR " in line][-1]
    for text in expected:
        assert text in last_error, result.stderr
    return last_error


def test_producer_and_consumer_principals_lose_nothing_over_sasl_ssl(app, secured_broker):
    create_topic(app, secured_broker)
    produced = app.run(
        "produce", "--count", "3000", producer__id="secure-p", **as_user(secured_broker, "producer")
    )
    assert produced.returncode == 0, produced.stderr
    consumer = app.start("consumer", "consume", record=True, **as_user(secured_broker, "consumer"))
    wait_until(lambda: len(consumer.records()) >= 3000, 90, "3000 messages consumed")
    assert consumer.stop() == 0, consumer.log()
    assert sorted(sequence for _p, sequence, _part, _off in consumer.records()) == list(range(3000))

    verified = app.run("verify", "--json", **as_user(secured_broker, "consumer"))
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert (report["messages"], report["missing"], report["ok"]) == (3000, 0, True)
    # The group it never joins is none of its business: no warning about it.
    assert "WARNING" not in verified.stderr, verified.stderr


def test_the_consumer_principal_cannot_write(app, secured_broker):
    create_topic(app, secured_broker)
    result = app.run("produce", "--count", "10", **as_user(secured_broker, "consumer"))
    assert_fails_clearly(
        result, "produce failed: not authorized for the cluster: ", "Cluster authorization failed"
    )


def test_the_producer_principal_cannot_read_its_topic_or_join_the_group(app, secured_broker):
    create_topic(app, secured_broker)
    as_producer = as_user(secured_broker, "producer")
    assert app.run("produce", "--count", "10", **as_producer).returncode == 0

    assert_fails_clearly(
        app.run("consume", **as_producer), "consume failed: not authorized for the group: "
    )
    assert_fails_clearly(
        app.run("verify", **as_producer), "verify failed: not authorized for the topic"
    )


def test_config_shows_the_connection_settings_with_the_password_redacted(app, secured_broker):
    result = app.run("config", **as_user(secured_broker, "producer"))
    assert result.returncode == 0, result.stderr
    password = secured_broker.security.passwords["producer"]
    assert password not in result.stdout
    assert '"sasl.password" = "<redacted>"' in result.stdout
    assert '"sasl.username" = "producer"' in result.stdout
    assert '"security.protocol" = "SASL_SSL"' in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password_fails_every_command_naming_the_user(app, secured_broker, command):
    args, user = COMMANDS[command]
    result = app.run(*args, **as_user(secured_broker, user, **{"sasl.password": "wrong"}))
    assert_fails_clearly(
        result,
        f"{command} failed: authentication failed for user '{user}' at {secured_broker.bootstrap}",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_ca_fails_every_command_naming_the_certificate(
    app, secured_broker, tmp_path, command
):
    args, user = COMMANDS[command]
    other_ca = create_authority(tmp_path, "other-ca").certificate_file
    result = app.run(*args, **as_user(secured_broker, user, **{"ssl.ca.location": str(other_ca)}))
    assert_fails_clearly(
        result, f"{command} failed: TLS certificate of {secured_broker.bootstrap} not trusted"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_host_name_the_certificate_lacks_fails_every_command(app, secured_broker, command):
    args, user = COMMANDS[command]
    app.bootstrap = secured_broker.listener_address
    result = app.run(*args, **as_user(secured_broker, user))
    assert_fails_clearly(
        result,
        f"{command} failed: TLS certificate of {secured_broker.listener_address} does not name",
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_plaintext_client_fails_every_command_within_the_connect_timeout(
    app, secured_broker, command
):
    args, user = COMMANDS[command]
    result = app.run(
        *args,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        **as_user(secured_broker, user, **{"security.protocol": "PLAINTEXT"}),
    )
    assert_fails_clearly(
        result,
        f"within connect_timeout_s={CONNECT_TIMEOUT_S}",
        f"{secured_broker.bootstrap} speaks TLS but security.protocol is plaintext",
    )


def test_a_broker_restart_is_waited_out_and_loses_nothing(app, secured_broker):
    """Errors while the broker is away (refused connections, handshakes cut short) can heal:
    a producer and a consumer that have worked keep going, however long the restart takes."""
    create_topic(app, secured_broker)
    producer = app.start(
        "producer",
        "produce",
        "--rate",
        "200",
        producer__id="restart-p",
        **as_user(secured_broker, "producer"),
    )
    consumer = app.start("consumer", "consume", record=True, **as_user(secured_broker, "consumer"))
    wait_until(consumer.records, 60, "the consumer to process messages")
    secured_broker.stop()
    secured_broker.start()
    before = len(consumer.records())
    wait_until(
        lambda: len(consumer.records()) > before + 200, 120, "consuming again after the restart"
    )
    assert producer.popen.poll() is None, producer.log()
    assert consumer.popen.poll() is None, consumer.log()
    assert producer.stop() == 0, producer.log()
    assert consumer.stop() == 0, consumer.log()

    verified = app.run("verify", "--json", **as_user(secured_broker, "consumer"))
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert (report["missing"], report["ok"]) == (0, True)


def test_a_topic_outside_the_acls_is_denied_not_missing(app, secured_broker):
    app.topic = "private-topic"
    assert_fails_clearly(
        app.run("topic", "--partitions", "1", **as_user(secured_broker, "producer")),
        "topic failed: not authorized for the topic: ",
    )
    create_topic(app, secured_broker)
    assert_fails_clearly(
        app.run("produce", "--count", "10", **as_user(secured_broker, "producer")),
        "produce failed: not authorized for the topic: ",
    )
    assert_fails_clearly(
        app.run("verify", **as_user(secured_broker, "consumer")),
        "verify failed: not authorized for the topic: ",
    )


def inject_as_admin(app, broker, values):
    """Write raw values into partition 0 of the topic, bypassing kafka-micro produce."""
    producer = Producer({"bootstrap.servers": app.bootstrap, **broker.client_properties("admin")})
    for value in values:
        producer.produce(app.topic, value, partition=0)
    assert producer.flush(30) == 0


def test_a_consumer_denied_its_dead_letter_topic_stops_before_the_bad_message(app, secured_broker):
    """The consumer's principal may read its topic but not write the dead-letter topic: the
    consumer stops (exit 1) naming what to grant, and stores no offset past the bad message."""
    create_topic(app, secured_broker, partitions=1)
    good = value_packer("denied", 0)
    inject_as_admin(
        app,
        secured_broker,
        [good(0, 1), good(1, 1), b"not a kafka-micro message", good(2, 1), good(3, 1)],
    )
    as_consumer = as_user(secured_broker, "consumer")
    consumer = app.start("consumer", "consume", record=True, **as_consumer)
    assert consumer.wait(90) == 1, consumer.log()
    log = consumer.log()
    assert "Traceback" not in log
    failure = [line for line in log.splitlines() if "consumer failed:" in line][-1]
    assert f"could not write 1 of 1 dead letters to topic {app.topic}.dlq" in failure
    assert f"the message at topic {app.topic} partition 0 offset 2 (wrong-magic)" in failure
    assert "not authorized" in failure
    assert f"needs Write on topic {app.topic}.dlq" in failure
    assert all(offset < 2 for _producer, _sequence, _partition, offset in consumer.records())
    committed = committed_offsets(app, 1, **secured_broker.client_properties("admin"))
    assert committed[0] <= 2, committed


def test_dead_letters_are_written_and_read_as_the_consumer_and_replayed_as_the_producer(
    app, secured_broker
):
    create_topic(app, secured_broker, partitions=1)
    secured_broker.grant_dead_letter_writes(f"{app.topic}.dlq")
    inject_as_admin(app, secured_broker, [value_packer("secure", 0)(0, 1), b"garbage, not ours!"])
    as_consumer = as_user(secured_broker, "consumer")
    consumer = app.start("consumer", "consume", record=True, **as_consumer)
    wait_until(lambda: "dead-lettered 1\n" in consumer.log(), 90, "the bad message dead-lettered")
    assert consumer.records() == [("secure", 0, 0, 0)]

    inspected = app.run("dlq", "inspect", "--json", **as_consumer)
    assert inspected.returncode == 0, inspected.stderr
    [letter] = json.loads(inspected.stdout)["dead_letters"]
    assert (letter["reason"], letter["source"]["offset"]) == ("wrong-magic", 1)

    producer = secured_broker.client_properties("producer")
    login = {key: producer[key] for key in ("sasl.username", "sasl.password")}
    replayed = app.run(
        "dlq", "replay", "--json", producer__librdkafka=json.dumps(login), **as_consumer
    )
    assert replayed.returncode == 0, replayed.stderr
    assert len(json.loads(replayed.stdout)["replayed"]) == 1
    wait_until(lambda: "dead-lettered 2\n" in consumer.log(), 60, "the replayed one dead again")
    assert consumer.stop() == 0, consumer.log()
    after = json.loads(app.run("dlq", "inspect", "--json", **as_consumer).stdout)
    assert after["replay_notes"] == 1
    # Listed by dead-letter partition and offset; a keyless dead letter may go to any partition.
    assert sorted(letter["replayed_from"] is not None for letter in after["dead_letters"]) == [
        False,
        True,
    ]


def test_the_bench_runs_kafkas_tools_with_the_config_files_login(
    secured_broker, kafka_home, tmp_path
):
    """``kafka-micro-bench --bootstrap --config``: the top-level librdkafka table (here the
    admin's SASL_SSL login) is translated for Kafka's Java tools, which reach the TLS-only,
    ACL-guarded listener with it."""
    connection = secured_broker.client_properties("admin")
    ctx = BenchContext(
        secured_broker.bootstrap,
        tmp_path,
        kafka_home,
        client_properties=dict.fromkeys(USERS, connection),
        java_connection=java_connection_properties(connection),
    )
    profile = BenchProfile(name="t", producer=ProducerSettings(), consumer=ConsumerSettings())
    try:
        measured = kafka_tools.end_to_end_latency(ctx, profile, messages=20, message_bytes=100)
    finally:
        ctx.delete_topics()
        ctx.close()
    assert measured.messages == 20
    assert measured.avg_ms > 0
    properties_files = list((tmp_path / "logs").glob("*.properties"))
    assert properties_files
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in properties_files)
