"""Fixtures for the hook-scripts tests (hooks/plugin_config live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def hs_env(manager_factory, tmp_path):
    """A manager on test:///default with dc/cluster/host; hook roots come from XDG."""
    def make():
        m = manager_factory()
        m.datacenters.add("dc1")
        m.clusters.add("cl1", "dc1")
        m.hosts.add("h1", "cl1", "test:///default")
        return m
    return make
