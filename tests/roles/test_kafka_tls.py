"""The kafka_tls role: a CA on the controller, a certificate per Kafka node, installed on the hosts.

Real ansible-playbook runs with community.crypto on this machine, the "hosts" being local
directories: what the certificates say is read back with the cryptography library.
"""

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playbookrun import run_playbook

NODES = ("node-a", "node-b")


def run_role(tmp_path: Path, *extra_vars: str) -> subprocess.CompletedProcess[str]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {
        "all": {
            "hosts": {"localhost": local},
            "children": {
                "kafka": {
                    "hosts": {
                        "node-a": {
                            **local,
                            "confluent_kafka_advertised_host": "node-a.example",
                            "kafka_tls_extra_names": ["10.0.0.5", "fd00::5"],
                        },
                        "node-b": local,
                    },
                    "vars": {"kafka_tls_dir": str(tmp_path / "hosts" / "{{ inventory_hostname }}")},
                }
            },
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    # As the calling roles do: the checks in their preflight, the role in their configure phase.
    (tmp_path / "play.yml").write_text(
        "- name: Install the cluster's TLS material\n"
        "  hosts: kafka\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Check the operator's files\n"
        "      ansible.builtin.include_role:\n"
        "        name: kafka_tls\n"
        "        tasks_from: preflight\n"
        "    - name: Install the TLS material\n"
        "      ansible.builtin.include_role:\n"
        "        name: kafka_tls\n"
    )
    pki = f"kafka_tls_pki_dir={tmp_path / 'pki'}"
    return run_playbook(tmp_path / "hosts.json", tmp_path / "play.yml", pki, *extra_vars)


def converge(tmp_path: Path, *extra_vars: str) -> str:
    result = run_role(tmp_path, *extra_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


def changed(output: str) -> int:
    lines = [line for line in output.splitlines() if line.startswith(NODES)]
    return sum(int(line.split("changed=")[1].split()[0]) for line in lines)


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def names(cert: x509.Certificate) -> list[str]:
    """The subject alternative names as TYPE:VALUE: an address must be an IP name to match."""
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    kinds = {x509.DNSName: "DNS", x509.IPAddress: "IP"}
    return sorted(f"{kinds[type(name)]}:{name.value}" for name in alt)


def write_pem(
    cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
) -> tuple[Path, Path]:
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def own_ca(tmp_path: Path, days: int) -> tuple[Path, Path]:
    """A CA of the operator's, valid for ``days`` (negative: expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return write_pem(cert, key, tmp_path / "operator-ca.crt", tmp_path / "operator-ca.key")


def own_node_pair(tmp_path: Path, ca: tuple[Path, Path], name: str, days: int) -> tuple[Path, Path]:
    """A node certificate and key that the operator's PKI issued, signed by ``ca``, valid for
    ``days`` (negative: expired)."""
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(certificate(ca[0]).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(ca_key, hashes.SHA256())
    )
    return write_pem(cert, key, tmp_path / f"{name}.crt", tmp_path / f"{name}.key")


def test_each_node_gets_a_certificate_for_its_names_signed_by_the_cluster_ca(
    tmp_path: Path,
) -> None:
    converge(tmp_path)
    ca = certificate(tmp_path / "pki" / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (tmp_path / "pki").stat().st_mode & 0o777 == 0o700
    for node in NODES:
        host_dir = tmp_path / "hosts" / node
        cert = certificate(host_dir / "host.crt")
        cert.verify_directly_issued_by(ca)
        assert (host_dir / "ca.crt").read_bytes() == (tmp_path / "pki" / "ca.crt").read_bytes()
        # Kafka's PEM key store: the PKCS#8 key, then the certificate, for the owner only.
        keystore = host_dir / "keystore.pem"
        assert keystore.stat().st_mode & 0o777 == 0o600
        key_text, cert_text = keystore.read_text().split("-----END PRIVATE KEY-----\n")
        assert key_text.startswith("-----BEGIN PRIVATE KEY-----")
        assert x509.load_pem_x509_certificate(cert_text.encode()) == cert
        private_key = serialization.load_pem_private_key(
            (key_text + "-----END PRIVATE KEY-----\n").encode(), password=None
        )
        assert private_key.public_key() == cert.public_key()
    assert names(certificate(tmp_path / "hosts/node-a/host.crt")) == [
        "DNS:node-a",
        "DNS:node-a.example",
        "IP:10.0.0.5",
        "IP:fd00::5",
    ]
    assert names(certificate(tmp_path / "hosts/node-b/host.crt")) == ["DNS:node-b"]

    assert changed(converge(tmp_path)) == 0


def test_a_certificate_that_runs_out_soon_is_renewed_once(tmp_path: Path) -> None:
    converge(tmp_path)
    before = certificate(tmp_path / "hosts/node-b/host.crt")
    # Valid for 365 days, renewed when fewer than 400 are left: now, to 500 days.
    longer = ("kafka_tls_cert_valid_days=500", "kafka_tls_renew_before_days=400")
    assert changed(converge(tmp_path, *longer)) > 0
    after = certificate(tmp_path / "hosts/node-b/host.crt")
    assert after.serial_number != before.serial_number
    remaining = after.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert remaining.days >= 499
    assert changed(converge(tmp_path, *longer)) == 0


def test_kafka_tls_renew_signs_every_certificate_again_and_the_next_run_changes_nothing(
    tmp_path: Path,
) -> None:
    converge(tmp_path)
    before = {node: certificate(tmp_path / "hosts" / node / "host.crt") for node in NODES}
    assert changed(converge(tmp_path, "kafka_tls_renew=true")) > 0
    for node, old in before.items():
        renewed = certificate(tmp_path / "hosts" / node / "host.crt")
        assert renewed.serial_number != old.serial_number
        assert names(renewed) == names(old)
        renewed.verify_directly_issued_by(certificate(tmp_path / "pki" / "ca.crt"))
    assert changed(converge(tmp_path)) == 0


def test_the_operators_ca_signs_the_node_certificates(tmp_path: Path) -> None:
    ca_cert, ca_key = own_ca(tmp_path, days=3650)
    converge(tmp_path, f"kafka_tls_ca_cert_src={ca_cert}", f"kafka_tls_ca_key_src={ca_key}")
    operator_ca = certificate(ca_cert)
    for node in NODES:
        certificate(tmp_path / "hosts" / node / "host.crt").verify_directly_issued_by(operator_ca)
    assert not (tmp_path / "pki" / "ca.key").exists()


@pytest.mark.parametrize(
    ("case", "variable", "message"),
    [
        ("missing CA", "kafka_tls_ca_cert_src", "No such file"),
        ("expired CA", "kafka_tls_ca_cert_src", "the certificate expired on"),
        ("key of another CA", "kafka_tls_ca_key_src", "the key does not belong to the certificate"),
        ("CA without its key", "kafka_tls_ca_key_src", "give the CA's key"),
    ],
)
def test_bad_operator_files_are_refused_before_anything_is_written(
    tmp_path: Path, case: str, variable: str, message: str
) -> None:
    ca_cert, ca_key = own_ca(tmp_path, days=-1 if case == "expired CA" else 3650)
    if case == "missing CA":
        ca_cert = tmp_path / "nowhere.crt"
    if case == "key of another CA":
        (tmp_path / "other").mkdir()
        _, ca_key = own_ca(tmp_path / "other", days=3650)
    extra = [f"kafka_tls_ca_cert_src={ca_cert}"]
    if case != "CA without its key":
        extra.append(f"kafka_tls_ca_key_src={ca_key}")
    result = run_role(tmp_path, *extra)
    assert result.returncode != 0
    assert variable in result.stdout, result.stdout[-3000:]
    assert message in result.stdout, result.stdout[-3000:]
    assert not (tmp_path / "hosts").exists()
    assert not (tmp_path / "pki").exists()


def test_the_operators_node_certificate_and_key_are_installed_as_they_are(
    tmp_path: Path,
) -> None:
    ca_cert, _ = ca = own_ca(tmp_path, days=3650)
    host_cert, host_key = own_node_pair(tmp_path, ca, "node", days=365)
    converge(
        tmp_path,
        f"kafka_tls_ca_cert_src={ca_cert}",
        f"kafka_tls_host_cert_src={host_cert}",
        f"kafka_tls_host_key_src={host_key}",
    )
    for node in NODES:
        host_dir = tmp_path / "hosts" / node
        assert (host_dir / "host.crt").read_bytes() == host_cert.read_bytes()
        assert (host_dir / "keystore.pem").read_text() == (
            f"{host_key.read_text().rstrip()}\n{host_cert.read_text().rstrip()}\n"
        )
    assert not (tmp_path / "pki" / "ca.key").exists()
    assert not (tmp_path / "pki" / "hosts").exists()


@pytest.mark.parametrize(
    ("case", "variable", "message"),
    [
        (
            "key of another node",
            "kafka_tls_host_key_src",
            "the key does not belong to the certificate",
        ),
        ("expired node certificate", "kafka_tls_host_cert_src", "the certificate expired on"),
        (
            "certificate without its key",
            "kafka_tls_host_cert_src",
            "is set without kafka_tls_host_key_src",
        ),
        (
            "key without its certificate",
            "kafka_tls_host_key_src",
            "is set without kafka_tls_host_cert_src",
        ),
    ],
)
def test_bad_operator_node_files_are_refused_before_anything_is_written(
    tmp_path: Path, case: str, variable: str, message: str
) -> None:
    ca_cert, ca_key = ca = own_ca(tmp_path, days=3650)
    host_cert, host_key = own_node_pair(
        tmp_path, ca, "node", days=-1 if case == "expired node certificate" else 365
    )
    if case == "key of another node":
        _, host_key = own_node_pair(tmp_path, ca, "other-node", days=365)
    # With the CA's key the role could sign a certificate itself: only the pair rule applies.
    extra = [f"kafka_tls_ca_cert_src={ca_cert}", f"kafka_tls_ca_key_src={ca_key}"]
    if case != "key without its certificate":
        extra.append(f"kafka_tls_host_cert_src={host_cert}")
    if case != "certificate without its key":
        extra.append(f"kafka_tls_host_key_src={host_key}")
    result = run_role(tmp_path, *extra)
    assert result.returncode != 0
    assert f"{variable} (" in result.stdout, result.stdout[-3000:]
    assert message in result.stdout, result.stdout[-3000:]
    assert not (tmp_path / "hosts").exists()
    assert not (tmp_path / "pki").exists()


@pytest.mark.parametrize("role", ["confluent_kafka", "kafka_app", "kafka_status_page"])
def test_each_role_that_installs_tls_files_refuses_bad_ones_in_its_preflight(
    tmp_path: Path, role: str
) -> None:
    """The role's preflight alone, which runs before its install phase changes the host."""
    node = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "confluent_kafka_node_id": 1,
    }
    inventory = {
        "all": {
            "children": {
                "kafka": {"hosts": {"node-a": node}},
                "kafka_app": {"hosts": {"node-a": {}}},
            }
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(
        f"- name: Run the {role} role's preflight\n"
        "  hosts: kafka\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Check the variables before changing anything\n"
        "      ansible.builtin.include_role:\n"
        f"        name: {role}\n"
        "        tasks_from: preflight\n"
    )
    missing = tmp_path / "nowhere.crt"
    result = run_playbook(
        tmp_path / "hosts.json",
        tmp_path / "play.yml",
        f"kafka_tls_ca_cert_src={missing}",
        f"kafka_tls_ca_key_src={tmp_path / 'nowhere.key'}",
        # Those of a Debian host run by systemd, which the checks before these look for.
        json.dumps({"ansible_facts": {"os_family": "Debian", "service_mgr": "systemd"}}),
    )
    assert result.returncode != 0
    assert f"kafka_tls_ca_cert_src ({missing}): " in result.stdout, result.stdout[-3000:]
    assert "No such file" in result.stdout, result.stdout[-3000:]


def test_a_controller_without_the_ca_the_hosts_trust_is_refused_until_they_start_over(
    tmp_path: Path,
) -> None:
    converge(tmp_path)
    trusted = (tmp_path / "hosts/node-a/ca.crt").read_bytes()
    # A fresh clone of the inventory: no pki directory beside it.
    (tmp_path / "pki").rename(tmp_path / "pki.kept")
    result = run_role(tmp_path)
    assert result.returncode != 0
    for node in NODES:
        expected = f"{node} trusts a cluster CA already ({tmp_path / 'hosts' / node}/ca.crt)"
        assert expected in result.stdout, result.stdout[-3000:]
    assert "Nothing was changed." in result.stdout
    assert not (tmp_path / "pki").exists()
    assert (tmp_path / "hosts/node-a/ca.crt").read_bytes() == trusted
    # The pki directory copied back, the same run changes nothing.
    (tmp_path / "pki.kept").rename(tmp_path / "pki")
    assert changed(converge(tmp_path)) == 0
    # Starting over on purpose, as the message says: the hosts' CA removed first.
    (tmp_path / "pki").rename(tmp_path / "pki.old")
    for node in NODES:
        (tmp_path / "hosts" / node / "ca.crt").unlink()
    converge(tmp_path)
    new_ca = certificate(tmp_path / "pki" / "ca.crt")
    assert new_ca != certificate(tmp_path / "pki.old" / "ca.crt")
    certificate(tmp_path / "hosts/node-a/host.crt").verify_directly_issued_by(new_ca)
