"""The deployed wheel and its wheelhouse digest depend on the product (app/) and runtime lock only.

A change anywhere else (bench, test broker, tests, docs, README, the dev pyproject.toml) must not
build a new venv on every app host and restart every consumer.
"""

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO / "roles" / "kafka_app" / "library" / "kafka_app_wheelhouse.py"
CHECKOUT_FILES = ["requirements.lock", "README.md", "pyproject.toml"]


@pytest.fixture(scope="module")
def wheelhouse() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_app_wheelhouse", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository's product, lock, top-level files and a few dev files."""
    root = tmp_path / "checkout"
    shutil.copytree(
        REPO / "app", root / "app", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in CHECKOUT_FILES:
        shutil.copy2(REPO / name, root / name)
    for name in ("tools/kafka_micro_devtools/bench/runner.py", "tests/conftest.py", "docs/a.md"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("# original\n")
    return root


def params(wheelhouse: ModuleType, checkout: Path) -> dict:
    """The module's parameters as the role passes them: its defaults, the app dir, the lock."""
    defaults = {name: spec.get("default") for name, spec in wheelhouse.ARGUMENT_SPEC.items()}
    return {
        **defaults,
        "project_dir": str(checkout / "app"),
        "requirements_lock": str(checkout / "requirements.lock"),
        "python_version": "3.11",
        "machine": "x86_64",
        "glibc_version": "2.36",
    }


def digest(wheelhouse: ModuleType, checkout: Path) -> str:
    _project_dir, _files, value = wheelhouse.inputs(params(wheelhouse, checkout))
    return value


def append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


@pytest.mark.parametrize(
    "changed",
    [
        "tools/kafka_micro_devtools/bench/runner.py",
        "tests/conftest.py",
        "docs/a.md",
        "README.md",
        "pyproject.toml",
        # Made by editable installs, test runs and builds inside app/: not sources.
        "app/kafka_micro.egg-info/PKG-INFO",
        "app/kafka_micro/__pycache__/cli.cpython-311.pyc",
        "app/build/lib/kafka_micro/cli.py",
        "app/.mypy_cache/3.11/cache.json",
    ],
)
def test_a_change_outside_the_product_keeps_the_digest(wheelhouse, checkout, changed):
    before = digest(wheelhouse, checkout)
    append(checkout / changed, "# changed\n")
    assert digest(wheelhouse, checkout) == before


@pytest.mark.parametrize(
    "changed",
    [
        "app/kafka_micro/consumer.py",
        "app/kafka_micro/profiles/first-kafka.toml",
        "app/pyproject.toml",
        "requirements.lock",
    ],
)
def test_a_change_of_the_product_or_the_runtime_lock_changes_the_digest(
    wheelhouse, checkout, changed
):
    before = digest(wheelhouse, checkout)
    append(checkout / changed, "\n# changed\n")
    assert digest(wheelhouse, checkout) != before


def test_the_app_wheel_is_byte_identical_when_built_twice_and_holds_only_the_product(
    wheelhouse, checkout, tmp_path
):
    module_params = params(wheelhouse, checkout)
    project_dir, files, _digest = wheelhouse.inputs(module_params)
    python = wheelhouse.build_tools(tmp_path / "cache", sys.executable)
    epoch = module_params["source_date_epoch"]
    first = wheelhouse.build_app_wheel(python, project_dir, files, epoch, tmp_path / "one")
    append(checkout / "README.md", "# changed\n")
    second = wheelhouse.build_app_wheel(python, project_dir, files, epoch, tmp_path / "two")
    assert first.name == second.name == "kafka_micro-0.1.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()

    names = zipfile.ZipFile(first).namelist()
    assert "kafka_micro/cli.py" in names
    assert "kafka_micro/profiles/first-kafka.toml" in names
    assert "kafka_micro/py.typed" in names
    assert not [name for name in names if "bench" in name or "localbroker" in name]
