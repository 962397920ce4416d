"""The first-party hook plugin passes the plugin author kit (virtplane.testing)."""

from __future__ import annotations

from virtplane.testing import HookPluginContract


class TestHookScripts(HookPluginContract):
    plugin = "hook_scripts"
