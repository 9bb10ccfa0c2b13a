"""kafka-micro topic: creates, leaves alone, or grows the topic; never shrinks it. Its dead-letter
topic is made beside it."""

import pytest

pytestmark = pytest.mark.integration


def test_topic_is_created_then_left_alone_then_grown(app):
    created = app.run("topic", "--partitions", "2")
    assert created.returncode == 0, created.stderr
    assert f"created topic {app.topic} with 2 partitions" in created.stderr
    assert f"created topic {app.topic}.dlq with 3 partitions" in created.stderr

    again = app.run("topic", "--partitions", "2")
    assert f"topic {app.topic} exists with 2 partitions (asked for 2)" in again.stderr

    grown = app.run("topic", "--partitions", "24")
    assert grown.returncode == 0, grown.stderr
    assert f"topic {app.topic} grown from 2 to 24 partitions" in grown.stderr

    smaller = app.run("topic", "--partitions", "4")
    assert f"topic {app.topic} exists with 24 partitions (asked for 4)" in smaller.stderr


def test_the_dead_letter_topic_is_made_as_told_or_not_at_all(app):
    told = app.run("topic", "--partitions", "1", "--dead-letter-partitions", "2")
    assert told.returncode == 0, told.stderr
    assert f"created topic {app.topic}.dlq with 2 partitions" in told.stderr

    app.topic += "-2"
    without = app.run("topic", "--partitions", "1", consumer__dead_letter_topic="")
    assert without.returncode == 0, without.stderr
    assert ".dlq" not in without.stderr
