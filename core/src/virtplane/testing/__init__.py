"""The plugin author kit: contract tests for every driver kind, as a pytest plugin.

A vendor names their plugin and gets the tests of its kind::

    from virtplane.testing import StorageContract

    class TestMyArray(StorageContract):
        plugin = "myarray"

        @pytest.fixture
        def storage_connection(self, tmp_path):
            return {"uri": "myarray://lab-array/pool0"}

The kit is registered as a pytest plugin (entry point ``pytest11``) when the
``virtplane`` distribution is installed; it adds the fixtures in
:mod:`virtplane.testing.plugin` (an isolated XDG home and a Manager factory).
The plugin under test is loaded the way an administrator's install loads it,
through its entry points, so the kit also proves the packaging.

Contracts: :class:`ArchitectureContract`, :class:`StorageContract`,
:class:`HypervisorContract`, :class:`HookPluginContract`. Each has the common
checks of :class:`PluginContract` (loaded, plugin-API range, settings defaults,
fits the installed core). See docs/kit.md.
"""

from __future__ import annotations

from virtplane.testing._arch import ArchitectureContract
from virtplane.testing._base import PluginContract
from virtplane.testing._hooks import HookPluginContract
from virtplane.testing._hypervisor import HypervisorContract
from virtplane.testing._storage import StorageContract

__all__ = [
    "ArchitectureContract",
    "HookPluginContract",
    "HypervisorContract",
    "PluginContract",
    "StorageContract",
]
