"""The kafka_status_page role writes the page's basic auth hash itself (Ansible has no PBKDF2
filter); the app must accept it as a setting and match the password against it, and nothing else."""

import importlib.util
from pathlib import Path

import pytest
from pydantic import ValidationError

from kafka_micro.settings.status_page import StatusPageSettings
from kafka_micro.status.auth import password_matches

FILTER = Path(__file__).resolve().parents[2] / "roles/kafka_status_page/filter_plugins"


def role_hash(password: str, salt: str) -> str:
    spec = importlib.util.spec_from_file_location(
        "status_page_password", FILTER / "status_page_password.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.status_page_password_hash(password, salt)


def test_the_app_accepts_the_roles_hash_and_matches_only_its_password():
    written = role_hash("Operator-Password-1", "kept-salt-of-24-letters")
    settings = StatusPageSettings(basic_auth_user="operator", basic_auth_password_hash=written)
    assert settings.basic_auth_password_hash == written
    assert password_matches("Operator-Password-1", written)
    assert not password_matches("Operator-Password-2", written)


def test_the_same_password_and_salt_give_the_same_hash_so_a_rerun_changes_nothing():
    assert role_hash("Operator-Password-1", "salt-one-salt-one") == role_hash(
        "Operator-Password-1", "salt-one-salt-one"
    )
    assert role_hash("Operator-Password-1", "salt-one-salt-one") != role_hash(
        "Operator-Password-1", "salt-two-salt-two"
    )


def test_a_salt_the_app_refuses_is_refused_when_the_setting_is_read():
    with pytest.raises(ValidationError, match="salt of at least 8 bytes"):
        StatusPageSettings(
            basic_auth_user="operator",
            basic_auth_password_hash=role_hash("Operator-Password-1", "short"),
        )
