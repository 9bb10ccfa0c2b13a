#!/usr/bin/python
"""Ansible module: the wheelhouse the app hosts install kafka-micro from, with no index."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: kafka_app_wheelhouse
short_description: Builds (or checks) a wheelhouse of kafka-micro and its locked dependencies
description:
  - Runs on the controller (delegate it to localhost). Builds the kafka-micro wheel from a clean
    copy of its sources with a fixed C(SOURCE_DATE_EPOCH), so the same sources give the same bytes,
    and downloads the binary wheels of every package of the hashed lock for the target's Python and
    platform (C(pip download --only-binary=:all: --require-hashes)).
  - The result is cached under I(cache_dir) in a directory named after the Python tag, the machine
    and a digest of the lock, the sources and the target; an existing one is reused, unchanged.
  - With I(prebuilt_dir) nothing is built; every wheel there other than kafka-micro's must carry a
    hash listed in the lock.
  - Returns the wheelhouse directory and the sha256 of each wheel.
options:
  project_dir:
    description:
      - The app's distribution directory (its pyproject.toml and package); required unless
        I(prebuilt_dir) is set.
      - Only what is under it, and the lock, decide the wheel and the wheelhouse digest.
    type: path
  source_paths:
    description:
      - Paths under I(project_dir) holding the app's sources; missing ones are skipped.
      - Caches, C(*.egg-info), C(build) and C(dist) directories in them are left out.
    type: list
    elements: str
    default: [.]
  requirements_lock:
    description: Hashed lock (pip requirements with --hash) of the app's runtime dependencies.
    type: path
    required: true
  cache_dir:
    description: Directory where built wheelhouses are kept; required unless I(prebuilt_dir) is set.
    type: path
  prebuilt_dir:
    description: A wheelhouse built elsewhere (for example on an air-gapped controller).
    type: path
  python_version:
    description: Target Python as MAJOR.MINOR, for example 3.11.
    type: str
    required: true
  machine:
    description: Target machine as Python's platform.machine() reports it, for example x86_64.
    type: str
    required: true
  glibc_version:
    description: Target glibc as MAJOR.MINOR, for example 2.36; picks the manylinux wheels it runs.
    type: str
    required: true
  build_python:
    description: Python on the controller that creates the venv holding the build tools (pip).
    type: path
    required: true
  source_date_epoch:
    description: Timestamp written into the app wheel; a constant makes rebuilds byte-identical.
    type: int
    default: 315532800
  app_name:
    description: Distribution name of the app, as in its wheel file name.
    type: str
    default: kafka_micro
"""

RETURN = r"""
path:
  description: Directory holding the wheels.
  type: str
  returned: always
wheels:
  description: Every wheel, as name and sha256, sorted by name.
  type: list
  elements: dict
  returned: always
app_wheel:
  description: File name of the app's wheel.
  type: str
  returned: always
app_sha256:
  description: sha256 of the app's wheel.
  type: str
  returned: always
"""


_CHECKSUMS = "SHA256SUMS"
_LOCK_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
# manylinux wheels older than PEP 600 carry these aliases of manylinux_2_X.
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
_LEGACY_MACHINES = {"x86_64", "i686"}
_OLDEST_MANYLINUX_MINOR = 5
# Made by tools and builds in a source tree, not sources: they must not change the digest.
_IGNORED_NAMES = (
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
)
_BUFFER = 1 << 20
# Built wheelhouses kept per Python and machine; older ones are removed after a build.
_KEPT_WHEELHOUSES = 3


class WheelhouseError(Exception):
    """Raised with a message fit for the operator."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()


def platform_tags(machine: str, glibc_version: str) -> list[str]:
    """Every manylinux tag a host with this glibc runs, newest first."""
    match = re.fullmatch(r"2\.(\d+)", glibc_version)
    if not match:
        raise WheelhouseError(
            f"glibc_version {glibc_version!r} is not 2.MINOR; only glibc 2.x hosts are supported"
        )
    tags = []
    for minor in range(int(match.group(1)), _OLDEST_MANYLINUX_MINOR - 1, -1):
        tags.append(f"manylinux_2_{minor}_{machine}")
        if minor in _LEGACY_MANYLINUX and (minor == 17 or machine in _LEGACY_MACHINES):
            tags.append(f"{_LEGACY_MANYLINUX[minor]}_{machine}")
    return tags


def source_files(project_dir: Path, source_paths: list[str]) -> list[Path]:
    """The app's source files, relative to project_dir, sorted; caches and metadata left out."""
    found = []
    for name in source_paths:
        root = project_dir / name
        candidates = [root] if root.is_file() else root.rglob("*")
        for path in candidates:
            relative = path.relative_to(project_dir)
            if path.is_file() and not _ignored(relative):
                found.append(relative)
    return sorted(found)


def _ignored(relative: Path) -> bool:
    return any(fnmatch(part, pattern) for part in relative.parts for pattern in _IGNORED_NAMES)


def wheelhouse_digest(
    project_dir: Path, files: list[Path], lock: Path, target: tuple[str, ...]
) -> str:
    digest = hashlib.sha256()
    for part in target:
        digest.update(part.encode() + b"\0")
    digest.update(lock.read_bytes() + b"\0")
    for relative in files:
        digest.update(str(relative).encode() + b"\0")
        digest.update(sha256_of(project_dir / relative).encode() + b"\0")
    return digest.hexdigest()[:16]


def read_checksums(directory: Path) -> dict[str, str]:
    checksums = {}
    for line in (directory / _CHECKSUMS).read_text().splitlines():
        checksum, _, name = line.partition("  ")
        checksums[name] = checksum
    return checksums


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise WheelhouseError(
            f"{' '.join(argv)} failed with exit code {result.returncode}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


def build_tools(cache_dir: Path, build_python: str) -> Path:
    """A venv of the controller's Python with its bundled pip: no pip on the controller needed."""
    tools = cache_dir / "wheelhouse-tools"
    python = tools / "bin" / "python"
    if not python.exists():
        # Made aside and renamed into place: two plays building at once each get a whole venv.
        scratch = Path(tempfile.mkdtemp(prefix=".wheelhouse-tools-", dir=cache_dir))
        run([build_python, "-m", "venv", str(scratch)])
        try:
            scratch.rename(tools)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            if not python.exists():
                raise
    return python


def build_app_wheel(
    python: Path, project_dir: Path, files: list[Path], source_date_epoch: int, wheels: Path
) -> Path:
    """Build the app's wheel into ``wheels`` from a clean copy of ``files``; return its path."""
    with tempfile.TemporaryDirectory(prefix=".app-source-", dir=wheels.parent) as scratch:
        source = Path(scratch)
        for relative in files:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project_dir / relative, source / relative)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(source_date_epoch))
        before = set(wheels.glob("*.whl"))
        # An absolute path: a bare directory name would be looked up on the package index.
        pip_wheel = [str(python), "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels)]
        run([*pip_wheel, str(source.resolve())], env)
    (wheel,) = set(wheels.glob("*.whl")) - before
    return wheel


def build(params: dict[str, Any], project_dir: Path, files: list[Path], destination: Path) -> None:
    cache_dir = destination.parent
    python = build_tools(cache_dir, params["build_python"])
    scratch = Path(tempfile.mkdtemp(prefix=".wheelhouse-", dir=cache_dir))
    try:
        wheels = scratch / "wheels"
        build_app_wheel(python, project_dir, files, params["source_date_epoch"], wheels)
        pip = [str(python), "-m", "pip"]
        python_version = params["python_version"]
        target = [
            *(
                f"--platform={tag}"
                for tag in platform_tags(params["machine"], params["glibc_version"])
            ),
            f"--python-version={python_version}",
            "--implementation=cp",
            "--abi=cp" + python_version.replace(".", ""),
        ]
        lock = params["requirements_lock"]
        run(
            [
                *pip,
                "download",
                "--only-binary=:all:",
                *target,
                "--require-hashes",
                "-r",
                lock,
                "--dest",
                str(wheels),
            ]
        )
        write_checksums(wheels)
        try:
            wheels.rename(destination)
        except OSError:
            # Another run built the same wheelhouse meanwhile: the same inputs, keep that one.
            if not (destination / _CHECKSUMS).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prune(cache_dir: Path, prefix: str, keep: Path) -> None:
    """Remove all but the newest built wheelhouses of one kind; the cache would grow forever."""
    built = sorted(
        (path for path in cache_dir.glob(f"{prefix}*") if (path / _CHECKSUMS).exists()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in built[_KEPT_WHEELHOUSES:]:
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)


def write_checksums(directory: Path) -> None:
    lines = [f"{sha256_of(path)}  {path.name}" for path in sorted(directory.glob("*.whl"))]
    (directory / _CHECKSUMS).write_text("\n".join(lines) + "\n")


def check_prebuilt(directory: Path, lock: Path, app_name: str) -> dict[str, str]:
    if not directory.is_dir():
        raise WheelhouseError(f"prebuilt wheelhouse {str(directory)!r} is not a directory")
    locked = set(_LOCK_HASH.findall(lock.read_text()))
    checksums = {path.name: sha256_of(path) for path in sorted(directory.glob("*.whl"))}
    foreign = [
        name
        for name, checksum in checksums.items()
        if not name.startswith(f"{app_name}-") and checksum not in locked
    ]
    if foreign:
        raise WheelhouseError(
            f"wheels in {str(directory)!r} whose sha256 is not in {str(lock)!r}: "
            f"{', '.join(foreign)}; the wheelhouse must hold exactly the locked packages"
        )
    return checksums


def inputs(params: dict[str, Any]) -> tuple[Path, list[Path], str]:
    """The project dir, its source files, and the digest naming the wheelhouse built from them."""
    project_dir = Path(params["project_dir"])
    if not (project_dir / "pyproject.toml").is_file():
        raise WheelhouseError(f"project_dir {str(project_dir)!r} has no pyproject.toml")
    files = source_files(project_dir, params["source_paths"])
    target = (
        params["python_version"],
        params["machine"],
        params["glibc_version"],
        str(params["source_date_epoch"]),
    )
    lock = Path(params["requirements_lock"])
    return project_dir, files, wheelhouse_digest(project_dir, files, lock, target)


def wheelhouse(params: dict[str, Any]) -> tuple[Path, dict[str, str], bool]:
    """The wheelhouse directory, its wheels' checksums, and whether it was built now."""
    lock = Path(params["requirements_lock"])
    if not lock.is_file():
        raise WheelhouseError(f"requirements_lock {str(lock)!r} does not exist")
    if params["prebuilt_dir"]:
        directory = Path(params["prebuilt_dir"])
        return directory, check_prebuilt(directory, lock, params["app_name"]), False
    if not params["project_dir"] or not params["cache_dir"]:
        raise WheelhouseError("project_dir and cache_dir are required without prebuilt_dir")
    project_dir, files, digest = inputs(params)
    python_tag = "cp" + params["python_version"].replace(".", "")
    cache_dir = Path(params["cache_dir"])
    destination = cache_dir / f"wheelhouse-{python_tag}-{params['machine']}-{digest}"
    built = False
    if not (destination / _CHECKSUMS).exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        build(params, project_dir, files, destination)
        built = True
        prune(cache_dir, f"wheelhouse-{python_tag}-{params['machine']}-", keep=destination)
    return destination, read_checksums(destination), built


ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "project_dir": {"type": "path"},
    "source_paths": {
        "type": "list",
        "elements": "str",
        "default": ["."],
    },
    "requirements_lock": {"type": "path", "required": True},
    "cache_dir": {"type": "path"},
    "prebuilt_dir": {"type": "path"},
    "python_version": {"type": "str", "required": True},
    "machine": {"type": "str", "required": True},
    "glibc_version": {"type": "str", "required": True},
    "build_python": {"type": "path", "required": True},
    "source_date_epoch": {"type": "int", "default": 315532800},
    "app_name": {"type": "str", "default": "kafka_micro"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        # Building only fills the controller's cache; the managed hosts are not touched.
        supports_check_mode=True,
    )
    try:
        directory, checksums, built = wheelhouse(module.params)
    except (WheelhouseError, OSError) as error:
        module.fail_json(msg=str(error))
    app_name = module.params["app_name"]
    app_wheels = [name for name in checksums if name.startswith(f"{app_name}-")]
    if len(app_wheels) != 1:
        module.fail_json(
            msg=f"{str(directory)!r} must hold exactly one {app_name} wheel, found {app_wheels}"
        )
    module.exit_json(
        changed=built,
        path=str(directory),
        wheels=[{"name": name, "sha256": checksums[name]} for name in sorted(checksums)],
        app_wheel=app_wheels[0],
        app_sha256=checksums[app_wheels[0]],
    )


if __name__ == "__main__":
    main()
