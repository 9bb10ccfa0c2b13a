"""The status page's pieces without a broker: settings, password hashes, charts, HTML, and the
Prometheus reader against a small HTTP server that answers as Prometheus' API does."""

import base64
import itertools
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from kafka_micro import config_output
from kafka_micro.settings import ConfigError, load_settings, settings_from
from kafka_micro.status.auth import BasicAuth, hash_password, password_matches
from kafka_micro.status.kafka_view import (
    BrokerView,
    ClusterView,
    GroupView,
    KafkaView,
    MemberView,
    PartitionView,
)
from kafka_micro.status.page import PageContext, render_page
from kafka_micro.status.prometheus import METRICS, Graph, PrometheusView, Series, read_prometheus
from kafka_micro.status.svg import format_value, line_chart, nice_ticks

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "molecule" / "shared"))
import statuspage_browser as browser  # noqa: E402

FAST = 100_000  # the fewest PBKDF2 iterations allowed: keeps these tests quick


# --- settings ---


def test_defaults_are_off_and_local():
    page = settings_from({}).status_page
    assert (page.bind_address, page.port, page.refresh_s) == ("127.0.0.1", 8080, 15)
    assert page.prometheus_url == "http://127.0.0.1:9090"
    assert not page.tls and not page.basic_auth


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"port": 0}, "status_page.port", "greater than or equal to 1"),
        ({"bind_address": "localhost"}, "status_page.bind_address", "not a host name"),
        ({"prometheus_url": "ftp://x"}, "status_page.prometheus_url", "http:// or https://"),
        ({"tls_cert_file": "/a.pem"}, "status_page", "tls_cert_file and tls_key_file go"),
        ({"basic_auth_user": "ops"}, "status_page", "basic_auth_user and basic_auth_password_hash"),
        ({"basic_auth_password_hash": "plain"}, "status_page.basic_auth_password_hash", "pbkdf2"),
        ({"refresh_s": 1}, "status_page.refresh_s", "greater than or equal to 2"),
        ({"colour": "red"}, "status_page.colour", "unknown setting"),
    ],
)
def test_bad_settings_name_the_field(tmp_path, values, field, message):
    config = tmp_path / "kafka-micro.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    config.write_text("[status_page]\n" + "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert field in str(raised.value)
    assert message in str(raised.value)


def test_a_weak_hash_is_refused():
    weak = hash_password("x", iterations=FAST).replace(f"${FAST}$", "$1000$")
    with pytest.raises(ConfigError, match="iterations must be a number >= 100000"):
        load_settings(None, {"status_page": {"basic_auth_password_hash": weak}})


def test_the_password_hash_is_never_shown_by_config():
    password_hash = hash_password("secret", iterations=FAST)
    settings = settings_from(
        {"status_page": {"basic_auth_user": "ops", "basic_auth_password_hash": password_hash}}
    )
    assert settings.status_page.basic_auth_password_hash == password_hash
    for text in (config_output.to_toml(settings), config_output.to_json(settings)):
        assert password_hash not in text
        assert "<redacted>" in text


def test_file_settings_print_as_json(tmp_path):
    settings = settings_from(
        {"status_page": {"tls_cert_file": "/etc/c.pem", "tls_key_file": "/etc/k.pem"}}
    )
    assert json.loads(config_output.to_json(settings))["status_page"]["tls_key_file"] == (
        "/etc/k.pem"
    )


# --- password hashes and basic auth ---


def test_hash_and_check():
    password_hash = hash_password("correct horse", iterations=FAST)
    assert password_matches("correct horse", password_hash)
    assert not password_matches("correct horse ", password_hash)
    assert hash_password("same", b"saltsalt", FAST) == hash_password("same", b"saltsalt", FAST)
    assert hash_password("same", iterations=FAST) != hash_password("same", iterations=FAST)


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_accepts_only_the_user_and_password():
    auth = BasicAuth("ops", hash_password("pa:ss wörd", iterations=FAST))
    assert auth.allows(_basic("ops", "pa:ss wörd"))
    assert auth.allows(_basic("ops", "pa:ss wörd"))  # remembered, still right
    for header in (
        None,
        "",
        "Basic",
        "Basic !!!not-base64",
        "Bearer abc",
        _basic("ops", "wrong"),
        _basic("Ops", "pa:ss wörd"),
        _basic("ops", "pa:ss wörd" + "x"),
    ):
        assert not auth.allows(header), header


# --- charts ---


def test_ticks_are_round_and_cover_the_top():
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(950) == [0.0, 500.0, 1000.0]
    assert nice_ticks(1200) == [0.0, 500.0, 1000.0, 1500.0]
    for top in (0.3, 7, 42, 999, 12_345, 2.5e6):
        ticks = nice_ticks(top)
        assert ticks[0] == 0 and ticks[-1] >= top
        steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1


def test_values_are_short():
    assert [format_value(v) for v in (0, 7.5, 950, 1500, 2_000_000)] == [
        "0",
        "7.5",
        "950",
        "1.5k",
        "2M",
    ]


def test_a_chart_breaks_its_line_at_gaps_and_escapes_its_labels():
    points = [(0.0, 1.0), (30.0, 2.0), (60.0, 3.0), (600.0, 4.0), (630.0, 5.0), (900.0, 1.0)]
    graph = Graph("A <b>", "msg/s", 0.0, 900.0, [Series("s", points)])
    svg = line_chart(graph, gap_s=90)
    assert svg.count("<polyline") == 2  # 0-60 and 600-630
    assert svg.count("<circle") == 1  # 900 alone
    assert "<b>" not in svg and "A &lt;b&gt;" in svg


# --- the page ---


def _kafka_view(**changes):
    partitions = [
        PartitionView(0, 1, [1, 2, 3], [1, 2, 3], end_offset=1000, committed=900),
        PartitionView(1, 2, [2, 3, 1], [2, 3], end_offset=500, committed=None),
        PartitionView(2, 3, [3, 1, 2], [3, 1, 2], end_offset=10, committed=10),
    ]
    view = KafkaView(
        topic="test-topic",
        group_id="kafka-micro",
        cluster=ClusterView(
            "AbCdEf", 2, [BrokerView(n, f"kafka-{n}", 9092, None) for n in (1, 2, 3)]
        ),
        partitions=partitions,
        group=GroupView(
            "kafka-micro",
            "STABLE",
            "CONSUMER",
            1,
            [
                MemberView("m1", "kafka-micro-consumer-app-1-1", "/10.0.0.5", "app-1-1", [0, 1]),
                MemberView("m2", "kafka-micro-consumer-app-1-2", "/10.0.0.5", "app-1-2", [2]),
            ],
        ),
        offsets_read=True,
    )
    for name, value in changes.items():
        setattr(view, name, value)
    return view


def _render(kafka, prometheus=None):
    context = PageContext(15, 0.0, "kafka-1:9092", "SASL_SSL as kafka-micro-monitor")
    return render_page(context, kafka, prometheus or PrometheusView(None))


def test_the_page_shows_partitions_members_and_lag():
    texts, tables = browser.read_page(_render(_kafka_view()))
    assert texts["cluster-id"] == "AbCdEf"
    assert (texts["controller"], texts["brokers-up"]) == ("2", "3")
    assert (texts["partition-count"], texts["under-replicated"]) == ("3", "1")
    assert texts["member-count"] == "2"
    assert texts["total-lag"] == "100"
    rows = tables["partitions"]
    assert rows[2] == ["1", "2", "2, 3, 1", "2, 3", "500", "no commit", "-"]
    assert tables["members"][1][-1] == "100"
    assert "problems" not in texts


def test_under_replicated_partitions_are_highlighted():
    html = _render(_kafka_view())
    assert html.count("<tr class='under'>") == 1


def test_every_value_is_escaped():
    view = _kafka_view(topic="<script>alert(1)</script>")
    view.problems.append("Kafka: <img src=x onerror=alert(1)>")
    html = _render(view)
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_a_missing_section_is_said_not_left_out():
    view = _kafka_view(cluster=None, partitions=None, group=None, offsets_read=False)
    view.problems.append("Kafka: could not read the cluster: no answer within 5 s")
    texts, _tables = browser.read_page(_render(view))
    assert "could not read the cluster" in texts["problems"]
    assert texts["total-lag"] == "unknown"


def test_a_group_that_does_not_exist():
    view = _kafka_view(group=GroupView("kafka-micro", "DEAD", "CLASSIC", 1, []))
    texts, _tables = browser.read_page(_render(view))
    assert texts["group-state"] == "The group does not exist."


# --- Prometheus, through its HTTP API ---


class _FakePrometheusApi(BaseHTTPRequestHandler):
    """Answers /api/v1/query and /api/v1/query_range from the server's ``answers``."""

    def do_GET(self):
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)["query"][0]
        self.server.asked.append(query)
        kind = "matrix" if parts.path.endswith("query_range") else "vector"
        result = self.server.answers(query, kind)
        status = 400 if result is None else 200
        body = (
            {"status": "error", "errorType": "bad_data", "error": "parse error"}
            if result is None
            else {"status": "success", "data": {"resultType": kind, "result": result}}
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def prometheus_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakePrometheusApi)
    server.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _quorum_answers(query, kind):
    nodes = {
        "1": ("leader", 120),
        "2": ("follower", 118),
        "3": ("follower", 90),
        "4": ("observer", 120),
    }

    def vector(values):
        return [
            {"metric": {"node_id": n, "instance": f"kafka-{n}:9404"}, "value": [0, str(v)]}
            for n, v in values.items()
        ]

    if kind == "matrix":
        if METRICS.topic_messages_in in query:
            return [{"metric": {}, "values": [[1000 + 30 * i, "250.5"] for i in range(10)]}]
        return []
    if query == "vector(1)":
        return [{"metric": {}, "value": [0, "1"]}]
    if query.startswith(METRICS.raft_current_leader):
        return vector({n: 1 for n in nodes})
    if query.startswith(METRICS.raft_current_epoch):
        return vector({n: 7 for n in nodes})
    if query.startswith(METRICS.raft_log_end_offset):
        return vector({n: end for n, (_state, end) in nodes.items()})
    if query.startswith(METRICS.raft_state):
        return [
            {"metric": {"node_id": n, "state": state}, "value": [0, "1"]}
            for n, (state, _end) in nodes.items()
        ]
    return None


def test_the_quorum_and_graphs_from_prometheus(prometheus_api):
    prometheus_api.answers = _quorum_answers
    url = f"http://127.0.0.1:{prometheus_api.server_address[1]}"
    view = read_prometheus(url, topic="test-topic", group_id="g", timeout_s=5, window_s=3600)
    assert view.unreachable is None and view.problems == []
    assert (view.leader_id, view.epoch) == (1, 7)
    assert [(v.node, v.state, v.lag) for v in view.voters] == [
        ("1", "leader", 0),
        ("2", "follower", 2),
        ("3", "follower", 30),
        ("4", "observer", 0),
    ]
    throughput, lag = view.graphs
    assert [s.name for s in throughput.series] == ["into the topic (brokers)"]
    assert len(throughput.missing) == 2 and len(lag.missing) == 1
    assert any('topic="test-topic"' in query for query in prometheus_api.asked)

    texts, tables = browser.read_page(_render(_kafka_view(), view))
    assert texts["quorum-leader"] == "1"
    assert texts["voter-count"] == "3"
    assert tables["quorum"][3][:4] == ["3", "follower", "90", "30"]
    assert "into the topic (brokers): 250" in _render(_kafka_view(), view)


def test_a_failing_query_is_a_problem_not_an_error(prometheus_api):
    prometheus_api.answers = lambda query, kind: [] if query == "vector(1)" else None
    url = f"http://127.0.0.1:{prometheus_api.server_address[1]}"
    view = read_prometheus(url, topic="t", group_id="g", timeout_s=5, window_s=3600)
    assert view.unreachable is None
    assert any("KRaft quorum" in p and "HTTP 400: parse error" in p for p in view.problems)
    texts, _tables = browser.read_page(_render(_kafka_view(), view))
    assert "parse error" in texts["problems"]


def test_an_absent_prometheus_is_asked_once():
    with ThreadingHTTPServer(("127.0.0.1", 0), _FakePrometheusApi) as server:
        port = server.server_address[1]
    view = read_prometheus(
        f"http://127.0.0.1:{port}", topic="t", group_id="g", timeout_s=2, window_s=3600
    )
    assert "Connection refused" in view.unreachable
    assert view.graphs == [] and view.voters is None
