"""Which client errors end a command, and the one line that says why."""

import contextlib
import socket
import ssl
import threading

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from kafka_micro.access import (
    AccessWatch,
    BrokerAccessError,
    ConnectDeadline,
    await_brokers,
    denied,
    unusable_connection,
)
from kafka_micro.clients import ClientErrors, client_config
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import settings_from
from kafka_micro.tls_probe import ClientSecurity
from kafka_micro_devtools.throwaway_tls import create_authority

# Error texts as librdkafka 2.16 reports them (the integration tests see the real ones).
WRONG_PASSWORD = (
    "sasl_ssl://localhost:40123/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 2ms in state AUTH_REQ)"
)
HANDSHAKE_INTERRUPTED = (
    "sasl_ssl://localhost:40123/1: SASL SCRAM-SHA-512 mechanism handshake failed: "
    "Local: Broker transport failure: broker's supported mechanisms: "
)
UNTRUSTED = (
    "sasl_ssl://localhost:40123/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed: broker certificate could not be verified, verify "
    "that ssl.ca.location is correctly configured or root CA certificates are installed "
    "(install ca-certificates package) (after 3ms in state SSL_HANDSHAKE)"
)
ALICE = ClientSecurity(username="alice")
NOBODY = ClientSecurity()
REFUSED = (
    "sasl_ssl://localhost:40123/bootstrap: Connect to ipv4#127.0.0.1:40123 failed: "
    "Connection refused (after 0ms in state CONNECT)"
)


def test_refused_credentials_name_the_user_and_the_broker():
    cause = unusable_connection(KafkaError(KafkaError._AUTHENTICATION, WRONG_PASSWORD), ALICE)
    assert cause == (
        "authentication failed for user 'alice' at localhost:40123: SASL authentication error: "
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512"
    )


def test_refused_credentials_without_a_username_say_so():
    cause = unusable_connection(KafkaError(KafkaError._AUTHENTICATION, WRONG_PASSWORD), NOBODY)
    assert cause is not None
    assert cause.startswith("authentication failed for a client without sasl.username at ")


def test_a_broker_gone_during_the_sasl_handshake_may_heal():
    error = KafkaError(KafkaError._AUTHENTICATION, HANDSHAKE_INTERRUPTED)
    assert unusable_connection(error, ALICE) is None


@contextlib.contextmanager
def local_server(handle):
    """A listener on 127.0.0.1 that passes each connection to ``handle``; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except TimeoutError:
                continue
            with connection, contextlib.suppress(OSError):
                handle(connection)

    server = threading.Thread(target=serve)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        server.join()
        listener.close()


@pytest.fixture
def tls_server(tmp_path):
    """A TLS server on 127.0.0.1 whose certificate names localhost only; yields (port, CA)."""
    authority = create_authority(tmp_path, "test-ca")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.issue_server_keystore(tmp_path / "server.pem", "localhost"))
    with local_server(
        lambda connection: context.wrap_socket(connection, server_side=True).close()
    ) as port:
        yield port, authority.certificate_file


def refused(address):
    """A certificate refusal as librdkafka reported it, here on its I/O path (_TRANSPORT)."""
    return KafkaError(KafkaError._TRANSPORT, UNTRUSTED.replace("localhost:40123", address))


def test_a_certificate_from_an_unknown_ca_is_not_trusted(tls_server, tmp_path):
    port, _ca = tls_server
    other = create_authority(tmp_path / "other", "other-ca").certificate_file
    cause = unusable_connection(
        refused(f"localhost:{port}"), ClientSecurity(ca_location=str(other))
    )
    assert cause == (
        f"TLS certificate of localhost:{port} not trusted: self-signed certificate in "
        f"certificate chain (trusting ssl.ca.location={other})"
    )


def test_a_certificate_for_another_name_does_not_name_the_host(tls_server):
    port, ca = tls_server
    cause = unusable_connection(refused(f"127.0.0.1:{port}"), ClientSecurity(ca_location=str(ca)))
    assert cause is not None
    assert cause.startswith(f"TLS certificate of 127.0.0.1:{port} does not name 127.0.0.1: ")


def test_a_refusal_python_cannot_explain_still_names_the_certificate(tls_server):
    port, ca = tls_server
    cause = unusable_connection(refused(f"localhost:{port}"), ClientSecurity(ca_location=str(ca)))
    assert cause == (
        f"TLS certificate of localhost:{port} not trusted: certificate verify failed "
        f"(trusting ssl.ca.location={ca})"
    )


def test_other_tls_failures_name_the_broker_and_the_reason():
    text = "ssl://localhost:40123/bootstrap: SSL handshake failed: wrong version number"
    cause = unusable_connection(KafkaError(KafkaError._SSL, text), NOBODY)
    assert (
        cause
        == "TLS handshake with localhost:40123 failed: SSL handshake failed: wrong version number"
    )


@pytest.mark.parametrize(
    "code", [KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT]
)
def test_errors_of_a_restarting_broker_may_heal(code):
    assert unusable_connection(KafkaError(code, REFUSED), ALICE) is None


def test_a_text_without_a_broker_prefix_names_the_brokers():
    cause = unusable_connection(KafkaError(KafkaError._SSL, "SSL handshake failed"), NOBODY)
    assert cause == "TLS handshake with the brokers failed: SSL handshake failed"
    cause = unusable_connection(KafkaError(KafkaError._SSL, "certificate verify failed"), NOBODY)
    assert cause == (
        "TLS certificate of the brokers not trusted: certificate verify failed "
        "(trusting the system's CA certificates; set ssl.ca.location)"
    )


@pytest.mark.parametrize(
    ("code", "resource"),
    [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "topic"),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, "group"),
        (KafkaError.CLUSTER_AUTHORIZATION_FAILED, "cluster"),
    ],
)
def test_authorization_failures_name_the_resource(code, resource):
    error = KafkaError(code, "Broker: authorization failed")
    assert denied(error) == f"not authorized for the {resource}: Broker: authorization failed"
    assert unusable_connection(error, ALICE) == denied(error)


def test_other_broker_errors_are_not_denials():
    assert denied(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown topic")) is None


def test_the_first_failure_is_kept_and_reported_once():
    reported = []
    watch = AccessWatch(on_failure=lambda: reported.append(True))
    watch.fail("first")
    watch.fail("second")
    assert watch.failure == "first"
    assert reported == [True]
    with pytest.raises(BrokerAccessError, match=r"^first$"):
        watch.raise_failure()


def test_no_failure_raises_nothing():
    AccessWatch().raise_failure()


def test_the_error_callback_stops_the_loop_on_an_unusable_connection():
    stop = StopRequest()
    errors = ClientErrors("producer", stop)
    errors(KafkaError(KafkaError._TRANSPORT, REFUSED))
    assert not stop.is_set()
    assert errors.access.last_error == REFUSED
    errors(KafkaError(KafkaError._AUTHENTICATION, WRONG_PASSWORD))
    assert stop.is_set()
    assert not errors.fatal
    assert errors.access.failure is not None


def test_the_client_builder_tells_the_callback_who_the_client_is_and_whom_it_trusts():
    errors = ClientErrors("consumer")
    properties = {
        "sasl.username": "consumer-1",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.endpoint.identification.algorithm": "none",
    }
    client_config(settings_from({"librdkafka": properties}), "consumer", errors)
    assert errors.access.security == ClientSecurity(
        username="consumer-1",
        ca_location="/etc/ca.pem",
        verify_host_name=False,
        bootstrap_servers="localhost:9092",
    )
    client_config(settings_from({}), "consumer", errors)
    assert errors.access.security == ClientSecurity(bootstrap_servers="localhost:9092")


def test_a_deadline_not_reached_in_time_fails_with_the_last_error():
    failed = threading.Event()
    watch = AccessWatch(on_failure=failed.set)
    watch.last_error = "Connection refused"
    deadline = ConnectDeadline(watch, 0.01, "no message delivered")
    deadline.start()
    assert failed.wait(30)
    assert watch.failure == (
        "no message delivered within connect_timeout_s=0.01; last error: Connection refused"
    )


def test_a_reached_deadline_never_fails():
    watch = AccessWatch()
    deadline = ConnectDeadline(watch, 0.05, "no message delivered")
    deadline.start()
    deadline.reached()
    assert watch.failure is None


def test_waiting_for_unreachable_brokers_ends_with_the_last_error():
    """No broker listens on port 1: a real client's metadata requests go unanswered."""
    errors = ClientErrors("admin")
    settings = settings_from({"bootstrap_servers": "127.0.0.1:1"})
    admin = AdminClient(client_config(settings, "admin", errors))
    with pytest.raises(BrokerAccessError) as raised:
        await_brokers(
            lambda timeout: admin.list_topics(timeout=timeout), admin.poll, errors.access, 1
        )
    message = str(raised.value)
    assert message.startswith("no answer from the brokers within connect_timeout_s=1; last error: ")
    assert "127.0.0.1:1" in message


def test_a_listener_that_speaks_tls_is_named_when_a_plaintext_client_never_got_through(
    tls_server,
):
    port, _ca = tls_server
    watch = AccessWatch()
    watch.security = ClientSecurity(bootstrap_servers=f"127.0.0.1:1,localhost:{port}")
    assert watch.never_reached("no message delivered", 5) == (
        f"no message delivered within connect_timeout_s=5; localhost:{port} speaks TLS but "
        "security.protocol is plaintext (use SSL or SASL_SSL)"
    )


def test_a_tls_client_that_never_got_through_is_given_the_last_error(tls_server):
    port, _ca = tls_server
    watch = AccessWatch()
    watch.security = ClientSecurity(protocol="sasl_ssl", bootstrap_servers=f"localhost:{port}")
    watch.saw(KafkaError(KafkaError._TRANSPORT, REFUSED))
    watch.saw(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert watch.never_reached("no message delivered", 5) == (
        f"no message delivered within connect_timeout_s=5; last error: {REFUSED}"
    )
    assert watch.failure is None


@pytest.fixture
def plaintext_server():
    """A listener that closes a connection whose first bytes it cannot read, as Kafka's
    PLAINTEXT listener does with a TLS ClientHello; yields its port."""
    with local_server(lambda connection: connection.recv(1024)) as port:
        yield port


def cut_short(address):
    return KafkaError(
        KafkaError._TRANSPORT,
        f"ssl://{address}/bootstrap: SSL handshake failed: Disconnected: SSL connection closed by "
        "peer: connecting to a PLAINTEXT broker listener? (after 1ms in state SSL_HANDSHAKE)",
    )


def test_a_tls_client_on_a_plaintext_listener_is_told_so(plaintext_server):
    address = f"127.0.0.1:{plaintext_server}"
    cause = unusable_connection(cut_short(address), ClientSecurity(protocol="ssl"))
    assert cause == (
        f"{address} does not speak TLS but security.protocol is ssl "
        "(use PLAINTEXT or SASL_PLAINTEXT, or the port of a TLS listener)"
    )


def test_a_handshake_cut_short_by_a_tls_listener_or_nobody_may_heal(tls_server):
    port, _ca = tls_server
    security = ClientSecurity(protocol="sasl_ssl")
    assert unusable_connection(cut_short(f"localhost:{port}"), security) is None
    assert unusable_connection(cut_short("127.0.0.1:1"), security) is None
