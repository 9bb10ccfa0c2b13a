"""``kafka-micro status-page``: a read-only HTTP(S) server of one page and ``/healthz``.

Each view of ``/`` reads Kafka's Admin API and Prometheus afresh, both at once, each call
bounded by ``status_page.request_timeout_s``; a source that fails is named on the page, which is
always rendered. Only GET and HEAD are served (anything else is 405). With
``status_page.basic_auth_*`` every request but ``/healthz`` needs the user and password; with
``status_page.tls_*`` the server speaks HTTPS only.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, TypeVar

from kafka_micro.runtime import StopRequest
from kafka_micro.settings import ConfigError, Settings
from kafka_micro.status.auth import BasicAuth
from kafka_micro.status.kafka_view import KafkaView, read_kafka
from kafka_micro.status.page import PageContext, render_page
from kafka_micro.status.prometheus import PrometheusView, read_prometheus
from kafka_micro.systemd import SystemdNotifier

log = logging.getLogger(__name__)

# Page views rendered at once; more wait their turn (each costs a client and a few requests).
_CONCURRENT_VIEWS: Final = 4
# A client that sends no complete request (or TLS handshake) within this long is dropped.
_CONNECTION_TIMEOUT_S: Final = 30.0
_ALLOWED: Final = "GET, HEAD"
_SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
}


class StatusPage:
    """Renders the page from the sources named in ``settings``; safe to call from threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._views = threading.BoundedSemaphore(_CONCURRENT_VIEWS)

    def render(self) -> str:
        settings, page = self._settings, self._settings.status_page
        # Each reader bounds its own calls; this bounds the view should one of them hang.
        deadline_s = 3 * (page.request_timeout_s + 1)
        with self._views:
            pool = ThreadPoolExecutor(2, thread_name_prefix="status-view")
            try:
                kafka = pool.submit(read_kafka, settings, page.request_timeout_s)
                prometheus = pool.submit(
                    read_prometheus,
                    page.prometheus_url,
                    topic=settings.topic,
                    group_id=settings.consumer.group_id,
                    timeout_s=page.request_timeout_s,
                    window_s=page.graph_window_s,
                )
                kafka_view = _or_problem(
                    kafka,
                    KafkaView(settings.topic, settings.consumer.group_id),
                    "Kafka",
                    deadline_s,
                )
                prometheus_view = _or_problem(
                    prometheus, PrometheusView(page.prometheus_url), "Prometheus", deadline_s
                )
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        context = PageContext(
            refresh_s=page.refresh_s,
            rendered_at=time.time(),
            bootstrap_servers=settings.bootstrap_servers,
            secured=_connection(settings),
        )
        return render_page(context, kafka_view, prometheus_view)


View = TypeVar("View", KafkaView, PrometheusView)


def _or_problem(future: Future[View], fallback: View, source: str, deadline_s: float) -> View:
    """The reader's view; a reader that hung or failed unexpectedly is a problem on the page."""
    try:
        return future.result(timeout=deadline_s)
    except TimeoutError:
        fallback.problems.append(f"{source}: no answer within {deadline_s:g} s")
    except Exception as error:  # a defect of ours, not a source's failure: still a page
        log.exception("reading %s failed", source)
        fallback.problems.append(f"{source}: unexpected error: {error!r}")
    return fallback


def _connection(settings: Settings) -> str:
    protocol = str(settings.librdkafka.get("security.protocol", "PLAINTEXT")).upper()
    user = settings.librdkafka.get("sasl.username")
    return f"{protocol} as {user}" if user else protocol


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        page: StatusPage,
        auth: BasicAuth | None,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.address_family = family
        self.page = page
        self.auth = auth
        super().__init__(address, _Handler)
        if tls is not None:
            # The handshake happens in the request's thread (see _Handler.setup), so a slow
            # client cannot hold up accepting the others.
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that went away or failed its TLS handshake: one line, no traceback.
        log.info("connection from %s failed", client_address, exc_info=log.isEnabledFor(10))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "kafka-micro-status"
    sys_version = ""
    timeout = _CONNECTION_TIMEOUT_S

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED, b"read-only: GET and HEAD only\n", {"Allow": _ALLOWED}
        )

    def do_POST(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    def do_OPTIONS(self) -> None:
        self._not_allowed()

    def do_TRACE(self) -> None:
        self._not_allowed()

    def do_CONNECT(self) -> None:
        self._not_allowed()

    def _serve(self, *, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", body=body)
            return
        auth = self.server.auth
        if auth is not None and not auth.allows(self.headers.get("Authorization")):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                b"authentication required\n",
                {"WWW-Authenticate": 'Basic realm="kafka-micro status", charset="UTF-8"'},
                body=body,
            )
            return
        if path not in {"/", "/index.html"}:
            self._send(HTTPStatus.NOT_FOUND, b"not found: the page is at /\n", body=body)
            return
        page = self.server.page.render().encode()
        self._send(HTTPStatus.OK, page, {"Content-Type": "text/html; charset=utf-8"}, body=body)

    def _send(
        self,
        status: HTTPStatus,
        content: bytes,
        headers: dict[str, str] | None = None,
        *,
        body: bool = True,
    ) -> None:
        self.send_response(status)
        all_headers = {
            "Content-Type": "text/plain; charset=utf-8",
            **_SECURITY_HEADERS,
            **(headers or {}),
            "Content-Length": str(len(content)),
        }
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        level = logging.DEBUG if str(code).startswith(("2", "3")) else logging.INFO
        log.log(level, "%s %s %s -> %s", self.address_string(), self.command, self.path, code)

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s: %s", self.address_string(), format % args)


def _address_family(host: str, port: int) -> socket.AddressFamily:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(
            f"status_page.bind_address = {host!r}: cannot be resolved: {error.strerror}"
        ) from None
    return found[0][0]


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    page = settings.status_page
    if page.tls_cert_file is None or page.tls_key_file is None:
        return None
    for name, path in (("tls_cert_file", page.tls_cert_file), ("tls_key_file", page.tls_key_file)):
        try:
            with path.open("rb"):
                pass
        except OSError as error:
            raise ConfigError(
                f"status_page.{name} = {str(path)!r} cannot be read: {error.strerror}"
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(page.tls_cert_file, page.tls_key_file)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(
            f"status_page.tls_cert_file {str(page.tls_cert_file)!r} and tls_key_file "
            f"{str(page.tls_key_file)!r} are no certificate chain and its key: {error}"
        ) from None
    return context


def make_server(settings: Settings) -> _Server:
    """The bound server, not yet serving; ConfigError if it cannot listen as configured."""
    page = settings.status_page
    auth = (
        BasicAuth(page.basic_auth_user, page.basic_auth_password_hash)
        if page.basic_auth_user is not None and page.basic_auth_password_hash is not None
        else None
    )
    tls = _tls_context(settings)
    family = _address_family(page.bind_address, page.port)
    try:
        return _Server((page.bind_address, page.port), family, StatusPage(settings), auth, tls)
    except OSError as error:
        raise ConfigError(
            f"status_page.bind_address:port = {page.bind_address}:{page.port}: cannot listen: "
            f"{error.strerror or error}"
        ) from None


def server_url(server: _Server) -> str:
    host, port = server.server_address[:2]
    text = host.decode() if isinstance(host, bytes) else str(host)
    shown = f"[{text}]" if ":" in text else text
    scheme = "https" if isinstance(server.socket, ssl.SSLSocket) else "http"
    return f"{scheme}://{shown}:{port}/"


def run_status_page(settings: Settings, stop: StopRequest, notifier: SystemdNotifier) -> int:
    """Serve until stopped; returns the exit code."""
    server = make_server(settings)
    url = server_url(server)
    page = settings.status_page
    protection = ", ".join(
        name for name, on in (("TLS", page.tls), ("basic auth", page.basic_auth)) if on
    )
    thread = threading.Thread(target=server.serve_forever, name="status-page", daemon=True)
    thread.start()
    log.info(
        "status page at %s (%s); Kafka %s, Prometheus %s",
        url,
        protection or "no TLS, no authentication",
        settings.bootstrap_servers,
        page.prometheus_url or "not configured",
    )
    notifier.ready()
    notifier.status(f"serving {url}")
    stop.event.wait()
    notifier.stopping()
    log.info("stopping the status page (%s)", stop.signal_name or "stop requested")
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0
