"""Settings of ``kafka-micro status-page``, the ``[status_page]`` table of the config file.

The page reads Kafka with the same connection settings as every other command (the top-level
``librdkafka`` table), the topic of ``topic`` and the group of ``consumer.group_id``.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated, Final, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from kafka_micro.settings.addresses import check_listen_address

PASSWORD_HASH_SCHEME: Final = "pbkdf2-sha256"
"""``pbkdf2-sha256$ITERATIONS$SALT$HASH``, SALT and HASH in unpadded URL-safe base64."""
MIN_PBKDF2_ITERATIONS: Final = 100_000
_MAX_PORT: Final = 65535
_USER_NAME: Final = re.compile(r"^[^:\s]{1,64}$")


def _check_prometheus_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("not an http:// or https:// URL, e.g. 'http://127.0.0.1:9090'")
    if parts.query or parts.fragment:
        raise ValueError("the URL of Prometheus takes no query or fragment")
    return value.rstrip("/")


def decode_b64(text: str) -> bytes:
    """Unpadded URL-safe base64, as the password hash holds it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_password_hash(value: str) -> str:
    parts = value.split("$")
    if len(parts) != 4 or parts[0] != PASSWORD_HASH_SCHEME:
        raise ValueError(
            f"not a {PASSWORD_HASH_SCHEME}$ITERATIONS$SALT$HASH password hash; make one with "
            "`kafka-micro status-page --hash-password` (reads the password on stdin)"
        )
    _scheme, iterations, salt, digest = parts
    if not iterations.isdigit() or int(iterations) < MIN_PBKDF2_ITERATIONS:
        raise ValueError(f"the hash's iterations must be a number >= {MIN_PBKDF2_ITERATIONS}")
    try:
        salt_bytes, digest_bytes = decode_b64(salt), decode_b64(digest)
    except (binascii.Error, ValueError):
        raise ValueError("the hash's salt and hash must be URL-safe base64") from None
    if len(salt_bytes) < 8 or len(digest_bytes) != 32:
        raise ValueError("the hash needs a salt of at least 8 bytes and a 32-byte hash")
    return value


def _redact(value: str | None) -> str | None:
    # Never shown by `kafka-micro config`; the code reads the attribute itself.
    return None if value is None else "<redacted>"


# Paths as text in `kafka-micro config --json`.
FilePath = Annotated[Path, PlainSerializer(str, return_type=str)]
PasswordHash = Annotated[
    str, AfterValidator(_check_password_hash), PlainSerializer(_redact, return_type=str | None)
]


class StatusPageSettings(BaseModel):
    """Settings of ``kafka-micro status-page``: where it listens, how it is protected, where
    Prometheus is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bind_address: Annotated[str, AfterValidator(check_listen_address)] = Field(
        default="127.0.0.1",
        description="Address the page listens on; '0.0.0.0' or '::' for every interface "
        "(then turn on TLS and basic auth).",
    )
    port: int = Field(default=8080, ge=1, le=_MAX_PORT, description="TCP port of the page.")
    refresh_s: int = Field(
        default=15, ge=2, le=3600, description="The page reloads itself this often (seconds)."
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Longest wait of each Admin API or Prometheus call made for one page view.",
    )
    prometheus_url: Annotated[str, AfterValidator(_check_prometheus_url)] | None = Field(
        default="http://127.0.0.1:9090",
        description="Base URL of Prometheus' HTTP API for the quorum and the last hour's "
        "graphs. Unset: the page shows Kafka's Admin API view only.",
    )
    graph_window_s: int = Field(
        default=3600, ge=300, le=7 * 86_400, description="Time span of the graphs (seconds)."
    )
    tls_cert_file: FilePath | None = Field(
        default=None,
        description="PEM certificate (chain) of the page; with tls_key_file, the page is served "
        "over HTTPS only. Unset: plain HTTP.",
    )
    tls_key_file: FilePath | None = Field(
        default=None, description="PEM private key of tls_cert_file (unencrypted)."
    )
    basic_auth_user: Annotated[str, Field(pattern=_USER_NAME.pattern)] | None = Field(
        default=None,
        description="User name of HTTP basic auth; with basic_auth_password_hash every request "
        "must carry it. Unset: no authentication.",
    )
    basic_auth_password_hash: PasswordHash | None = Field(
        default=None,
        description=f"{PASSWORD_HASH_SCHEME}$ITERATIONS$SALT$HASH of the basic auth password, "
        "from `kafka-micro status-page --hash-password`; never shown by `kafka-micro config`.",
    )

    @model_validator(mode="after")
    def _pairs_set_together(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "tls_cert_file and tls_key_file go together: set both for HTTPS, or neither"
            )
        if (self.basic_auth_user is None) != (self.basic_auth_password_hash is None):
            raise ValueError(
                "basic_auth_user and basic_auth_password_hash go together: set both for basic "
                "auth, or neither"
            )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def basic_auth(self) -> bool:
        return self.basic_auth_user is not None
