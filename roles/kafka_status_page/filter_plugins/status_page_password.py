"""The status page's basic auth password hash, in the form the app checks
(kafka_micro.settings.status_page: ``pbkdf2-sha256$ITERATIONS$SALT$HASH``)."""

import base64
import hashlib

# As many as the app's own `kafka-micro status-page --hash-password` uses.
ITERATIONS = 600_000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def status_page_password_hash(password: str, salt: str) -> str:
    """The hash of ``password`` with ``salt`` (text of at least 8 bytes, kept by the role)."""
    salt_bytes = salt.encode()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt_bytes, ITERATIONS)
    return f"pbkdf2-sha256${ITERATIONS}${_b64(salt_bytes)}${_b64(digest)}"


class FilterModule:
    def filters(self) -> dict:
        return {"status_page_password_hash": status_page_password_hash}
