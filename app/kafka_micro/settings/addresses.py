"""The address a kafka-micro process listens on (its metrics, the status page), checked alike."""

from __future__ import annotations

import ipaddress


def check_listen_address(value: str) -> str:
    """An IP address of this host; a host name could resolve to an address it does not have."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            "an IPv4 or IPv6 address of this host to listen on, not a host name: e.g. "
            "'0.0.0.0' (every IPv4 address), '::' (every address) or '127.0.0.1'"
        ) from None
    return value
