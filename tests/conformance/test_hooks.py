"""The first-party hook plugin passes the plugin author kit (virtplane.testing)."""

from __future__ import annotations

from virtplane.testing import HookPluginContract


class TestHookScripts(HookPluginContract):
    plugin = "hook_scripts"


class TestCoreBuiltinHooks(HookPluginContract):
    """The core's own hook implementations are a plugin like any other (as in tox 4)."""

    plugin = "core"
