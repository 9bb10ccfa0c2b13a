"""The secured test broker's throwaway CA: a server certificate for one host name only."""

import ipaddress
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from kafka_micro_devtools.broker_security import SecuredListener
from kafka_micro_devtools.throwaway_tls import create_authority


def load_keystore(path):
    """(leaf, chain) certificates of a PEM keystore, in file order."""
    certificates = x509.load_pem_x509_certificates(path.read_bytes())
    return certificates[0], certificates[1:]


def test_the_server_certificate_is_valid_for_its_name_only(tmp_path):
    authority = create_authority(tmp_path, "test-ca")
    keystore = authority.issue_server_keystore(tmp_path / "server.pem", "localhost")
    leaf, chain = load_keystore(keystore)
    store = Store(x509.load_pem_x509_certificates(authority.certificate_file.read_bytes()))
    verifier = PolicyBuilder().store(store)
    verifier.build_server_verifier(x509.DNSName("localhost")).verify(leaf, chain)
    with pytest.raises(VerificationError):
        verifier.build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(
            leaf, chain
        )
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(name.value) for name in names] == ["localhost"]


def test_another_authority_does_not_vouch_for_the_server(tmp_path):
    authority = create_authority(tmp_path, "test-ca")
    other = create_authority(tmp_path, "other-ca")
    leaf, _chain = load_keystore(authority.issue_server_keystore(tmp_path / "s.pem", "localhost"))
    store = Store(x509.load_pem_x509_certificates(other.certificate_file.read_bytes()))
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("localhost")).verify(
            leaf, []
        )


def test_the_keystore_is_private_and_holds_a_key_and_its_chain(tmp_path):
    authority = create_authority(tmp_path, "test-ca")
    keystore = authority.issue_server_keystore(tmp_path / "server.pem", "localhost")
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert keystore.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    # What a TLS server reads from it: Python's ssl takes the key and chain from one file.
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(keystore)


def test_a_secured_listener_has_a_password_per_user_and_private_client_properties(tmp_path):
    security = SecuredListener.create(tmp_path)
    assert set(security.passwords) == {"admin", "producer", "consumer"}
    assert len(set(security.passwords.values())) == 3
    properties = security.client_properties("producer")
    assert properties["sasl.username"] == "producer"
    assert properties["sasl.password"] == security.passwords["producer"]
    assert properties["ssl.ca.location"] == str(security.ca_file)
    admin_file = security.admin_tool_properties()
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    assert security.passwords["admin"] in admin_file.read_text()
    assert security.format_arguments()[:2] == [
        "--add-scram",
        f"SCRAM-SHA-512=[name=admin,password={security.passwords['admin']}]",
    ]
