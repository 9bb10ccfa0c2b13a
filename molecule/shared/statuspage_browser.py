"""Load kafka-micro's status page in a real browser: Debian's headless Chromium.

Used by the integration tests against a local page, and meant for molecule against the lab's
monitoring host. No Python dependency beyond the standard library: Chromium itself renders the
page (``--dump-dom`` prints the DOM it built, ``--screenshot`` saves what it drew), and the
elements the page marks with ids are read back with ``html.parser``.

Chromium comes from Debian's ``chromium`` package (``chromium-driver`` is not needed here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DEFAULT_WINDOW = (1280, 2000)
DEFAULT_TIMEOUT_S = 120.0


class BrowserError(RuntimeError):
    """Chromium is missing or did not load the page; the message holds its output."""


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError(
        "no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "); on Debian: "
        "apt-get install chromium"
    )


def _run(url: str, arguments: list[str], timeout_s: float, insecure_tls: bool) -> str:
    """Run headless Chromium on ``url`` with ``arguments``; its standard output."""
    with tempfile.TemporaryDirectory(prefix="statuspage-chromium-") as profile:
        command = [
            find_chromium(),
            "--headless",
            # Root in a container has no user namespace to sandbox with.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # The page reloads itself; a dump or screenshot is taken of the first load.
            "--virtual-time-budget=5000",
            *(["--ignore-certificate-errors"] if insecure_tls else []),
            *arguments,
            url,
        ]
        environment = {**os.environ, "HOME": profile}
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                env=environment,
            )
        except subprocess.TimeoutExpired as error:
            raise BrowserError(f"Chromium did not finish within {timeout_s:g} s") from error
    if result.returncode != 0:
        raise BrowserError(f"Chromium exited with {result.returncode}:\n{result.stderr[-4000:]}")
    return result.stdout


def dump_dom(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, insecure_tls: bool = False) -> str:
    """The DOM Chromium built from ``url``, serialized as HTML.

    ``insecure_tls`` accepts any certificate (a lab's throwaway one); basic auth credentials go
    into the URL (``https://USER:PASSWORD@HOST:PORT/``).
    """
    dom = _run(url, ["--dump-dom"], timeout_s, insecure_tls)
    if "<html" not in dom:
        raise BrowserError(f"Chromium printed no document for {url}: {dom[:500]!r}")
    return dom


def screenshot(
    url: str,
    path: Path,
    *,
    window: tuple[int, int] = DEFAULT_WINDOW,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    insecure_tls: bool = False,
) -> Path:
    """Save a PNG of ``url`` as Chromium draws it in a ``window``-sized window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    width, height = window
    _run(
        url,
        [f"--screenshot={path}", f"--window-size={width},{height}"],
        timeout_s,
        insecure_tls,
    )
    if not path.is_file() or path.stat().st_size == 0:
        raise BrowserError(f"Chromium wrote no screenshot to {path}")
    return path


class _TextById(HTMLParser):
    """Text of every element with an id (nested text included), and every table's rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self._open: list[tuple[str, str | None]] = []
        self._collecting: dict[str, list[str]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if tag in {"br", "meta", "link", "img", "input", "hr", "col"}:
            return
        self._open.append((tag, element_id))
        if element_id:
            self._collecting[element_id] = []
        if tag == "table":
            self._table = element_id or f"table-{len(self.rows)}"
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, element_id = self._open.pop()
            if element_id and element_id in self._collecting:
                self.texts[element_id] = " ".join("".join(self._collecting.pop(element_id)).split())
            if open_tag in {"td", "th"} and self._cell is not None and self._table is not None:
                if self.rows[self._table]:
                    self.rows[self._table][-1].append(" ".join("".join(self._cell).split()))
                self._cell = None
            if open_tag == "table":
                self._table = None
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for parts in self._collecting.values():
            parts.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_page(dom: str) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    """(text of each element by id, rows of each table by id, header row first)."""
    parser = _TextById()
    parser.feed(dom)
    parser.close()
    return parser.texts, parser.rows


def number(text: str) -> int:
    """A figure as the page prints it (``12,345``) as an int."""
    return int(text.replace(",", "").strip())
