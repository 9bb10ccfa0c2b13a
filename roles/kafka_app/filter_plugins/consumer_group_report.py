"""The consumer group summed up per app host, from Kafka's own kafka-consumer-groups output.

`consumer_group_report(members_output, offsets_output, group)` takes the stdout of
`--describe --members --verbose` and of `--describe` and returns the report's lines: one line
for the group, one per app host (members, partitions, lag), then one per partition. Members are
static (`group.instance.id` HOST-N, set by the role's unit), so the host is the instance id
without its last `-N`.
"""

from dataclasses import dataclass, field


@dataclass
class _HostShare:
    members: set[str] = field(default_factory=set)
    partitions: int = 0
    lag: int = 0


def _rows(output: str, group: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.split()[:1] == [group]]


def _host_of(instance_id: str) -> str:
    return instance_id.rsplit("-", 1)[0]


def consumer_group_report(members_output: str, offsets_output: str, group: str) -> list[str]:
    # --members --verbose: GROUP CONSUMER-ID GROUP-INSTANCE-ID HOST CLIENT-ID #PARTITIONS ...
    instance_of = {row[1]: row[2] for row in _rows(members_output, group) if len(row) > 5}
    # --describe: GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    partition_rows = sorted(
        (row for row in _rows(offsets_output, group) if len(row) >= 7),
        key=lambda row: (row[1], int(row[2])),
    )
    shares: dict[str, _HostShare] = {}
    for instance_id in instance_of.values():
        shares.setdefault(_host_of(instance_id), _HostShare()).members.add(instance_id)
    table = [f"  {'partition':<16} {'committed':>10} {'end':>10} {'lag':>8}  member"]
    total_lag = 0
    for _, topic, partition, committed, end, lag, consumer_id, *_ in partition_rows:
        lag_count = int(lag) if lag.isdigit() else 0
        total_lag += lag_count
        owner = instance_of.get(consumer_id, "-")
        if owner != "-":
            share = shares[_host_of(owner)]
            share.partitions += 1
            share.lag += lag_count
        table.append(f"  {topic + ':' + partition:<16} {committed:>10} {end:>10} {lag:>8}  {owner}")
    owned = sum(share.partitions for share in shares.values())
    hosts = f"{len(shares)} host" + ("" if len(shares) == 1 else "s")
    lines = [
        f"Consumer group {group}: {len(instance_of)} members on {hosts}, "
        f"{owned} of {len(partition_rows)} partitions owned, total lag {total_lag:,}"
    ]
    lines += [
        f"  {host:<22} {len(share.members):>3} members {share.partitions:>4} partitions"
        f"   lag {share.lag:,}"
        for host, share in sorted(shares.items())
    ]
    return lines + table


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"consumer_group_report": consumer_group_report}
