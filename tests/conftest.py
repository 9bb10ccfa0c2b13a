"""Session fixtures: the offline Kafka archive, its unpacked install, and one real KRaft broker.

The archive is ``build/ARCHIVE_NAME`` (re-made by ``archive/build`` when its
inputs changed; a no-op otherwise), or the tarball named by ``KAFKA_ARCHIVE_TARBALL``.
Tests that use these fixtures are marked ``integration`` automatically.
"""

import os
import subprocess
from pathlib import Path

import pytest

from kafka_micro_devtools.localbroker import ARCHIVE_NAME, LocalBroker, unpack_archive

REPO_ROOT = Path(__file__).resolve().parent.parent
_ARCHIVE_FIXTURES = {"kafka_archive", "kafka_home", "broker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _ARCHIVE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_archive() -> Path:
    """Path of the archive tarball the integration tests run from."""
    override = os.environ.get("KAFKA_ARCHIVE_TARBALL")
    if override:
        tarball = Path(override)
        if not tarball.is_file():
            pytest.fail(f"KAFKA_ARCHIVE_TARBALL={override} is not a file")
        return tarball
    result = subprocess.run(
        [str(REPO_ROOT / "archive" / "build")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"archive/build failed ({result.returncode}):\n{result.stderr}")
    build_dir = Path(os.environ.get("ARCHIVE_BUILD_DIR", REPO_ROOT / "build"))
    return build_dir / ARCHIVE_NAME


@pytest.fixture(scope="session")
def kafka_home(kafka_archive, tmp_path_factory) -> Path:
    """The unpacked install (``.../ARCHIVE_TOP_DIR``) with bin/, etc/kafka/, share/java/kafka/."""
    return unpack_archive(kafka_archive, tmp_path_factory.mktemp("kafka-dist"))


@pytest.fixture(scope="session")
def broker(kafka_home, tmp_path_factory):
    """One single-node KRaft broker for the whole session; ``broker.bootstrap`` is its address."""
    with LocalBroker(kafka_home, tmp_path_factory.mktemp("broker")) as running:
        yield running
