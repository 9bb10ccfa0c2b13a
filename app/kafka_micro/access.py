"""Whether the brokers can be used as configured, and if not, why, in one line.

librdkafka retries every connection error forever. Most of them heal by retrying (a broker
restarts, a network blips); some cannot: the brokers refuse the credentials, the client does not
accept their TLS certificate, the principal is denied the topic or group. Those end a command
(exit 3; under systemd the unit restarts it). What shows only as never getting through, such as a
plaintext client on a TLS listener, ends it once ``connect_timeout_s`` has passed without success.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

from confluent_kafka import KafkaError, KafkaException

from kafka_micro.tls_probe import (
    ClientSecurity,
    answers_tls,
    certificate_refused,
    tls_listener,
)

# librdkafka prefixes a broker's errors with "PROTOCOL://HOST:PORT/NODE: ".
_BROKER_PREFIX: Final = re.compile(r"^[a-z_]+://(?P<address>[^/\s]+)/\S*: ")
# The SASL mechanism handshake is reported as _AUTHENTICATION even when the broker only went away
# in the middle of it (librdkafka then quotes a local error, "Local: Broker transport failure").
_HANDSHAKE_INTERRUPTED: Final = re.compile(r"mechanism handshake failed: Local: ")
# OpenSSL's reason for a refused certificate. librdkafka reports it as _SSL or, when the
# handshake fails on its I/O path, as _TRANSPORT: the text, not the code, tells.
_CERTIFICATE_REFUSED: Final = "certificate verify failed"
# librdkafka's guess when a TLS handshake is cut short. A restarting broker cuts it short too,
# so the guess is checked: does the listener answer a TLS handshake at all?
_PLAINTEXT_LISTENER_HINT: Final = "connecting to a PLAINTEXT broker listener?"
# librdkafka appends how long the failed state lasted, e.g. " (after 2ms in state AUTH_REQ)".
_STATE_SUFFIX: Final = re.compile(r" \(after \d+ms in state [A-Z_]+(, [^)]*)?\)$")
_DENIED: Final = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
# While a command waits for the brokers: the longest and shortest wait of one request.
_REQUEST_TRY_S: Final = 2.0
_SHORTEST_TRY_S: Final = 0.2

Result = TypeVar("Result")


class BrokerAccessError(Exception):
    """The brokers cannot be used as configured; the message says why in one line."""


def unusable_connection(error: KafkaError, security: ClientSecurity) -> str | None:
    """Why ``error`` means retrying cannot help, or None if it may heal.

    A refused certificate is looked at once more with Python's own TLS and the client's trust
    settings, since librdkafka does not say whether the CA or the host name was wrong.
    """
    code = error.code()
    text = error.str()
    address, detail = _split_broker(text)
    if code == KafkaError._AUTHENTICATION and not _HANDSHAKE_INTERRUPTED.search(detail):
        user = (
            f"user {security.username!r}" if security.username else "a client without sasl.username"
        )
        return f"authentication failed for {user} at {address}: {_reason(detail)}"
    if _CERTIFICATE_REFUSED in detail:
        return certificate_refused(address, security, reason=_CERTIFICATE_REFUSED)
    if _PLAINTEXT_LISTENER_HINT in detail and answers_tls(address) is False:
        return (
            f"{address} does not speak TLS but security.protocol is {security.protocol} "
            "(use PLAINTEXT or SASL_PLAINTEXT, or the port of a TLS listener)"
        )
    if code == KafkaError._SSL:
        # Any other TLS disagreement (versions, ciphers, TLS spoken to a non-TLS port) lasts
        # too. A peer hanging up mid-handshake, as a restarting broker does, is _TRANSPORT.
        return f"TLS handshake with {address} failed: {_reason(detail)}"
    return denied(error)


def denied(error: KafkaError) -> str | None:
    """The authorization failure ``error`` reports, or None if it is no such failure."""
    resource = _DENIED.get(error.code())
    if resource is None:
        return None
    return f"not authorized for the {resource}: {_reason(_split_broker(error.str())[1])}"


def raised_fatal(error: BaseException) -> KafkaError | None:
    """The fatal error a client's poll() or flush() raised, or None.

    confluent-kafka raises a fatal error there instead of calling the error callback, and leaves
    it pending while it goes on to call delivery callbacks in the same flush, whose first C call
    then fails with a SystemError caused by it.
    """
    for candidate in (error, error.__cause__):
        if isinstance(candidate, KafkaException):
            kafka_error = candidate.args[0] if candidate.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                return kafka_error
    return None


def _split_broker(text: str) -> tuple[str, str]:
    match = _BROKER_PREFIX.match(text)
    if match is None:
        return "the brokers", text
    return match["address"], text[match.end() :]


def _reason(detail: str) -> str:
    return _STATE_SUFFIX.sub("", detail.strip())


class AccessWatch:
    """What a client's errors showed: the first unrecoverable cause and the last passing error.

    Written from librdkafka's error callback and from a ``ConnectDeadline`` timer thread.
    ``on_failure`` is called on the first failure only, e.g. to stop a produce or consume loop.
    """

    def __init__(self, on_failure: Callable[[], None] | None = None) -> None:
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self.failure: str | None = None
        self.last_error = ""
        # The client's settings that explain failures; client_config sets them.
        self.security = ClientSecurity()

    def saw(self, error: KafkaError) -> None:
        """Take note of librdkafka's error; fail if retrying cannot heal it."""
        if self.failure is not None:
            return
        cause = unusable_connection(error, self.security)
        if cause is not None:
            self.fail(cause)
        elif error.code() != KafkaError._ALL_BROKERS_DOWN or not self.last_error:
            # "1/1 brokers are down" says less than the error that brought them down.
            self.last_error = error.str()

    def fail(self, cause: str) -> None:
        with self._lock:
            if self.failure is not None:
                return
            self.failure = cause
        if self._on_failure is not None:
            self._on_failure()

    def raise_failure(self) -> None:
        """Raise BrokerAccessError if a failure was seen."""
        if self.failure is not None:
            raise BrokerAccessError(self.failure)

    def never_reached(self, what: str, timeout_s: float) -> str:
        """The cause given when ``what`` did not happen within ``timeout_s``.

        librdkafka only logs why a connection closed before its first answer, so a listener
        that speaks TLS to a client that does not is looked for here.
        """
        listener = tls_listener(self.security)
        if listener is not None:
            why = (
                f"{listener} speaks TLS but security.protocol is "
                f"{self.security.protocol} (use SSL or SASL_SSL)"
            )
        else:
            why = f"last error: {self.last_error or 'none reported'}"
        return f"{what} within connect_timeout_s={timeout_s:g}; {why}"


class ConnectDeadline:
    """Fails ``watch`` unless ``reached()`` is called within ``timeout_s`` of ``start()``.

    A timer thread, so that the produce and consume loops pay nothing for it; it is cancelled
    once reached, and never keeps the process alive.
    """

    def __init__(self, watch: AccessWatch, timeout_s: float, what: str) -> None:
        self._watch = watch
        self._timeout_s = timeout_s
        self._what = what
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def reached(self) -> None:
        """Cancel the deadline: once this returns, it fails nothing."""
        self._timer.cancel()
        if self._timer.is_alive():
            self._timer.join()

    def _expire(self) -> None:
        self._watch.fail(self._watch.never_reached(self._what, self._timeout_s))


def await_brokers(
    request: Callable[[float], Result],
    serve_callbacks: Callable[[float], object],
    watch: AccessWatch,
    timeout_s: float,
) -> Result:
    """``request(timeout)`` retried until it answers, for at most ``timeout_s``.

    A blocking librdkafka call serves no callbacks, so between tries ``serve_callbacks`` (the
    client's ``poll``) lets the error callback see why: an unrecoverable cause ends the wait at
    once. Raises BrokerAccessError when the brokers could not be used.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return request(max(min(deadline - time.monotonic(), _REQUEST_TRY_S), _SHORTEST_TRY_S))
        except KafkaException as error:
            unanswered = error.args[0].str() if isinstance(error.args[0], KafkaError) else error
        serve_callbacks(_SHORTEST_TRY_S)
        watch.raise_failure()
        if time.monotonic() >= deadline:
            watch.last_error = watch.last_error or str(unanswered)
            raise BrokerAccessError(watch.never_reached("no answer from the brokers", timeout_s))
