"""What the status page shows from Prometheus: the KRaft quorum and the last hour as series.

The metric names are those of the brokers' JMX exporter rules and of kafka-micro's own metrics;
``METRICS`` holds every one of them, so a renamed metric is changed in one place.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

_GRAPH_POINTS: Final = 120


@dataclass(frozen=True)
class MetricNames:
    """Names of the series the page queries, whatever Prometheus job scrapes them."""

    # The brokers' JMX exporter (roles/confluent_kafka/files/jmx-exporter.yml): raft-metrics,
    # one series per node, and MessagesInPerSec per topic as a counter.
    raft_state: str = "kafka_raft_current_state"
    raft_state_label: str = "state"
    raft_current_leader: str = "kafka_raft_current_leader"
    raft_current_epoch: str = "kafka_raft_current_epoch"
    raft_log_end_offset: str = "kafka_raft_log_end_offset"
    topic_messages_in: str = "kafka_server_topic_messages_in_total"
    topic_label: str = "topic"
    # kafka-micro's own (app/kafka_micro/metrics.py).
    delivered: str = "kafka_micro_delivered_messages_total"
    consumed: str = "kafka_micro_consumed_messages_total"
    consumer_lag: str = "kafka_micro_consumer_lag_messages"
    # The label Prometheus' targets give each Kafka node (kafka_cluster_metrics_targets);
    # without it a node is named by its instance (HOST:PORT).
    node_label: str = "node_id"


METRICS: Final = MetricNames()


class PrometheusError(Exception):
    """Prometheus could not be asked or did not answer; the message says why in one line."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class VoterView:
    node: str
    state: str
    """leader, follower, observer (a broker that is no voter), candidate, ... or ? if unknown."""
    leader_id: int | None
    epoch: int | None
    log_end_offset: int | None
    lag: int | None


@dataclass(frozen=True)
class Graph:
    title: str
    unit: str
    start: float
    end: float
    series: list[Series]
    missing: list[str] = field(default_factory=list)
    """Labels of the series Prometheus had no data for, each with its query."""


@dataclass
class PrometheusView:
    """One page view's reading of Prometheus; sections are None when they could not be read."""

    url: str | None
    leader_id: int | None = None
    epoch: int | None = None
    voters: list[VoterView] | None = None
    graphs: list[Graph] = field(default_factory=list)
    unreachable: str | None = None
    problems: list[str] = field(default_factory=list)


class PrometheusClient:
    """Instant and range queries over Prometheus' HTTP API, each bounded by ``timeout_s``."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url.rstrip("/")
        self._timeout_s = timeout_s

    def query(self, promql: str) -> list[Sample]:
        data = self._get("query", {"query": promql})
        return [
            Sample(item["metric"], _number(item["value"][1])) for item in _results(data, "vector")
        ]

    def series(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """A range query's series, one point per ``step`` seconds from ``start`` to ``end``."""
        data = self._get(
            "query_range",
            {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        found = []
        for item in _results(data, "matrix"):
            points = [(float(t), _number(v)) for t, v in item["values"]]
            name = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
            found.append(Series(name, [(t, v) for t, v in points if math.isfinite(v)]))
        return found

    def _get(self, endpoint: str, parameters: dict[str, str]) -> Any:  # noqa: ANN401 (JSON)
        url = f"{self._url}/api/v1/{endpoint}?{urllib.parse.urlencode(parameters)}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise PrometheusError(_api_error(error)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise PrometheusError(f"{self._url} unreachable: {reason}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{self._url} answered with no JSON: not Prometheus?") from None
        if not isinstance(document, dict) or document.get("status") != "success":
            raise PrometheusError(f"{self._url}: query failed: {_error_text(document)}")
        return document.get("data")


def _api_error(error: urllib.error.HTTPError) -> str:
    try:
        detail = _error_text(json.loads(error.read()))
    except (ValueError, OSError):
        detail = error.reason
    return f"{error.url}: HTTP {error.code}: {detail}"


def _error_text(document: object) -> str:
    if isinstance(document, dict):
        return str(document.get("error") or document.get("errorType") or "unknown error")
    return "unknown error"


def _results(data: object, kind: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("resultType") != kind:
        raise PrometheusError(f"expected a {kind} from Prometheus")
    results = data.get("result")
    return results if isinstance(results, list) else []


def _number(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return math.nan


def read_prometheus(
    url: str | None,
    *,
    topic: str,
    group_id: str,
    timeout_s: float,
    window_s: float,
    metrics: MetricNames = METRICS,
) -> PrometheusView:
    """The quorum now and the graphs of the last ``window_s``; never raises for Prometheus."""
    view = PrometheusView(url)
    if url is None:
        return view
    client = PrometheusClient(url, timeout_s)
    try:
        # Reachable at all? One cheap query first, so an absent Prometheus costs one try.
        client.query("vector(1)")
    except PrometheusError as error:
        view.unreachable = str(error)
        return view
    end = time.time()
    start = end - window_s
    step = max(window_s / _GRAPH_POINTS, 1.0)
    queries = _graph_queries(topic, group_id, metrics)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="prometheus") as pool:
        quorum = pool.submit(_read_quorum, client, metrics)
        ranges = {
            (title, label): pool.submit(client.series, promql, start, end, step)
            for title, label, promql in queries
        }
        try:
            view.leader_id, view.epoch, view.voters = quorum.result()
        except PrometheusError as error:
            view.problems.append(f"Prometheus: could not read the KRaft quorum: {error}")
        view.graphs = [Graph(title, unit, start, end, []) for title, unit in _GRAPHS.items()]
        by_title = {graph.title: graph for graph in view.graphs}
        for (title, label, promql), future in zip(queries, ranges.values(), strict=True):
            try:
                found = [s for s in future.result() if s.points]
            except PrometheusError as error:
                view.problems.append(f"Prometheus: could not read {label}: {error}")
                continue
            if not found:
                by_title[title].missing.append(f"{label}: {promql}")
            by_title[title].series.extend(Series(label, s.points) for s in found)
    return view


_THROUGHPUT: Final = "Throughput"
_LAG: Final = "Consumer lag"
_GRAPHS: Final = {_THROUGHPUT: "messages/s", _LAG: "messages"}


def _graph_queries(topic: str, group_id: str, metrics: MetricNames) -> list[tuple[str, str, str]]:
    """(graph title, series label, PromQL) of every series drawn."""
    of_topic = f'{{{metrics.topic_label}="{_quoted(topic)}"}}'
    return [
        (
            _THROUGHPUT,
            "into the topic (brokers)",
            f"sum(rate({metrics.topic_messages_in}{of_topic}[2m]))",
        ),
        (_THROUGHPUT, "delivered (producers)", f"sum(rate({metrics.delivered}[2m]))"),
        (_THROUGHPUT, "consumed (consumers)", f"sum(rate({metrics.consumed}[2m]))"),
        (_LAG, f"lag of group {group_id}", f"sum({metrics.consumer_lag}{of_topic})"),
    ]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _read_quorum(
    client: PrometheusClient, metrics: MetricNames
) -> tuple[int | None, int | None, list[VoterView]]:
    leaders = client.query(metrics.raft_current_leader)
    if not leaders:
        raise PrometheusError(
            f"no {metrics.raft_current_leader} series (are the brokers' exporters scraped?)"
        )
    nodes = {_node(s.labels, metrics): s for s in leaders}
    epochs = {_node(s.labels, metrics): s.value for s in client.query(metrics.raft_current_epoch)}
    ends = {_node(s.labels, metrics): s.value for s in client.query(metrics.raft_log_end_offset)}
    states = {
        _node(s.labels, metrics): s.labels.get(metrics.raft_state_label, "?")
        for s in client.query(f"{metrics.raft_state} == 1")
    }
    votes: dict[int, int] = {}
    for sample in leaders:
        if sample.value >= 0:
            votes[int(sample.value)] = votes.get(int(sample.value), 0) + 1
    # The node most nodes name; the one calling itself leader if they are split.
    leader_id = max(votes, key=lambda node: votes[node]) if votes else None
    named_leader = [node for node, state in states.items() if state == "leader"]
    if leader_id is None and named_leader:
        leader_id = _int_or_none(named_leader[0])
    leader_end = ends.get(str(leader_id)) if leader_id is not None else None
    if leader_end is None and named_leader:
        leader_end = ends.get(named_leader[0])
    voters = []
    for node in sorted(nodes, key=_sort_key):
        end_offset = ends.get(node)
        lag = (
            max(int(leader_end - end_offset), 0)
            if leader_end is not None and end_offset is not None
            else None
        )
        current = nodes[node].value
        voters.append(
            VoterView(
                node=node,
                state=states.get(node, "?"),
                leader_id=int(current) if current >= 0 else None,
                epoch=_int(epochs.get(node)),
                log_end_offset=_int(end_offset),
                lag=lag,
            )
        )
    epoch = max((v.epoch for v in voters if v.epoch is not None), default=None)
    return leader_id, epoch, voters


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _node(labels: Mapping[str, str], metrics: MetricNames) -> str:
    return labels.get(metrics.node_label) or labels.get("instance") or "?"


def _sort_key(node: str) -> tuple[int, str]:
    return (int(node), "") if node.isdigit() else (1 << 30, node)


def _int(value: float | None) -> int | None:
    return int(value) if value is not None and math.isfinite(value) else None
