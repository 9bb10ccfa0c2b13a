"""The status page on a secured cluster: it reads as a principal of its own, ``monitor``.

What that principal needs is found here against a real SASL_SSL broker with Kafka's
StandardAuthorizer: Describe on the topic and Describe on the group, nothing on the cluster
(DescribeCluster needs no ACL). Whatever it lacks is said on the page, which still renders.
"""

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from apprunner import App, wait_until
from test_status_page import fetch, start_page, text_of

from kafka_micro_devtools.localbroker import LocalBroker

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule" / "shared"))
import statuspage_browser as browser  # noqa: E402

pytestmark = pytest.mark.integration

MONITOR = "monitor"
PARTITIONS = 3


@pytest.fixture(scope="module")
def secured(kafka_home, tmp_path_factory):
    """A SASL_SSL broker with a monitor user that has no ACL yet, and a running pipeline."""
    work = tmp_path_factory.mktemp("status-secured")
    with LocalBroker(kafka_home, work / "broker", secured=True) as broker:
        broker.grant_pipeline("test-topic-", "group-", prefixed=True)
        password = secrets.token_hex(16)
        run_tool(
            broker,
            "kafka-configs",
            "--alter",
            "--add-config",
            f"SCRAM-SHA-512=[password={password}]",
            "--entity-type",
            "users",
            "--entity-name",
            MONITOR,
        )
        app = App(broker.bootstrap, work)
        as_user = {u: json.dumps(broker.client_properties(u)) for u in ("admin", "producer")}
        as_user["consumer"] = json.dumps(broker.client_properties("consumer"))
        as_user[MONITOR] = json.dumps(
            {
                **broker.client_properties("consumer"),
                "sasl.username": MONITOR,
                "sasl.password": password,
            }
        )
        created = app.run("topic", "--partitions", str(PARTITIONS), librdkafka=as_user["admin"])
        assert created.returncode == 0, created.stderr
        consumer = app.start("consumer", "consume", librdkafka=as_user["consumer"])
        app.start("producer", "produce", "--rate", "100", librdkafka=as_user["producer"])
        wait_until(
            lambda: consumer.owned() == list(range(PARTITIONS)), 120, "the consumer's assignment"
        )
        yield broker, app, as_user
        app.kill_all()


def run_tool(broker, tool, *args):
    admin = str(broker.security.admin_tool_properties())
    command = [str(broker.kafka_home / "bin" / tool), "--bootstrap-server", broker.bootstrap]
    result = subprocess.run(
        [*command, "--command-config", admin, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def grant_monitor(broker, app, *resources):
    for resource in resources:
        name = app.topic if resource == "--topic" else app.group
        run_tool(
            broker,
            "kafka-acls",
            "--add",
            "--allow-principal",
            f"User:{MONITOR}",
            "--operation",
            "Describe",
            resource,
            name,
        )


def page_as(app, librdkafka):
    process, url = start_page(
        app, name=f"status-page-{secrets.token_hex(3)}", librdkafka=librdkafka
    )
    return process, url


def test_the_page_needs_describe_on_the_topic_and_the_group_and_nothing_more(secured):
    broker, app, as_user = secured
    process, url = page_as(app, as_user[MONITOR])

    # No ACL: the cluster is shown (DescribeCluster needs none), the rest is named as denied.
    status, _headers, body = fetch(url)
    assert status == 200
    problems = text_of(body, "problems")
    assert f"could not read topic '{app.topic}': not authorized for the topic" in problems
    assert f"could not read group '{app.group}': not authorized for the group" in problems
    assert text_of(body, "brokers-up") == "1"
    assert text_of(body, "cluster-id")
    assert "SASL_SSL as monitor" in body

    grant_monitor(broker, app, "--topic")
    status, _headers, body = fetch(url)
    assert text_of(body, "partition-count") == str(PARTITIONS)
    assert "not authorized for the topic" not in text_of(body, "problems")
    assert "not authorized for the group" in text_of(body, "problems")

    grant_monitor(broker, app, "--group")

    def everything_shown():
        status, _headers, body = fetch(url)
        texts, _tables = browser.read_page(body)
        return status == 200 and "problems" not in texts and "no commit" not in body and body

    body = wait_until(everything_shown, 60, "the page with no problem and every offset", 2)
    assert text_of(body, "member-count") == "1"
    assert text_of(body, "group-state") == "STABLE"
    assert browser.number(text_of(body, "total-lag")) >= 0
    assert process.stop() == 0
    assert "Traceback" not in process.log()


def test_a_wrong_password_is_named_on_the_page(secured):
    _broker, app, as_user = secured
    wrong = json.dumps({**json.loads(as_user[MONITOR]), "sasl.password": "wrong-password"})
    process, url = page_as(app, wrong)
    status, _headers, body = fetch(url)
    assert status == 200
    problems = text_of(body, "problems")
    assert "authentication failed for user 'monitor'" in problems, problems
    assert process.stop() == 0
    assert "Traceback" not in process.log()
