"""kafka-micro topic: creates, leaves alone, or grows the topic; never shrinks it."""

import pytest

pytestmark = pytest.mark.integration


def test_topic_is_created_then_left_alone_then_grown(app):
    created = app.run("topic", "--partitions", "2")
    assert created.returncode == 0, created.stderr
    assert f"created topic {app.topic} with 2 partitions" in created.stderr

    again = app.run("topic", "--partitions", "2")
    assert f"topic {app.topic} exists with 2 partitions (asked for 2)" in again.stderr

    grown = app.run("topic", "--partitions", "24")
    assert grown.returncode == 0, grown.stderr
    assert f"topic {app.topic} grown from 2 to 24 partitions" in grown.stderr

    smaller = app.run("topic", "--partitions", "4")
    assert f"topic {app.topic} exists with 24 partitions (asked for 4)" in smaller.stderr
