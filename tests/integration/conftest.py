"""Fixtures for running kafka-micro against the real broker of tests/conftest.py."""

import pytest
from apprunner import App


@pytest.fixture
def app(broker, tmp_path):
    """A fresh topic name and group per test; every process it started is gone afterwards."""
    application = App(broker.bootstrap, tmp_path)
    yield application
    application.kill_all()
