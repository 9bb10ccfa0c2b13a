"""Asking a broker's TLS listener directly what librdkafka does not say.

librdkafka reports a refused certificate without saying whether its CA is unknown or it names
another host, and only logs that a connection closed before its first answer, which is what a
plaintext client on a TLS listener sees. Python's own TLS, with the client's trust settings,
tells these apart; it is used only on the way to failing, once.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: the certificate is trusted
# but does not hold the name the client connected by.
_NAME_MISMATCH_CODES: Final = frozenset({62, 64})
_PROBE_TIMEOUT_S: Final = 5.0
_PLAINTEXT_PROTOCOLS: Final = frozenset({"plaintext", "sasl_plaintext"})
# A long bootstrap list is not probed server by server.
_PROBED_SERVERS: Final = 3


@dataclass(frozen=True)
class ClientSecurity:
    """What of a client's librdkafka properties explains why the brokers refused it."""

    username: str | None = None
    ca_location: str | None = None
    ca_pem: str | None = None
    verify_host_name: bool = True
    protocol: str = "plaintext"
    bootstrap_servers: str = ""

    @classmethod
    def of(cls, properties: Mapping[str, object]) -> ClientSecurity:
        def text(key: str) -> str | None:
            value = properties.get(key)
            return None if value is None else str(value)

        algorithm = text("ssl.endpoint.identification.algorithm") or "https"
        return cls(
            username=text("sasl.username"),
            ca_location=text("ssl.ca.location"),
            ca_pem=text("ssl.ca.pem"),
            verify_host_name=algorithm.lower() != "none",
            protocol=(text("security.protocol") or "plaintext").lower(),
            bootstrap_servers=text("bootstrap.servers") or "",
        )


def certificate_refused(address: str, security: ClientSecurity, reason: str) -> str:
    """Whether the certificate at ``address`` (HOST:PORT) is untrusted or names another host.

    ``reason`` is librdkafka's, given when Python's TLS finds none (or cannot connect).
    """
    host, _, port = address.rpartition(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=_PROBE_TIMEOUT_S) as sock,
            _trusting(security).wrap_socket(sock, server_hostname=host),
        ):
            pass
    except ssl.SSLCertVerificationError as error:
        if error.verify_code in _NAME_MISMATCH_CODES:
            return f"TLS certificate of {address} does not name {host}: {error.verify_message}"
        reason = error.verify_message
    except (OSError, ValueError):
        pass
    return f"TLS certificate of {address} not trusted: {reason} ({_trust_source(security)})"


def tls_listener(security: ClientSecurity) -> str | None:
    """The first bootstrap server that completes a TLS handshake with a client that speaks no
    TLS (security.protocol PLAINTEXT or SASL_PLAINTEXT), or None."""
    if security.protocol not in _PLAINTEXT_PROTOCOLS:
        return None
    servers = [server.strip() for server in security.bootstrap_servers.split(",") if server]
    return next((server for server in servers[:_PROBED_SERVERS] if answers_tls(server)), None)


def answers_tls(server: str) -> bool | None:
    """Whether ``server`` (HOST:PORT) completes a TLS handshake; None if that cannot be told
    (nothing listens, or no answer in time, as with a broker that is restarting)."""
    host, _, port = server.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Only whether the listener speaks TLS matters here, not whom it proves to be.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        sock = socket.create_connection((host, int(port)), timeout=_PROBE_TIMEOUT_S)
    except (OSError, ValueError):
        return None
    with sock:
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return True
        except TimeoutError:
            return None
        except OSError:
            return False


def _trusting(security: ClientSecurity) -> ssl.SSLContext:
    """An SSL context that trusts what librdkafka would; "probe" means the system's CAs."""
    cafile = capath = None
    if security.ca_location is not None and security.ca_location != "probe":
        if Path(security.ca_location).is_dir():
            capath = security.ca_location
        else:
            cafile = security.ca_location
    context = ssl.create_default_context(cafile=cafile, capath=capath, cadata=security.ca_pem)
    context.check_hostname = security.verify_host_name
    return context


def _trust_source(security: ClientSecurity) -> str:
    if security.ca_pem is not None:
        return "trusting ssl.ca.pem"
    if security.ca_location is not None:
        return f"trusting ssl.ca.location={security.ca_location}"
    return "trusting the system's CA certificates; set ssl.ca.location"
