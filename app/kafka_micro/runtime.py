"""Process plumbing shared by the subcommands: stop signals and logging."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Final, NoReturn

_SIGNAL_CHECK_INTERVAL_S: Final = 0.1
_JOURNALD_PRIORITY: Final = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}

log = logging.getLogger(__name__)


class StopRequest:
    """Set by SIGTERM or SIGINT; the loops check it between chunks and batches.

    A client's fatal error sets it too, to end the loop; ``signal_name`` tells the two apart.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # No logging here: a signal handler may interrupt a log call holding its lock.
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def sleep_unless_signalled(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop signal arrives (whatever else set the event)."""
        deadline = time.monotonic() + seconds
        while not self.signal_name and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, _SIGNAL_CHECK_INTERVAL_S))


def replace_process(stop: StopRequest) -> NoReturn:
    """Run this command line again in this process (``exec``): the PID, hence systemd's main
    process and its notify socket, stays; no Python object is freed. A stop signal instead
    ends the process at once, without freeing anything either."""
    logging.shutdown()
    if stop.signal_name:
        os._exit(0)
    os.execv(sys.executable, sys.orig_argv)


class _JournaldFormatter(logging.Formatter):
    """Prefixes syslog priorities that journald turns into log levels; it adds timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _JOURNALD_PRIORITY.get(record.levelno, "<6>")
        return priority + super().format(record)


def _stderr_is_journald() -> bool:
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    status = os.fstat(sys.stderr.fileno())
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def configure_logging(level: str) -> None:
    """Line-oriented logs on stderr: timestamps unless journald adds its own; no colour."""
    handler = logging.StreamHandler(sys.stderr)
    if _stderr_is_journald():
        handler.setFormatter(_JournaldFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
