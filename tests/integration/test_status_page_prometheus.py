"""The status page's Prometheus reader against a real Prometheus (Debian's ``prometheus``).

Prometheus scrapes itself here, so its API answers with real series: the reader's queries and
its parsing of instant and range answers are checked against the real thing, and a Prometheus
without the brokers' series is named on the page rather than failing it.
"""

import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from apprunner import wait_until

from kafka_micro.status.prometheus import PrometheusClient, PrometheusError, read_prometheus

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A Prometheus scraping itself every second; its base URL once it has a few samples."""
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def scraped():
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?query=up", timeout=2) as answer:
                return b'"value"' in answer.read()
        except OSError:
            return False

    try:
        wait_until(scraped, 60, "Prometheus to scrape itself", 0.5)
        time.sleep(3)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_instant_and_range_answers_are_read(prometheus):
    client = PrometheusClient(prometheus, 5)
    (up,) = client.query('up{job="self"}')
    assert up.value == 1.0
    assert up.labels["job"] == "self"
    now = time.time()
    (series,) = client.series('up{job="self"}', now - 60, now, 1)
    assert len(series.points) >= 3
    assert all(value == 1.0 for _t, value in series.points)
    assert series.points == sorted(series.points)


def test_without_the_brokers_series_the_quorum_and_graphs_say_what_is_missing(prometheus):
    view = read_prometheus(prometheus, topic="test-topic", group_id="g", timeout_s=5, window_s=600)
    assert view.unreachable is None
    assert view.voters is None
    assert any("no kafka_raft_current_leader series" in p for p in view.problems), view.problems
    assert [graph.title for graph in view.graphs] == ["Throughput", "Consumer lag"]
    missing = [text for graph in view.graphs for text in graph.missing]
    assert any('kafka_server_topic_messages_in_total{topic="test-topic"}' in t for t in missing)


def test_a_bad_query_is_refused_with_prometheus_reason(prometheus):
    client = PrometheusClient(prometheus, 5)
    with pytest.raises(PrometheusError, match=r"HTTP 400: .*parse error"):
        client.query("sum(")
