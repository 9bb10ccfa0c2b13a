"""Type=notify: produce and consume tell systemd when they work (READY=1) and when they stop."""

import signal
import socket
import time
import uuid

import pytest

pytestmark = pytest.mark.integration


class NotifySocket:
    """A datagram socket standing in for systemd's; ``address`` goes into NOTIFY_SOCKET."""

    def __init__(self, address: str):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[str] = []

    def environ(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    def wait_for(self, prefix: str, timeout: float, on_arrival=None) -> str:
        """The first line starting with ``prefix``; ``on_arrival()`` runs as soon as it is read."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.received if line.startswith(prefix)), None)
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {prefix} within {timeout:g} s; received {self.received}")
            self.sock.settimeout(remaining)
            try:
                lines = self.sock.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            self.received.extend(lines)
            if on_arrival is not None and any(line.startswith(prefix) for line in lines):
                on_arrival()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    """Makes sockets: a file in tmp_path, or with abstract=True one in the abstract namespace."""
    made: list[NotifySocket] = []

    def make(abstract=False) -> NotifySocket:
        name = uuid.uuid4().hex[:12]
        address = f"@kafka-micro-test-{name}" if abstract else str(tmp_path / f"{name}.sock")
        made.append(NotifySocket(address))
        return made[-1]

    yield make
    for notify in made:
        notify.close()


def test_producer_is_ready_once_a_message_is_delivered_and_says_when_it_stops(app, notify_socket):
    app.create_topic(partitions=24)
    systemd = notify_socket()
    producer = app.start("producer", "produce", "--rate", "1000", environ=systemd.environ())
    log_at_ready = []
    systemd.wait_for("READY=1", 60, on_arrival=lambda: log_at_ready.append(producer.log()))
    assert "first message delivered: ready" in log_at_ready[0]
    assert systemd.wait_for("STATUS=", 30).startswith("STATUS=produced ")
    assert "STOPPING=1" not in systemd.received

    producer.popen.send_signal(signal.SIGTERM)
    systemd.wait_for("STOPPING=1", 30)
    assert producer.wait(60) == 0, producer.log()
    assert systemd.received.count("READY=1") == 1


def test_consumer_is_ready_only_once_it_owns_partitions_and_says_when_it_stops(app, notify_socket):
    app.create_topic(partitions=24)
    systemd = notify_socket(abstract=True)
    consumer = app.start("consumer", "consume", environ=systemd.environ())
    owned_at_ready = []
    systemd.wait_for("READY=1", 90, on_arrival=lambda: owned_at_ready.append(consumer.owned()))
    assert owned_at_ready[0] == list(range(24)), consumer.log()
    assert "ready: owns 24 partitions" in consumer.log()
    assert systemd.wait_for("STATUS=", 30).startswith("STATUS=consumed ")

    consumer.popen.send_signal(signal.SIGTERM)
    systemd.wait_for("STOPPING=1", 30)
    assert consumer.wait(60) == 0, consumer.log()


def test_a_member_left_without_partitions_is_ready_too(app, notify_socket):
    """Two members, one partition: under KIP-848 the idle one gets no assignment callback."""
    app.create_topic(partitions=1)
    members = []
    for name in ("first", "second"):
        systemd = notify_socket()
        members.append((app.start(name, "consume", environ=systemd.environ()), systemd))
        systemd.wait_for("READY=1", 90)
    owned = sorted((consumer.owned() or []) for consumer, _systemd in members)
    assert owned == [[], [0]], [consumer.log() for consumer, _systemd in members]
    idle = next(consumer for consumer, _systemd in members if not consumer.owned())
    assert "ready: in the group with no partitions" in idle.log()
    for consumer, systemd in members:
        consumer.popen.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", 30)
        assert consumer.wait(60) == 0
