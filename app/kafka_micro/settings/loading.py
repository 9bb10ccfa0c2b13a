"""Loading the settings: sources in precedence order; errors say where a bad value came from.

Precedence, highest first: command-line options, environment variables
(``KAFKA_MICRO_`` prefix, ``__`` between nesting levels), the TOML file given with
``--config``, the named profile (``profile``, a TOML file shipped in ``profiles/``), the
schema's defaults.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import EnvSettingsSource, InitSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.exceptions import SettingsError

from kafka_micro.settings.schema import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    ConfigError,
    ProfileName,
    Settings,
)


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings, or raise ConfigError naming each bad value and what is allowed.

    ``overrides`` holds command-line options, nested like the file (``{"producer": {...}}``).
    """
    file_values = read_config_file(config_file) if config_file is not None else {}
    cli_values = dict(overrides or {})
    _check_env_names(os.environ)
    profile = _chosen_profile(cli_values, os.environ, file_values)
    profile_values = read_profile(profile) if profile is not None else {}
    sources: tuple[PydanticBaseSettingsSource, ...] = (
        InitSettingsSource(Settings, init_kwargs=cli_values),
        EnvSettingsSource(Settings),
        InitSettingsSource(Settings, init_kwargs=file_values),
        InitSettingsSource(Settings, init_kwargs=profile_values),
    )
    try:
        # _build_sources is BaseSettings.__init__'s hook for prebuilt sources; mypy only
        # sees the field-derived signature.
        return Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except SettingsError as error:
        raise ConfigError(f"invalid environment variable: {error}") from None
    except ValidationError as error:
        origins = _Origins(
            config_file, file_values, cli_values, os.environ, (profile, profile_values)
        )
        lines = [_describe(detail, origins) for detail in error.errors()]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Settings from ``values`` over the defaults, reading no config file and no environment.

    For clients of a broker that the calling process started itself (the test broker, the
    benchmark's), which an operator's ``KAFKA_MICRO_*`` variables must not reach.
    """
    sources = (InitSettingsSource(Settings, init_kwargs=dict(values)),)
    return Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML config file; raise ConfigError if it is missing or malformed."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text: {error}") from None


def read_profile(name: ProfileName) -> dict[str, Any]:
    """The settings of a named profile, nested like a config file."""
    text = resources.files("kafka_micro").joinpath("profiles", f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def _chosen_profile(
    cli_values: Mapping[str, Any], environ: Mapping[str, str], file_values: Mapping[str, Any]
) -> ProfileName | None:
    """The profile named by the highest-precedence source; None if unset or not a profile.

    An unknown name is left for validation, which reports it with the allowed ones.
    """
    env_values = {name.upper(): value for name, value in environ.items()}
    for value in (
        cli_values.get("profile"),
        env_values.get(f"{ENV_PREFIX}PROFILE"),
        file_values.get("profile"),
    ):
        if value is not None:
            known: tuple[ProfileName, ...] = get_args(ProfileName)
            return next((name for name in known if name == value), None)
    return None


def _check_env_names(environ: Mapping[str, str]) -> None:
    """Refuse misspelt top-level variables, which pydantic-settings would silently ignore."""
    known = set(Settings.model_fields)
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        field = name[len(ENV_PREFIX) :].split(ENV_NESTED_DELIMITER, 1)[0].lower()
        if field not in known:
            allowed = ", ".join(ENV_PREFIX + known_name.upper() for known_name in sorted(known))
            raise ConfigError(
                f"invalid settings:\n  environment variable {name}: unknown setting {field!r}; "
                f"allowed: {allowed}"
            )


class _Origins:
    """Says where a bad value came from, so the operator knows what to fix."""

    def __init__(
        self,
        config_file: Path | None,
        file_values: Mapping[str, Any],
        cli_values: Mapping[str, Any],
        environ: Mapping[str, str],
        profile: tuple[ProfileName | None, Mapping[str, Any]],
    ) -> None:
        self._config_file = config_file
        self._file_values = file_values
        self._cli_values = cli_values
        self._env_names = {name.upper(): name for name in environ}
        self._profile_name, self._profile_values = profile

    def of(self, location: tuple[str | int, ...]) -> str:
        if _lookup(self._cli_values, location):
            return "command-line option"
        for depth in range(len(location), 0, -1):
            env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(
                str(part).upper() for part in location[:depth]
            )
            if env_name in self._env_names:
                return f"environment variable {self._env_names[env_name]}"
        if _lookup(self._file_values, location):
            return f"config file {str(self._config_file)!r}"
        if _lookup(self._profile_values, location):
            return f"profile {self._profile_name!r}"
        return "default"


def _lookup(values: Mapping[str, Any], location: tuple[str | int, ...]) -> bool:
    current: Any = values
    for part in location:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _describe(detail: ErrorDetails, origins: _Origins) -> str:
    location = tuple(detail["loc"])
    name = ".".join(str(part) for part in location) or "(settings)"
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = f"unknown setting; allowed here: {', '.join(_allowed_keys(location[:-1]))}"
    value = detail["input"]
    shown = "" if isinstance(value, Mapping) else f" = {value!r}"
    # A rule across sections (location ()) names its settings in its message.
    origin = f" ({origins.of(location)})" if location else ""
    return f"{name}{shown}{origin}: {message}"


def _allowed_keys(location: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in location:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
