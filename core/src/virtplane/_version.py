"""Version numbers of the core distribution and of the plugin API it offers."""

from __future__ import annotations

#: Version of the ``virtplane`` distribution.
__version__ = "0.1.0"

#: Version of the plugin API (``major.minor``). See docs/versioning.md: a minor
#: bump only adds (new hooks, new optional hook arguments, new driver methods
#: with defaults); a major bump removes or renames something, after a
#: deprecation period in which the old form warns. 2.x still runs plugins written
#: for 1.x, through the 1.x adapter, with a deprecation warning on their record;
#: 2.1 added the configure_plugin hook.
PLUGIN_API_VERSION = "2.1"
