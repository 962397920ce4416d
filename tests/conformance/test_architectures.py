"""Both first-party architectures pass the plugin author kit (virtplane.testing)."""

from __future__ import annotations

from virtplane.testing import ArchitectureContract


class TestX86_64(ArchitectureContract):
    plugin = "x86_64"


class TestPpc64(ArchitectureContract):
    plugin = "ppc64"
