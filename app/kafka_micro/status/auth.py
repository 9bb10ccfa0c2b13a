"""HTTP basic auth of the status page: PBKDF2-SHA256 password hashes, made and checked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Final

from kafka_micro.settings.status_page import (
    MIN_PBKDF2_ITERATIONS,
    PASSWORD_HASH_SCHEME,
    decode_b64,
)

DEFAULT_ITERATIONS: Final = 600_000
_SALT_BYTES: Final = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def hash_password(
    password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """``pbkdf2-sha256$ITERATIONS$SALT$HASH`` of ``password``; a random salt unless given."""
    if iterations < MIN_PBKDF2_ITERATIONS:
        raise ValueError(f"iterations must be at least {MIN_PBKDF2_ITERATIONS}")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    if len(salt) < 8:
        raise ValueError("the salt must be at least 8 bytes")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{PASSWORD_HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def password_matches(password: str, password_hash: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` (a validated setting) was made from."""
    _scheme, iterations, salt, digest = password_hash.split("$")
    computed = hashlib.pbkdf2_hmac("sha256", password.encode(), decode_b64(salt), int(iterations))
    return hmac.compare_digest(computed, decode_b64(digest))


class BasicAuth:
    """Checks ``Authorization: Basic ...`` headers against one user and password hash.

    PBKDF2 is slow on purpose; a header that was accepted once is remembered (by its SHA-256,
    never the password) so that a browser's refresh every few seconds does not cost a hash each
    time. Only accepted headers are remembered, and at most a few.
    """

    _REMEMBERED: Final = 16

    def __init__(self, user: str, password_hash: str) -> None:
        self._user = user
        self._password_hash = password_hash
        self._accepted: list[bytes] = []

    def allows(self, header: str | None) -> bool:
        if header is None:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        fingerprint = hashlib.sha256(credentials.strip().encode()).digest()
        if any(hmac.compare_digest(fingerprint, known) for known in self._accepted):
            return True
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, separator, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self._user.encode())
        # The hash is computed even for a wrong user, so the answer takes as long either way.
        password_ok = password_matches(password, self._password_hash)
        if not (separator and user_ok and password_ok):
            return False
        self._accepted = [fingerprint, *self._accepted[: self._REMEMBERED - 1]]
        return True
