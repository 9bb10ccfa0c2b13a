"""The consumer's memory bound: six balanced instances catching up on a backlog stay in budget."""

import pytest

from kafka_micro.settings import load_settings
from kafka_micro_devtools.bench import ours
from kafka_micro_devtools.bench.context import BenchContext
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.runner import RSS_TARGET_MB

pytestmark = pytest.mark.integration

# 1 M of our 100-byte messages compress to about 19 MB: many times what one instance may hold.
BACKLOG = 1_000_000


def profile(name: str) -> BenchProfile:
    settings = load_settings(None, {"profile": name} if name != "defaults" else {})
    return BenchProfile(name=name, producer=settings.producer, consumer=settings.consumer)


@pytest.fixture
def bench_context(broker, kafka_home, tmp_path):
    ctx = BenchContext(broker.bootstrap, tmp_path, kafka_home)
    yield ctx
    ctx.delete_topics()
    ctx.close()


def drain_peak_rss(ctx: BenchContext, name: str, instances: int) -> list[float]:
    _throughput, peak_rss = ours.drain(
        ctx,
        profile(name),
        ctx.create_topic(f"memory-{name}", 24),
        count=BACKLOG,
        message_bytes=100,
        instances=instances,
        partitions=24,
    )
    return peak_rss


def test_six_consumers_draining_a_backlog_stay_within_the_budget(bench_context):
    peak_rss = drain_peak_rss(bench_context, "defaults", instances=6)
    assert len(peak_rss) == 6
    assert max(peak_rss) <= RSS_TARGET_MB, peak_rss


def test_the_original_prefetch_settings_exceed_it(bench_context):
    """The same drain with the first-kafka profile: proves the drain above can fill memory."""
    peak_rss = drain_peak_rss(bench_context, "first-kafka", instances=1)
    assert peak_rss[0] > RSS_TARGET_MB, peak_rss
