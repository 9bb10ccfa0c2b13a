"""The stop request: what ends a wait early, and what does not."""

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from kafka_micro.runtime import StopRequest


@pytest.fixture
def stop() -> Iterator[StopRequest]:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    request = StopRequest()
    request.install()
    yield request
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_a_fatal_client_error_does_not_cut_the_wait_short(stop: StopRequest) -> None:
    stop.event.set()  # as ClientErrors does on a fatal error
    started = time.monotonic()
    stop.sleep_unless_signalled(0.5)
    assert time.monotonic() - started >= 0.5
    assert stop.signal_name == ""


def test_a_stop_signal_cuts_the_wait_short(stop: StopRequest) -> None:
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    stop.sleep_unless_signalled(60)
    assert time.monotonic() - started < 30
    assert stop.signal_name == "SIGTERM"
    assert stop.is_set()
