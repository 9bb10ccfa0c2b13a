"""``kafka-micro config``: the effective settings as TOML (a valid config file) or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from kafka_micro.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings, iter_field_docs

REDACTED = "<redacted>"
# Passwords, passphrases and secrets, PEM strings (ssl.key.pem and the like: public
# certificates are hidden too, rather than tell which PEM holds a key) and the OAUTHBEARER
# configuration, which may carry a token; paths to key files are not secret.
_SECRET_PROPERTY = re.compile(r"password|passphrase|secret|sasl\.oauthbearer\.config|\.pem$")


def effective_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, with secret librdkafka values replaced."""
    values = settings.model_dump()
    for properties in (
        values["librdkafka"],
        values["producer"]["librdkafka"],
        values["consumer"]["librdkafka"],
    ):
        for key in properties:
            if _SECRET_PROPERTY.search(key):
                properties[key] = REDACTED
    return values


def to_json(settings: Settings) -> str:
    return json.dumps(effective_settings(settings), indent=2)


def to_toml(settings: Settings) -> str:
    """Render as TOML that ``--config`` reads back (unset optional values are commented)."""
    lines: list[str] = []
    _render_table(effective_settings(settings), (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def describe() -> str:
    """Per setting: dotted name, environment variable, description, default, allowed values."""
    lines = []
    for doc in iter_field_docs():
        env_name = ENV_PREFIX + doc.name.upper().replace(".", ENV_NESTED_DELIMITER)
        default = "unset" if doc.default is None else json.dumps(doc.default)
        allowed = f"; one of {', '.join(map(json.dumps, doc.allowed))}" if doc.allowed else ""
        lines.append(f"{doc.name} ({env_name}; default {default}{allowed})\n    {doc.description}")
    return "\n".join(lines)


def _render_table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    if path:
        lines.extend(["", f"[{'.'.join(_key(part) for part in path)}]"])
    subtables = []
    for key, value in table.items():
        if isinstance(value, Mapping):
            subtables.append((key, value))
        elif value is None:
            lines.append(f"# {_key(key)} is unset")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in subtables:
        _render_table(value, (*path, key), lines)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)
