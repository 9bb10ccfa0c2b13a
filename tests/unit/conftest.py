import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Unit tests see only the KAFKA_MICRO_* variables they set themselves."""
    for name in list(os.environ):
        if name.upper().startswith("KAFKA_MICRO_"):
            monkeypatch.delenv(name)
