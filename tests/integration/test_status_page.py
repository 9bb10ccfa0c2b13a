"""``kafka-micro status-page`` against a real broker with a producer and twelve consumers running.

The page is fetched over HTTP(S) like a browser would, and once with Debian's headless Chromium,
which must draw it; what it shows is checked against what Kafka itself says. No Prometheus runs
here unless a test starts one, so the page must say that it is unreachable and still render.
"""

import base64
import os
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from apprunner import App, balanced, wait_until

from kafka_micro.status.auth import hash_password
from kafka_micro_devtools.throwaway_tls import create_authority

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule" / "shared"))
import statuspage_browser as browser  # noqa: E402

pytestmark = pytest.mark.integration

PARTITIONS = 24
MEMBERS = 12
RATE = "400"
# The browser's screenshot is kept here for a look after the run (build/ is not committed).
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO / "build" / "test-artifacts"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url() -> str:
    """An http:// URL where nothing listens (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


def fetch(url, *, method="GET", headers=None, context=None, timeout=60.0):
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def start_page(app: App, name="status-page", **settings):
    """Start the page on a free port; return (process, base URL) once /healthz answers."""
    port = free_port()
    context = settings.pop("_context", None)
    settings.setdefault("status_page__prometheus_url", closed_port_url())
    process = app.start(name, "status-page", "--port", str(port), **settings)
    scheme = "https" if "status_page__tls_cert_file" in settings else "http"
    url = f"{scheme}://{'localhost' if scheme == 'https' else '127.0.0.1'}:{port}/"

    def healthy():
        if process.popen.poll() is not None:
            pytest.fail(f"the status page exited with {process.popen.returncode}:\n{process.log()}")
        try:
            return fetch(url + "healthz", context=context, timeout=5)[0] == 200
        except OSError:
            return False

    wait_until(healthy, 60, "the status page to answer /healthz")
    return process, url


def text_of(page: str, element_id: str) -> str:
    texts, _tables = browser.read_page(page)
    assert element_id in texts, f"no element {element_id!r} on the page:\n{page[:3000]}"
    return texts[element_id]


def partition_rows(page: str) -> list[list[str]]:
    _texts, tables = browser.read_page(page)
    return tables["partitions"][1:]


@pytest.fixture(scope="module")
def pipeline(broker, tmp_path_factory):
    """A 24-partition topic, a producer at 400 msg/s and twelve consumers owning two each."""
    app = App(broker.bootstrap, tmp_path_factory.mktemp("status-pipeline"))
    app.create_topic(PARTITIONS)
    consumers = [
        app.start(
            f"consumer-{n}",
            "consume",
            # Not HOST-N: a consumer named so would take metrics port 9410 + N.
            consumer__instance_id=f"status-m{n:02d}",
        )
        for n in range(1, MEMBERS + 1)
    ]
    app.start("producer", "produce", "--rate", RATE, producer__id="status-producer")
    wait_until(lambda: balanced(consumers, PARTITIONS), 180, "12 members owning 2 partitions each")
    yield app
    app.kill_all()


@pytest.fixture(scope="module")
def page(pipeline):
    """The page over plain HTTP, no authentication, Prometheus absent."""
    process, url = start_page(pipeline)
    yield url
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log()


def cluster_id_of(broker) -> str:
    meta = (broker.data_dir / "meta.properties").read_text()
    return re.search(r"^cluster\.id=(\S+)$", meta, re.M).group(1)


def every_partition_committed(url):
    """The page's body once it shows a committed offset for every partition, else None."""
    status, headers, body = fetch(url)
    if status == 200 and "no commit" not in body:
        return status, headers, body
    return None


def test_the_page_shows_the_cluster_topic_and_group_as_kafka_sees_them(pipeline, page, broker):
    status, headers, body = wait_until(
        lambda: every_partition_committed(page), 60, "a committed offset on every partition", 2
    )
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert '<meta http-equiv="refresh" content="15">' in body
    assert "<script" not in body

    assert text_of(body, "cluster-id") == cluster_id_of(broker)
    assert text_of(body, "brokers-up") == "1"
    assert text_of(body, "controller") == "1"
    assert text_of(body, "partition-count") == str(PARTITIONS)
    assert text_of(body, "under-replicated") == "0"
    assert text_of(body, "group-state") == "STABLE"
    assert text_of(body, "member-count") == str(MEMBERS)

    texts, tables = browser.read_page(body)
    members = tables["members"][1:]
    assert sorted(row[1] for row in members) == [f"status-m{n:02d}" for n in range(1, 13)]
    assert all(row[3] == "2" for row in members), members
    assigned = sorted(int(p) for row in members for p in row[4].split(", "))
    assert assigned == list(range(PARTITIONS))

    rows = partition_rows(body)
    assert [int(row[0]) for row in rows] == list(range(PARTITIONS))
    lags = []
    for partition, leader, replicas, isr, end, committed, lag in rows:
        assert (leader, replicas, isr) == ("1", "1", "1"), partition
        assert committed != "no commit", f"partition {partition} has no committed offset"
        assert browser.number(end) >= browser.number(committed) > 0
        assert browser.number(lag) == browser.number(end) - browser.number(committed)
        lags.append(browser.number(lag))
    assert browser.number(texts["total-lag"]) == sum(lags)
    # Each member's lag is that of its two partitions.
    lag_of = {int(row[0]): browser.number(row[6]) for row in rows}
    for row in members:
        assert browser.number(row[5]) == sum(lag_of[int(p)] for p in row[4].split(", "))


def test_every_view_reads_kafka_afresh(pipeline, page):
    """Nothing is cached between views: the producer's new messages show in the next one."""
    _status, _headers, first = fetch(page)
    first_end = sum(browser.number(row[4]) for row in partition_rows(first))
    time.sleep(3)
    _status, _headers, second = fetch(page)
    second_end = sum(browser.number(row[4]) for row in partition_rows(second))
    assert second_end > first_end, "the producer's messages do not show in the end offsets"
    assert text_of(second, "rendered-at") != text_of(first, "rendered-at")


def test_without_prometheus_the_page_says_so_and_still_renders(page):
    status, _headers, body = fetch(page)
    assert status == 200
    note = text_of(body, "prometheus-unreachable")
    assert note.startswith("Prometheus unreachable: http://127.0.0.1:")
    assert "Connection refused" in note
    assert text_of(body, "partition-count") == str(PARTITIONS)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_page_is_read_only(page, method):
    status, headers, body = fetch(page, method=method, headers={"Content-Length": "0"})
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert "Traceback" not in body


def test_head_healthz_and_unknown_paths(page):
    status, headers, body = fetch(page, method="HEAD")
    assert (status, body) == (200, "")
    assert int(headers["Content-Length"]) > 1000
    assert fetch(page + "healthz")[::2] == (200, "ok\n")
    assert fetch(page + "admin")[0] == 404


def test_an_unreachable_kafka_is_a_message_on_the_page_not_an_error(tmp_path):
    app = App(f"127.0.0.1:{free_port()}", tmp_path)
    try:
        process, url = start_page(app, status_page__request_timeout_s="2")
        started = time.monotonic()
        status, _headers, body = fetch(url)
        assert time.monotonic() - started < 15
        assert status == 200
        problems = text_of(body, "problems")
        assert "Kafka: could not read the cluster" in problems
        assert "Connection refused" in problems
        assert "Traceback" not in body
        assert process.stop() == 0
    finally:
        app.kill_all()


def test_basic_auth_and_tls(pipeline, tmp_path):
    authority = create_authority(tmp_path / "ca", "status-ca")
    keystore = authority.issue_server_keystore(tmp_path / "page.pem", "localhost")
    context = ssl.create_default_context(cafile=str(authority.certificate_file))
    process, url = start_page(
        pipeline,
        name="status-page-secured",
        status_page__tls_cert_file=str(keystore),
        status_page__tls_key_file=str(keystore),
        status_page__basic_auth_user="operator",
        status_page__basic_auth_password_hash=hash_password("right-password"),
        _context=context,
    )
    assert url.startswith("https://localhost:")

    def basic(user, password):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    status, headers, body = fetch(url, context=context)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Basic realm="kafka-micro status"')
    assert "cluster-id" not in body
    for headers in (basic("operator", "wrong"), basic("intruder", "right-password")):
        assert fetch(url, headers=headers, context=context)[0] == 401
    status, _headers, body = fetch(
        url, headers=basic("operator", "right-password"), context=context
    )
    assert status == 200
    assert text_of(body, "partition-count") == str(PARTITIONS)
    # Still read-only when authenticated.
    assert (
        fetch(url, method="POST", headers=basic("operator", "right-password"), context=context)[0]
        == 405
    )

    # Plain HTTP on the HTTPS port gets nothing.
    plain = url.replace("https://localhost", "http://127.0.0.1")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        fetch(plain, timeout=10)
    # A client that does not trust the certificate refuses it.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(url, context=ssl.create_default_context(), timeout=10)
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"status_page__tls_cert_file": "/nonexistent.pem"}, "tls_cert_file and tls_key_file go"),
        ({"status_page__basic_auth_user": "ops"}, "basic_auth_user and basic_auth_password_hash"),
        (
            {"status_page__basic_auth_user": "ops", "status_page__basic_auth_password_hash": "x"},
            "status_page.basic_auth_password_hash",
        ),
        (
            {
                "status_page__tls_cert_file": "/nonexistent.pem",
                "status_page__tls_key_file": "/nonexistent.pem",
            },
            "status_page.tls_cert_file",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_field(tmp_path, settings, expected):
    app = App("127.0.0.1:9", tmp_path)
    result = app.run("status-page", "--port", str(free_port()), timeout=60, **settings)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_a_real_browser_draws_the_page(pipeline, page):
    dom = browser.dump_dom(page)
    texts, tables = browser.read_page(dom)
    assert texts["partition-count"] == str(PARTITIONS)
    assert texts["member-count"] == str(MEMBERS)
    assert len(tables["members"]) == MEMBERS + 1
    assert len(tables["partitions"]) == PARTITIONS + 1
    assert browser.number(texts["total-lag"]) >= 0
    assert texts["prometheus-unreachable"].startswith("Prometheus unreachable")

    shot = browser.screenshot(page, ARTIFACTS / "status-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
