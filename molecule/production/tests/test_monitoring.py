"""The monitoring host: Prometheus scrapes every exporter the inventory describes, its rules load,
an alert fires when a consumer stops, and the status page shows the pipeline in a real browser.

The scenario shortens the scrape and evaluation intervals (5 s) and the target-down window (10 s).
"""

import json
import os
import time
from pathlib import Path
from shlex import quote
from urllib.parse import quote as url_quote

import pytest
import statuspage_browser as browser
import testinfra
import testinfra.utils.ansible_runner
from groupstate import INSTANCES, PARTITIONS

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
KAFKA_HOSTS = RUNNER.get_hosts("kafka")
APP_HOSTS = RUNNER.get_hosts("kafka_app")
MONITOR = RUNNER.get_hosts("monitoring")[0]
# The generated basic auth password of the page, kept beside the inventory (kafka_status_page).
CREDENTIALS = Path(INVENTORY).parent / "credentials"
# Where CI keeps what a test saw (ignored by git).
ARTIFACTS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".ci-logs"
# Bounds for a loaded 2-core machine, not expectations.
TARGETS_UP_TIMEOUT_S = 240
ALERT_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def monitor():
    return testinfra.get_host(f"ansible://{MONITOR}", ansible_inventory=INVENTORY)


# The hosts are minimal Debian without curl: their Python asks instead.
HTTP_GET = """
import base64, json, ssl, sys, urllib.error, urllib.request
url, cafile, auth = sys.argv[1:4]
request = urllib.request.Request(url)
if auth:
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
context = ssl.create_default_context(cafile=cafile) if cafile else None
try:
    with urllib.request.urlopen(request, timeout=30, context=context) as answer:
        print(json.dumps([answer.status, answer.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, ""]))
"""


def http_get(host, url, cafile="", auth=""):
    """(status, body) of a GET of ``url`` made on ``host``."""
    result = host.run(
        "python3 -c " + quote(HTTP_GET) + f" {quote(url)} {quote(cafile)} {quote(auth)}"
    )
    assert result.rc == 0, result.stderr[-2000:]
    return tuple(json.loads(result.stdout))


def prometheus_api(monitor, path):
    """The ``data`` of Prometheus' answer to ``path``, asked on the monitoring host."""
    status, body = http_get(monitor, f"http://127.0.0.1:9090{path}")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(what, check, timeout_s):
    """``check()``'s first truthy answer; fails with its last answer after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {timeout_s} s; last seen: {found!r}")
        time.sleep(3)


def test_promtool_accepts_the_configuration_and_its_rules(monitor):
    result = monitor.run("promtool check config /etc/prometheus/prometheus.yml")
    assert result.rc == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_scrapes_every_exporter_and_each_is_up(monitor):
    expected = (
        {f"{name}:9404" for name in KAFKA_HOSTS}
        | {f"{name}:{9410 + offset}" for name in APP_HOSTS for offset in range(INSTANCES + 1)}
        | {f"{name}:9100" for name in [*KAFKA_HOSTS, *APP_HOSTS, MONITOR]}
    )

    def targets_down():
        active = prometheus_api(monitor, "/api/v1/targets?state=active")["activeTargets"]
        health = {target["labels"]["instance"]: target["health"] for target in active}
        missing = expected - set(health)
        down = {instance: state for instance, state in health.items() if state != "up"}
        return (missing, down)

    wait_for("every target up", lambda: targets_down() == (set(), {}) or None, TARGETS_UP_TIMEOUT_S)
    missing, down = targets_down()
    assert (missing, down) == (set(), {})


def series_count(monitor, query):
    return len(prometheus_api(monitor, f"/api/v1/query?query={query}")["result"])


def test_the_brokers_and_the_app_report_what_the_alerts_read(monitor):
    # One series per node, and the lag of every partition the twelve consumers own.
    assert series_count(monitor, "kafka_server_replica_manager_under_replicated_partitions") == 3
    assert series_count(monitor, "kafka_controller_active_controller_count") == 3
    wait_for(
        "the consumers' lag of all 24 partitions",
        lambda: series_count(monitor, "kafka_micro_consumer_lag_messages") >= PARTITIONS or None,
        TARGETS_UP_TIMEOUT_S,
    )
    leaders = prometheus_api(
        monitor, "/api/v1/query?query=sum(kafka_controller_active_controller_count)"
    )
    assert float(leaders["result"][0]["value"][1]) == 1


def firing_target_down_alerts(monitor):
    alerts = prometheus_api(monitor, "/api/v1/alerts")["alerts"]
    return {
        alert["labels"]["instance"]
        for alert in alerts
        if alert["labels"]["alertname"] == "KafkaMicroTargetDown" and alert["state"] == "firing"
    }


def test_a_stopped_consumer_fires_its_alert_which_clears_once_it_is_back(monitor):
    app_host = testinfra.get_host(f"ansible://{APP_HOSTS[0]}", ansible_inventory=INVENTORY)
    instance = f"{APP_HOSTS[0]}:9413"
    assert instance not in firing_target_down_alerts(monitor)
    app_host.check_output("systemctl stop kafka-consumer@3.service")
    try:
        wait_for(
            f"KafkaMicroTargetDown firing for {instance}",
            lambda: instance in firing_target_down_alerts(monitor) or None,
            ALERT_TIMEOUT_S,
        )
        assert firing_target_down_alerts(monitor) == {instance}
    finally:
        app_host.check_output("systemctl start kafka-consumer@3.service")
    wait_for(
        f"KafkaMicroTargetDown cleared for {instance}",
        lambda: instance not in firing_target_down_alerts(monitor) or None,
        ALERT_TIMEOUT_S,
    )


def page_password():
    return (CREDENTIALS / "status-page-operator.txt").read_text().strip()


def test_the_status_page_asks_for_a_login_over_tls_of_the_cluster_ca():
    """Read from an app host, which trusts the cluster CA: no login, no page."""
    app_host = testinfra.get_host(f"ansible://{APP_HOSTS[0]}", ansible_inventory=INVENTORY)
    url = f"https://{MONITOR}:8080/"
    ca = "/etc/kafka-micro/tls/ca.crt"
    assert http_get(app_host, url, ca)[0] == 401
    assert http_get(app_host, url, ca, "operator:wrong-password")[0] == 401
    status, body = http_get(app_host, url, ca, f"operator:{page_password()}")
    assert status == 200
    assert "id='partition-count'>24<" in body


def test_a_real_browser_shows_the_cluster_its_topic_and_the_twelve_consumers(monitor):
    address = monitor.interface("eth0").addresses[0]
    url = f"https://operator:{url_quote(page_password())}@{address}:8080/"

    def rendered_with_quorum():
        texts, tables = browser.read_page(browser.dump_dom(url, insecure_tls=True))
        return (texts, tables) if texts.get("voter-count") == "3" else None

    texts, tables = wait_for("the page with the KRaft quorum", rendered_with_quorum, 120)
    assert texts["brokers-up"] == "3"
    assert texts["quorum-leader"] in {"1", "2", "3"}
    assert texts["partition-count"] == str(PARTITIONS)
    assert texts["under-replicated"] == "0"
    assert texts["member-count"] == str(len(APP_HOSTS) * INSTANCES)
    assert browser.number(texts["total-lag"]) >= 0
    assert len(tables["partitions"]) == PARTITIONS + 1
    assert len(tables["members"]) == len(APP_HOSTS) * INSTANCES + 1

    shot = browser.screenshot(url, ARTIFACTS / "status-page.png", insecure_tls=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
