"""The test broker's opt-in secured mode: its client listener speaks SASL_SSL.

TLS with a certificate from a throwaway CA that names ``localhost`` only (so a client that
connects by address fails hostname verification), SCRAM-SHA-512 users created when the storage
is formatted, Kafka's StandardAuthorizer denying what no ACL allows. ``admin`` is the super user
the broker itself authenticates as; ``producer`` and ``consumer`` get only the ACLs that
``LocalBroker.grant_pipeline`` adds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from kafka_micro_devtools.throwaway_tls import create_authority, write_owner_only

User = Literal["admin", "producer", "consumer"]
USERS: Final[tuple[User, ...]] = ("admin", "producer", "consumer")
SUPER_USER: Final[User] = "admin"
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"
LISTENER_NAME: Final = "SASL_SSL"
PLAINTEXT_LISTENER_NAME: Final = "PLAINTEXT"
HOST_NAME: Final = "localhost"
"""The only name the broker's certificate holds, and the host its listener advertises."""


@dataclass(frozen=True)
class SecuredListener:
    """The CA, keystore and passwords of one secured broker, kept in ``directory``."""

    directory: Path
    ca_file: Path
    keystore_file: Path
    passwords: MappingProxyType[User, str]

    @classmethod
    def create(cls, directory: Path) -> SecuredListener:
        authority = create_authority(directory, "test-ca")
        keystore = authority.issue_server_keystore(directory / "broker-keystore.pem", HOST_NAME)
        passwords = MappingProxyType({user: secrets.token_hex(16) for user in USERS})
        return cls(directory, authority.certificate_file, keystore, passwords)

    def broker_properties(
        self, listener: str, controller: str, plaintext: str | None = None
    ) -> dict[str, str]:
        """server.properties entries; ``listener``, ``controller``, ``plaintext``: ``HOST:PORT``.

        The controller listener stays PLAINTEXT on loopback: KRaft cannot authenticate it with
        SCRAM (the credentials live in the metadata it serves), and its unauthenticated
        principal, ANONYMOUS, must be a super user for the broker to register with it.
        ``plaintext``, if given, adds a PLAINTEXT client listener there (advertised as given):
        its clients are ANONYMOUS too, so the ACLs do not restrict them. It exists to compare
        the two protocols on one broker (``kafka-micro-bench --security-cost``).
        """
        port = listener.rsplit(":", 1)[1]
        listeners = [f"{LISTENER_NAME}://{listener}", f"CONTROLLER://{controller}"]
        advertised = [f"{LISTENER_NAME}://{HOST_NAME}:{port}", f"CONTROLLER://{controller}"]
        protocols = ["CONTROLLER:PLAINTEXT", f"{LISTENER_NAME}:SASL_SSL"]
        if plaintext is not None:
            listeners.append(f"{PLAINTEXT_LISTENER_NAME}://{plaintext}")
            advertised.append(f"{PLAINTEXT_LISTENER_NAME}://{plaintext}")
            protocols.append(f"{PLAINTEXT_LISTENER_NAME}:PLAINTEXT")
        return {
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocols),
            "inter.broker.listener.name": LISTENER_NAME,
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{LISTENER_NAME.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                self._jaas(SUPER_USER)
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{SUPER_USER};User:ANONYMOUS",
        }

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create every user's SCRAM credentials."""
        arguments = []
        for user, password in self.passwords.items():
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
        return arguments

    def client_properties(self, user: User) -> dict[str, str]:
        """librdkafka properties of a client authenticating as ``user`` (kafka-micro's table)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.passwords[user],
            "ssl.ca.location": str(self.ca_file),
        }

    def admin_tool_properties(self) -> Path:
        """A Java client properties file for Kafka's tools (``--command-config``), as admin."""
        path = self.directory / "admin-client.properties"
        if not path.exists():
            properties = {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": SCRAM_MECHANISM,
                "sasl.jaas.config": self._jaas(SUPER_USER),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca_file),
            }
            text = "".join(f"{key}={value}\n" for key, value in properties.items())
            write_owner_only(path, text.encode())
        return path

    def _jaas(self, user: User) -> str:
        return (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{self.passwords[user]}";'
        )
