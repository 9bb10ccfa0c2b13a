"""Secure by default, seen from an app host: each principal may do its part and nothing more.

Each probe is a real librdkafka client (the app's own venv) run on an app host against the
brokers, with the credentials the role rendered into the app's configuration or a variation of
them; Kafka's answer is the verdict.
"""

import base64
import json
import os
import shlex

import pytest
import testinfra
import testinfra.utils.ansible_runner
from groupstate import GROUP, TOPIC

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
KAFKA_HOSTS = RUNNER.get_hosts("kafka")
APP_HOSTS = RUNNER.get_hosts("kafka_app")
APP_PYTHON = "/opt/kafka-micro/venv/bin/python"
APP_CONFIG = "/etc/kafka-micro/kafka-micro.toml"

# Reads the app's configuration, applies the case's changes, tries one action, prints the outcome
# as JSON: {"ok": bool, "error": "KafkaError name or text"}.
PROBE = """
import json, sys, tomllib
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

case = json.loads(sys.argv[1])
topic, group = case["topic"], case["group"]
with open(case["config"], "rb") as handle:
    settings = tomllib.load(handle)
config = {"bootstrap.servers": settings["bootstrap_servers"], **settings["librdkafka"]}
if case["user"] == "producer":
    config.update(settings["producer"]["librdkafka"])
config.update(case.get("override", {}))
for key in case.get("remove", []):
    config.pop(key, None)
config.update({"socket.timeout.ms": 5000, "socket.connection.setup.timeout.ms": 5000})


def outcome(ok, error=""):
    print(json.dumps({"ok": ok, "error": "" if ok else str(error)}))
    sys.exit(0)


try:
    if case["action"] == "metadata":
        found = Producer(config).list_topics(timeout=10).topics.get(topic)
        outcome(found is not None and found.error is None, found.error if found else "no topic")
    if case["action"] == "produce":
        producer = Producer({**config, "message.timeout.ms": 10000})
        reports = []
        producer.produce(topic, b"security probe", on_delivery=lambda e, _: reports.append(e))
        producer.flush(15)
        # A KafkaError compares only with error codes: test for None by identity.
        delivered = len(reports) == 1 and reports[0] is None
        error = reports[0] if reports else "no delivery report"
        outcome(delivered, error.name() if hasattr(error, "name") else error)
    joins = case["action"] == "join"
    consumer = Consumer({**config, "group.id": group if joins else "security-probe",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    if joins:
        consumer.subscribe([topic])
    else:
        consumer.assign([TopicPartition(topic, 0, 0)])
    for _ in range(15):
        message = consumer.poll(1)
        if message is None:
            continue
        error = message.error()
        # A reader that joins no group still looks up its coordinator, which may be refused.
        if error is not None and error.name() == "GROUP_AUTHORIZATION_FAILED" and not joins:
            continue
        outcome(error is None, error.name() if error else "")
    outcome(False, "nothing consumed within 15 s")
except KafkaException as error:
    outcome(False, error.args[0].name())
"""
PROBE_FILE = "/tmp/kafka-micro-security-probe.py"
# Prints the SCRAM passwords the role rendered into the app's configuration, as a JSON list.
READ_PASSWORDS = (
    "import json, sys, tomllib; settings = tomllib.load(open(sys.argv[1], 'rb')); "
    "print(json.dumps([settings['librdkafka']['sasl.password'], "
    "settings['producer']['librdkafka']['sasl.password']]))"
)


@pytest.fixture(scope="module")
def app_host():
    host = testinfra.get_host(f"ansible://{APP_HOSTS[0]}", ansible_inventory=INVENTORY)
    encoded = base64.b64encode(PROBE.encode()).decode()
    assert host.run(f"echo {encoded} | base64 -d > {PROBE_FILE}").rc == 0
    return host


def probe(host, **case):
    case = {"topic": TOPIC, "group": GROUP, "config": APP_CONFIG, **case}
    result = host.run(f"{APP_PYTHON} {PROBE_FILE} {shlex.quote(json.dumps(case))}")
    assert result.rc == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_producer_may_write_the_topic(app_host):
    assert probe(app_host, user="producer", action="produce") == {"ok": True, "error": ""}


def test_the_consumer_may_read_the_topic(app_host):
    assert probe(app_host, user="consumer", action="read")["ok"]


def test_the_consumer_cannot_write(app_host):
    outcome = probe(app_host, user="consumer", action="produce")
    assert outcome == {"ok": False, "error": "TOPIC_AUTHORIZATION_FAILED"}


def test_only_the_consumer_may_write_the_dead_letter_topic(app_host):
    dead_letters = f"{TOPIC}.dlq"
    written = probe(app_host, user="consumer", action="produce", topic=dead_letters)
    assert written == {"ok": True, "error": ""}
    refused = probe(app_host, user="producer", action="produce", topic=dead_letters)
    assert refused == {"ok": False, "error": "TOPIC_AUTHORIZATION_FAILED"}


def test_the_producer_cannot_read(app_host):
    outcome = probe(app_host, user="producer", action="read")
    assert outcome == {"ok": False, "error": "TOPIC_AUTHORIZATION_FAILED"}


def test_the_producer_cannot_join_the_group(app_host):
    outcome = probe(app_host, user="producer", action="join")
    assert not outcome["ok"]
    assert outcome["error"] in {"GROUP_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED"}


@pytest.mark.parametrize(
    ("label", "override", "remove"),
    [
        ("plaintext", {"security.protocol": "PLAINTEXT"}, []),
        ("TLS without a user (anonymous)", {"security.protocol": "SSL"}, []),
        ("a wrong password", {"sasl.password": "not-the-password-1"}, []),
        ("no CA (the system's do not know the cluster CA)", {}, ["ssl.ca.location"]),
    ],
)
def test_a_client_without_valid_credentials_sees_no_topic(app_host, label, override, remove):
    outcome = probe(app_host, user="consumer", action="metadata", override=override, remove=remove)
    assert not outcome["ok"], label


@pytest.mark.parametrize("name", KAFKA_HOSTS)
def test_secrets_are_readable_by_the_kafka_group_only_and_not_on_command_lines(name):
    node = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
    for path in ("/etc/kafka/kafka-server-jaas.conf", "/etc/kafka/admin-client.properties"):
        secret = node.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "cp-kafka", 0o640), path
    key_store = node.file("/etc/kafka/tls/keystore.pem")
    assert (key_store.user, key_store.mode) == ("cp-kafka", 0o600)
    assert not node.file("/etc/kafka/format.args").exists
    assert "password" not in node.file("/etc/kafka/server.properties").content_string
    assert "password" not in node.run("ps -eo args").stdout


def test_kafka_micro_config_shows_the_login_but_not_the_password(app_host):
    settings = app_host.check_output(f"{APP_PYTHON} -c {shlex.quote(READ_PASSWORDS)} {APP_CONFIG}")
    passwords = json.loads(settings)
    shown = app_host.check_output(
        f"/opt/kafka-micro/venv/bin/kafka-micro --config {APP_CONFIG} config --json"
    )
    assert "kafka-micro-consumer" in shown
    for password in passwords:
        assert password not in shown


def test_no_password_is_in_any_journal_or_kafka_log(app_host):
    """Every password the roles rendered (the brokers', the admin's, the app's users') is looked
    for in the whole journal and Kafka's own logs of every host, after everything that logs."""
    passwords = json.loads(
        app_host.check_output(f"{APP_PYTHON} -c {shlex.quote(READ_PASSWORDS)} {APP_CONFIG}")
    )
    node = testinfra.get_host(f"ansible://{KAFKA_HOSTS[0]}", ansible_inventory=INVENTORY)
    for path, pattern in (
        ("/etc/kafka/kafka-server-jaas.conf", r'password="\K[^"]+'),
        ("/etc/kafka/admin-client.properties", r'password="\K[^"]+'),
    ):
        passwords += node.check_output(f"grep -oP '{pattern}' {path}").split()
    assert len(set(passwords)) == 4, "expected the broker, admin, producer and consumer passwords"
    patterns = " ".join(f"-e {shlex.quote(password)}" for password in set(passwords))
    for name in [*KAFKA_HOSTS, *APP_HOSTS]:
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
        logs = "journalctl --no-pager --output cat; cat /var/log/kafka/* 2>/dev/null"
        found = host.run(f"({logs}) | grep -c -F {patterns}")
        # grep -c prints 0 and exits 1 when nothing matches.
        assert found.stdout.strip() == "0", f"{name}: {found.stdout.strip()} lines hold a password"
