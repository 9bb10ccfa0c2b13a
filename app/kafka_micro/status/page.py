"""The status page's HTML: one document, no script, every value escaped.

Elements that tests and operators' scripts read carry ids: ``cluster-id``, ``controller``,
``brokers-up``, ``partition-count``, ``under-replicated``, ``group-state``, ``member-count``,
``total-lag``, ``quorum-leader``, ``prometheus-unreachable``, ``problems``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape
from typing import Final

from kafka_micro.status.kafka_view import GroupView, KafkaView, PartitionView
from kafka_micro.status.prometheus import Graph, PrometheusView
from kafka_micro.status.svg import COLOURS, format_value, line_chart

_STYLE: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #666; } .facts span { margin-right: 18px; }
table { border-collapse: collapse; margin-top: 4px; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.under td { background: #fde2e2; } .bad { color: #b00020; font-weight: 600; }
.note { background: #fff4d6; border: 1px solid #e6c96b; padding: 6px 10px; margin: 8px 0; }
.problems { background: #fde2e2; border: 1px solid #d88; padding: 6px 10px; }
.columns { display: flex; flex-wrap: wrap; gap: 0 40px; align-items: flex-start; }
.graph { width: 560px; }
.legend span { margin-right: 14px; } .swatch { display: inline-block; width: 12px;
 height: 3px; vertical-align: middle; margin-right: 4px; }
"""


@dataclass(frozen=True)
class PageContext:
    """What the page says about itself, next to the data."""

    refresh_s: int
    rendered_at: float
    bootstrap_servers: str
    secured: str


def render_page(context: PageContext, kafka: KafkaView, prometheus: PrometheusView) -> str:
    """The whole HTML document."""
    rendered = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(context.rendered_at))
    sections = [
        _problems(kafka.problems + prometheus.problems),
        f"<div class='columns'><div>{_cluster(kafka)}</div><div>{_quorum(prometheus)}</div></div>",
        _graphs(prometheus),
        f"<div class='columns'><div>{_topic(kafka)}</div><div>{_group(kafka)}</div></div>",
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{context.refresh_s}">'
        f"<title>kafka-micro: {escape(kafka.topic)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>kafka-micro status: topic {escape(kafka.topic)}, group "
        f"{escape(kafka.group_id)}</h1>"
        f'<p class="meta">Rendered <time id="rendered-at">{rendered}</time>; '
        f"reloads every {context.refresh_s} s. Read-only. Kafka {escape(context.bootstrap_servers)}"
        f" ({escape(context.secured)}), Prometheus "
        f"{escape(prometheus.url or 'not configured')}.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _problems(problems: list[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
    return f'<div class="problems" id="problems"><strong>Not shown:</strong><ul>{items}</ul></div>'


def _cluster(kafka: KafkaView) -> str:
    cluster = kafka.cluster
    if cluster is None:
        return "<h2>Cluster</h2><p class='note'>The cluster could not be read (see above).</p>"
    rows = "".join(
        f"<tr><td class='num'>{b.node_id}</td><td>{escape(b.host)}:{b.port}</td>"
        f"<td>{escape(b.rack or '')}</td>"
        f"<td>{'controller' if b.node_id == cluster.controller_id else ''}</td></tr>"
        for b in cluster.brokers
    )
    return (
        "<h2>Cluster</h2><p class='facts'>"
        f"<span>Cluster id <code id='cluster-id'>{escape(cluster.cluster_id or '?')}</code></span>"
        f"<span>Controller (as brokers see it) <b id='controller'>"
        f"{_id(cluster.controller_id)}</b></span>"
        f"<span>Brokers up <b id='brokers-up'>{len(cluster.brokers)}</b></span></p>"
        "<table id='brokers'><tr><th>Broker</th><th>Address</th><th>Rack</th><th></th></tr>"
        f"{rows}</table>"
    )


def _quorum(prometheus: PrometheusView) -> str:
    head = "<h2>KRaft quorum</h2>"
    if prometheus.url is None:
        return head + "<p class='note'>No Prometheus configured (status_page.prometheus_url).</p>"
    if prometheus.unreachable is not None:
        return (
            head + f"<p class='note' id='prometheus-unreachable'>Prometheus unreachable: "
            f"{escape(prometheus.unreachable)}. The quorum and the graphs need it; the rest of "
            "this page comes from Kafka's Admin API.</p>"
        )
    if prometheus.voters is None:
        return head + "<p class='note'>The quorum could not be read (see above).</p>"
    voters = [v for v in prometheus.voters if v.state != "observer"]
    rows = "".join(
        f"<tr><td>{escape(v.node)}</td><td>{escape(v.state)}</td>"
        f"<td class='num'>{_number(v.log_end_offset)}</td>"
        f"<td class='num{' bad' if v.lag else ''}'>{_number(v.lag)}</td>"
        f"<td class='num'>{_number(v.epoch)}</td><td class='num'>{_id(v.leader_id)}</td></tr>"
        for v in prometheus.voters
    )
    return (
        head + "<p class='facts'>"
        f"<span>Leader <b id='quorum-leader'>{_id(prometheus.leader_id)}</b></span>"
        f"<span>Epoch <b>{_number(prometheus.epoch)}</b></span>"
        f"<span>Voters <b id='voter-count'>{len(voters)}</b></span>"
        f"<span>Observers <b>{len(prometheus.voters) - len(voters)}</b></span></p>"
        "<table id='quorum'><tr><th>Node</th><th>State</th><th>Metadata log end</th>"
        "<th>Lag</th><th>Epoch</th><th>Leader it follows</th></tr>"
        f"{rows}</table>"
    )


def _topic(kafka: KafkaView) -> str:
    head = f"<h2>Topic {escape(kafka.topic)}</h2>"
    partitions = kafka.partitions
    if partitions is None:
        return head + "<p class='note'>The topic could not be read (see above).</p>"
    under = [p for p in partitions if p.under_replicated]
    rows = "".join(_partition_row(p) for p in partitions)
    return (
        head + "<p class='facts'>"
        f"<span>Partitions <b id='partition-count'>{len(partitions)}</b></span>"
        f"<span>Under-replicated <b id='under-replicated' class='{'bad' if under else ''}'>"
        f"{len(under)}</b></span>"
        f"<span>Messages (sum of end offsets) <b>"
        f"{_number(sum(p.end_offset or 0 for p in partitions))}</b></span></p>"
        "<table id='partitions'><tr><th>Partition</th><th>Leader</th><th>Replicas</th>"
        "<th>ISR</th><th>End offset</th><th>Committed</th><th>Lag</th></tr>"
        f"{rows}</table>"
    )


def _partition_row(p: PartitionView) -> str:
    css = " class='under'" if p.under_replicated else ""
    committed = "no commit" if p.committed is None else _number(p.committed)
    return (
        f"<tr{css}><td class='num'>{p.partition}</td><td class='num'>{_id(p.leader)}</td>"
        f"<td>{_ids(p.replicas)}</td><td>{_ids(p.isr)}</td>"
        f"<td class='num'>{_number(p.end_offset)}</td><td class='num'>{committed}</td>"
        f"<td class='num lag'>{_number(p.lag)}</td></tr>"
    )


def _group(kafka: KafkaView) -> str:
    head = f"<h2>Consumer group {escape(kafka.group_id)}</h2>"
    group = kafka.group
    total = kafka.total_lag()
    uncommitted = kafka.uncommitted()
    lag_note = (
        f" ({len(uncommitted)} partitions without a committed offset are not counted)"
        if uncommitted
        else ""
    )
    facts = (
        f"<span>Total lag <b id='total-lag'>{_number(total)}</b>{escape(lag_note)}</span>"
        if total is not None
        else "<span>Total lag <b id='total-lag'>unknown</b></span>"
    )
    if group is None:
        return (
            head + f"<p class='facts'>{facts}</p><p class='note'>The group could not be read.</p>"
        )
    if group.state == "DEAD" and not group.members:
        return head + "<p class='note' id='group-state'>The group does not exist.</p>"
    lags = {p.partition: p.lag for p in kafka.partitions or []}
    return (
        head + "<p class='facts'>"
        f"<span>State <b id='group-state'>{escape(group.state)}</b></span>"
        f"<span>Protocol <b>{escape(group.protocol)}</b></span>"
        f"<span>Coordinator <b>{_id(group.coordinator_id)}</b></span>"
        f"<span>Members <b id='member-count'>{len(group.members)}</b></span>{facts}</p>"
        + _members(group, lags)
    )


def _members(group: GroupView, lags: dict[int, int | None]) -> str:
    rows = []
    for member in group.members:
        known = [lags.get(p) for p in member.partitions]
        lag = sum(v for v in known if v is not None) if any(v is not None for v in known) else None
        rows.append(
            f"<tr><td>{escape(member.client_id)}</td><td>{escape(member.instance_id or '')}</td>"
            f"<td>{escape(member.host)}</td><td class='num'>{len(member.partitions)}</td>"
            f"<td>{_ids(member.partitions)}</td><td class='num'>{_number(lag)}</td></tr>"
        )
    return (
        "<table id='members'><tr><th>Client id</th><th>Instance id</th><th>Host</th>"
        "<th>Partitions</th><th>Assigned</th><th>Lag</th></tr>" + "".join(rows) + "</table>"
    )


def _graphs(prometheus: PrometheusView) -> str:
    if not prometheus.graphs:
        return ""
    window = prometheus.graphs[0].end - prometheus.graphs[0].start
    heading = f"<h2>Last {_duration(window)}</h2><div class='columns'>"
    return heading + "".join(_graph(graph) for graph in prometheus.graphs) + "</div>"


def _graph(graph: Graph) -> str:
    step = (graph.end - graph.start) / 120
    legend = "".join(
        f"<span><i class='swatch' style='background:{COLOURS[i % len(COLOURS)]}'></i>"
        f"{escape(s.name)}: {format_value(s.points[-1][1])}</span>"
        for i, s in enumerate(graph.series)
    )
    missing = "".join(f"<li><code>{escape(text)}</code></li>" for text in graph.missing)
    missing_note = (
        f"<div class='note'>No data in Prometheus for:<ul>{missing}</ul></div>" if missing else ""
    )
    return (
        f"<div class='graph'><h3>{escape(graph.title)} ({escape(graph.unit)})</h3>"
        f"{line_chart(graph, gap_s=3 * step)}<div class='legend'>{legend}</div>"
        f"{missing_note}</div>"
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{int(seconds // 60)} minutes"


def _id(value: int | None) -> str:
    return "none" if value is None else str(value)


def _ids(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
