"""Fixtures the cluster tests share beyond tests/conftest.py: the console in a browser."""

from tests.cluster_tests.browser import browser, browsing, console  # noqa: F401
