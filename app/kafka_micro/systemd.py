"""systemd's notification protocol (``Type=notify``): readiness, stopping and a status line.

systemd passes the address of its notification socket in ``NOTIFY_SOCKET``: a path, or an
abstract socket name written with a leading ``@``. Outside systemd the variable is unset and
every notification is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends ``sd_notify`` datagrams; a failure to send is logged, never raised."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
        self._address = _socket_address(address)
        if address and self._address is None:
            log.warning(
                "NOTIFY_SOCKET=%r is neither a path nor an abstract socket (@NAME); "
                "systemd will not be notified",
                address,
            )

    def ready(self) -> None:
        self.notify("READY=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        """One line for ``systemctl status``."""
        self.notify("STATUS=" + text.replace("\n", " "))

    def notify(self, *assignments: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(assignments).encode(), self._address)
        except OSError as error:
            log.warning("could not notify systemd (%s): %s", ", ".join(assignments), error)


def _socket_address(address: str) -> str | bytes | None:
    if address.startswith("@"):
        # Linux abstract namespace: a name that starts with a NUL byte, not a file.
        return b"\0" + address[1:].encode()
    if address.startswith("/"):
        return address
    return None
